//! Dispatch: offers and claims, the lifecycle, and the notices, stream and
//! outbox it writes, on fixtures of its own.

mod fixtures;
mod lifecycle;
mod notices_stream_outbox;
mod offers_and_claims;

pub(crate) use lifecycle::*;
pub(crate) use notices_stream_outbox::*;
pub(crate) use offers_and_claims::*;
