//! The stewards' daily work, beside the alarms: each elder's visits
//! planned by risk and walked as rounds, the daily check-in, and the
//! notebook of what was found.
//!
//! - [`planner`] keeps the plan true: one pending visit per elder, a
//!   check-in deadline per elder on check-in, and an overdue visit raised
//!   once as a routine incident. It only writes through the store, so
//!   several instances planning together plan once.
//! - The pure rules (when the next visit or check-in is due, a round's
//!   walking order) are `domain::care`'s; what a check-in press or a
//!   steward at the door means is `rules.rs`'s, applied with the event.

pub mod planner;

pub use planner::{CareDeps, care_loop, pass};
