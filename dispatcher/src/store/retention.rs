//! The store's side of retention ([`crate::retention`]): what may be
//! pruned, a small batch at a time. Written once for both backends in
//! [`super::retention_sql`].
//!
//! Each batch is two steps: the keys are read without the write lock, then
//! removed in one short statement in a background write turn (on SQLite it
//! never stands in front of a press; on PostgreSQL deletes do not block
//! inserts). Nothing an open incident needs is ever pruned: its events,
//! its timeline, offers and outbox rows, its deliveries still pending.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;

/// What grows without bound, and is pruned past its age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prunable {
    /// Raw device events (the unknown-devices list is read from them),
    /// except those of an open incident.
    Events,
    /// What SSE clients replay on reconnection (`Last-Event-ID`).
    Stream,
    /// Outside notifications sent, failed or cancelled (never pending
    /// ones, never an open incident's).
    Outbox,
    /// Resolved and cancelled incidents, last changed before the cutoff,
    /// with their timelines, offers and outbox rows.
    ClosedIncidents,
}

impl Prunable {
    pub const ALL: [Prunable; 4] = [
        Self::Events,
        Self::Stream,
        Self::Outbox,
        Self::ClosedIncidents,
    ];

    /// The table, as `dispatcher_pruned_rows_total{table=…}` names it.
    pub fn table(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Stream => "stream",
            Self::Outbox => "outbox",
            Self::ClosedIncidents => "incidents",
        }
    }
}

/// Pruning; every [`super::Store`] implements it.
#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Removes up to `limit` rows of `what` older than `before` (oldest
    /// first) and returns how many went; fewer than `limit` means none
    /// are left. A closed incident's timeline, offers and outbox rows go
    /// with it and are not counted.
    async fn prune_batch(
        &self,
        what: Prunable,
        before: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<u64>;
}
