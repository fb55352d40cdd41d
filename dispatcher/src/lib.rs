//! The eldercare dispatcher: device events in, stewards out.
//!
//! A tour, in the order an event travels:
//!
//! - [`mqtt`]: the broker connection: the embedded broker ([`broker`]) or
//!   an external one, QoS 1 with a persistent session and manual acks.
//! - [`ingest`]: validates each message (the `protocol` crate), batches
//!   events into the store, acknowledges only after the commit, keeps
//!   heartbeats in memory and writes them in batches (each device's at
//!   most every `heartbeat_write_s` unless its health changed),
//!   rate-limits floods. The transaction that opens an incident also
//!   makes its first offers, so a press waits for one commit.
//! - [`rules`]: what an event means for an elder: open, join or cancel an
//!   incident, set a timer. Pure functions returning effects.
//! - [`dispatch`]: the matcher (an R-tree of available stewards, ranked
//!   by travel distance with a preference for the elder's own grid) and the
//!   engine (re-offers, escalation, and the first offers ingest could not
//!   make; every deadline a store row).
//! - [`store`]: the truth. One trait, SQLite and PostgreSQL behind it;
//!   every incident change is one transaction with its timeline, stream
//!   and outbox rows; offers claim stewards by compare-and-set.
//! - [`timers`]: deadlines claimed from the store, and the detector of
//!   devices that stopped their heartbeat; [`retention`] prunes what
//!   grows without bound, in small batches in the background.
//! - [`hub`]: the stream log fanned out in process to SSE connections;
//!   [`outbox`]: webhooks, device commands and what reaches stewards,
//!   signed, retried, never lost.
//! - [`notify`]: reaching a steward whose app is not on screen: Web Push
//!   to their phones, repeated until answered, then SMS and calls through
//!   gateways, per priority's ladder; replies and notification buttons
//!   act on the offer.
//! - [`api`]: axum: REST, SSE, auth and roles, OpenAPI, health and
//!   metrics; [`report`] computes its response-time reports.
//! - [`startup`]: builds all of the above from [`settings`] and runs it
//!   until shutdown; [`import`] loads a site from a file; [`sim`] runs
//!   the device simulator inside the server for demos and tests.
//!
//! [`domain`] holds the types all of them share; [`clock`] the one clock
//! tests can move.

pub mod api;
#[cfg(feature = "embedded-broker")]
pub mod broker;
pub mod clock;
pub mod credentials;
pub mod dispatch;
pub mod domain;
pub mod dynsec;
#[cfg(test)]
mod fake_dispatch;
pub mod http_server;
pub mod hub;
pub mod import;
pub mod ingest;
pub mod memory;
pub mod metrics;
pub mod mqtt;
pub mod notify;
pub mod outbox;
pub mod report;
pub mod retention;
pub mod rules;
pub mod settings;
pub mod sim;
pub mod startup;
pub mod store;
pub mod timers;
pub mod untrusted;
pub mod web;
