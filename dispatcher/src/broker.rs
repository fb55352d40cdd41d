//! Embedded broker. (To be written.)
