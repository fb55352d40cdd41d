//! Helpers for the end-to-end tests: a dispatcher per test with its own
//! database and its own broker or topic root, devices that speak MQTT, and
//! an HTTP client that logs in like a real one.
//!
//! - [`db`]: a fresh, isolated database per test (a SQLite file in its own
//!   temporary directory, or a uniquely named PostgreSQL database), removed
//!   when the test ends.
//! - [`app`]: a dispatcher in this process on such a database.
//! - [`device`]: a home device over a real MQTT connection.
//! - [`process`]: the dispatcher binary and a Mosquitto of the test's own,
//!   for the tests that kill things.
//! - [`browser`]: headless Chromium through ChromeDriver, for the pages.
//! - [`cdp`]: the browser's DevTools protocol directly, for service
//!   workers and push messages.
//! - [`push_service`]: a Web Push service on loopback that checks VAPID
//!   and decrypts every push, as a browser vendor's would.
//! - [`store_harness`]: a store test run on both backends
//!   ([`on_both_backends!`]).
//! - [`wait`]: polling for outcomes instead of sleeping.
//! - [`bench`]: what the benchmarks in `benches/` share (docs/BENCHMARKS.md).

pub mod app;
pub mod bench;
pub mod browser;
pub mod cdp;
pub mod db;
pub mod device;
pub mod process;
pub mod push_service;
pub mod recorder;
pub mod shipped_mosquitto;
pub mod sse;
pub mod store_harness;
pub mod wait;
