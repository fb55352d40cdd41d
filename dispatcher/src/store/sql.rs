//! The SQL both backends run, written once. (To be written.)
