//! The eldercare device protocol, version 1: what devices say and what the
//! dispatcher answers, as `PROTOCOL.md` fixes it.
//!
//! Both the dispatcher and the device simulator speak through these types,
//! so the contract lives in one place:
//!
//! - [`topics`]: the MQTT topic layout and how to read a topic back.
//! - [`ids`]: `DeviceId` and `EventId`, parsed once at the edge.
//! - [`event`]: the event message, its types and its validation.
//! - [`status`]: heartbeats and last wills.
//! - [`command`]: feedback sent back to the elder's device.
//! - [`reject`]: why a message was refused, as counted in metrics.

pub mod command;
pub mod event;
pub mod ids;
pub mod reject;
pub mod status;
pub mod topics;

pub use command::{CommandMessage, IncidentUpdateState, TestAck};
pub use event::{EventMessage, EventType, MAX_EVENT_BYTES, parse_event};
pub use ids::{DeviceId, EventId, IdError};
pub use reject::{RejectReason, Rejection};
pub use status::{StatusMessage, parse_status};
pub use topics::{TopicKind, Topics};
