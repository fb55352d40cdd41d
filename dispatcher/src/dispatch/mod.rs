//! Dispatch: from an open incident to a steward on the way.
//!
//! - [`matcher`]: the spatial index of available stewards and the ranking
//!   (distance, the elder's own grid, skills, fresh locations), with the
//!   reason for every steward chosen or passed over.
//! - [`engine`]: takes an incident's dispatch turn, offers it (two at once
//!   for critical incidents), re-offers on decline or expiry, escalates
//!   when nobody accepts or nobody is available. Every state change is a
//!   store transaction; every deadline is a store row the engine's tick
//!   claims, so a restart delays nothing by more than one tick.
//! - [`lifecycle`]: the incident's transitions after it opens (accept,
//!   decline, expire, escalate, assign, arrive, resolve, cancel, withdraw,
//!   a dispatch turn), one file each, as plain Rust over one store
//!   transaction; the store only reads, locks and writes.
//! - [`after_commit`]: what follows every committed change, for ingest,
//!   the API and the timers alike.

pub mod after_commit;
pub mod engine;
pub mod lifecycle;
pub mod matcher;

pub use after_commit::{Changed, after_commit};
pub use engine::{Engine, EngineHandle};
pub use lifecycle::Lifecycle;
pub use matcher::Matcher;
