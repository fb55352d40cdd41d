//! Timers. (To be written.)
