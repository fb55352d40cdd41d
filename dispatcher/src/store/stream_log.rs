//! The stream log: every change a client should hear of, in commit
//! order, written in the transaction that makes the change (the stream
//! hub reads it and fans it out; `GET /stream` replays it).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use super::dispatch::StreamEvent;

/// Reading and pruning the stream log; every [`super::Store`] implements
/// it, and the hub needs nothing else.
#[async_trait]
pub trait StreamLog: Send + Sync {
    /// Stream rows after `after` (exclusive), oldest first.
    async fn stream_after(&self, after: i64, limit: i64) -> StoreResult<Vec<StreamEvent>>;
    /// The newest stream row's seq (0 when empty).
    async fn stream_head(&self) -> StoreResult<i64>;
    /// Forgets stream rows older than `before`.
    async fn prune_stream(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}
