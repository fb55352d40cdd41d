//! Startup. (To be written.)
