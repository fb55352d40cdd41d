//! Ingest. (To be written.)
