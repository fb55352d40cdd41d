//! The outbox: what must leave the process (webhooks, device commands,
//! pushes, texts and calls), written in the transaction that decides it,
//! claimed by a worker with a lease, and finished with how it went.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use super::StoreResult;
use super::dispatch::{Channel, DeliveryOutcome, OutboxItem};

/// Claiming and finishing outbox rows; every [`super::Store`] implements
/// it, and the outbox worker needs nothing else.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Claims up to `limit` pending outbox rows due by `now` for `lease`.
    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
    ) -> StoreResult<Vec<OutboxItem>> {
        self.claim_outbox_for(now, lease, limit, &Channel::ALL)
            .await
    }
    /// [`Self::claim_outbox`] of these channels only: a worker whose
    /// webhooks are all busy still claims device commands and pushes.
    async fn claim_outbox_for(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
        channels: &[Channel],
    ) -> StoreResult<Vec<OutboxItem>>;
    /// Records how a delivery attempt of a claimed row went (attempts
    /// count up). False, and nothing written, when the claim is no
    /// longer this one (its lease ran out and another worker claimed or
    /// finished the row): a late report never undoes another's.
    /// `NotFound` for a row that does not exist.
    async fn finish_outbox(
        &self,
        item: &OutboxItem,
        outcome: &DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Gives a claim back unsent (the worker no longer trusts it, after a
    /// pause): the row is claimable at once. False when the claim was no
    /// longer this one.
    async fn release_outbox(&self, item: &OutboxItem) -> StoreResult<bool>;
}
