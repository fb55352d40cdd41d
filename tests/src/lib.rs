//! Helpers shared by the end-to-end tests under `tests/tests/`.
//!
//! - [`db`]: a fresh, isolated database per test (a SQLite file in its own
//!   temporary directory, or a uniquely named PostgreSQL database), removed
//!   when the test ends.

pub mod db;
