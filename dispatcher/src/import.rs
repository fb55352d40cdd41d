//! Import. (To be written.)
