//! Helpers for the end-to-end tests: a dispatcher per test with its own
//! database and its own broker or topic root, devices that speak MQTT, and
//! an HTTP client that logs in like a real one.

pub mod app;
pub mod device;
pub mod process;
pub mod wait;
