//! The store's side of reaching stewards ([`crate::notify`]): the phones
//! registered for Web Push, the keys the server made at its first start,
//! and what a notification's button or an SMS link needs of an offer.
//! Written once for both backends in [`super::reach_sql`].
//!
//! The ladder's own rows (one per push, repeat, SMS and call) are outbox
//! rows written with the offer by [`super::dispatch::DispatchStore`], and
//! cancelled there when the offer ends.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use super::notices::NewOutbox;
use crate::domain::{Lang, NewSubscription, Offer, PushSubscription, StewardId};

/// Reaching stewards' phones; every [`super::Store`] implements it.
#[async_trait]
pub trait ReachStore: Send + Sync {
    /// The server key `name`: the one stored, or `make()`'s, stored now.
    /// Instances starting together agree on the first one stored.
    async fn server_key(
        &self,
        name: &str,
        make: fn() -> String,
        now: DateTime<Utc>,
    ) -> StoreResult<String>;

    /// Registers a phone for `steward`, or updates it when its endpoint
    /// is known (a browser registering again, or a shared phone now
    /// logged in as someone else, whose subscription moves to them).
    /// `true` when it is new. `Conflict("too_many_subscriptions: …")`
    /// when the steward already has `max` others; `NotFound` for an
    /// unknown steward.
    async fn save_subscription(
        &self,
        steward: &StewardId,
        sub: &NewSubscription,
        lang: Lang,
        max: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<(PushSubscription, bool)>;

    /// A steward's phones, oldest first.
    async fn subscriptions_of(&self, steward: &StewardId) -> StoreResult<Vec<PushSubscription>>;

    /// Every phone of every steward (the roster's reachability).
    async fn all_subscriptions(&self) -> StoreResult<Vec<PushSubscription>>;

    async fn subscription_by_endpoint(
        &self,
        endpoint: &str,
    ) -> StoreResult<Option<PushSubscription>>;

    /// Replaces a subscription's endpoint and keys in place (the browser
    /// renewed it); `NotFound` when `id` is gone.
    async fn renew_subscription(
        &self,
        id: &str,
        sub: &NewSubscription,
        now: DateTime<Utc>,
    ) -> StoreResult<PushSubscription>;

    /// Removes one; `false` when it was not there.
    async fn delete_subscription(&self, id: &str) -> StoreResult<bool>;

    /// Removes one the push service no longer knows, unless it was renewed
    /// to another endpoint meanwhile.
    async fn forget_subscription(&self, id: &str, endpoint: &str) -> StoreResult<bool>;

    /// How the last push to a phone at `endpoint` went: `None` for
    /// delivered, the error otherwise (nothing if it was renewed since).
    async fn record_push(
        &self,
        id: &str,
        endpoint: &str,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Whether a message on one of `channels` about this offer reached the
    /// gateway: a reply by SMS or by a key on a call answers only an
    /// offer it was asked about.
    async fn reached_by(&self, offer_id: &str, channels: &[&str]) -> StoreResult<bool>;

    /// One offer.
    async fn offer(&self, id: &str) -> StoreResult<Option<Offer>>;

    /// A steward's most recent offer (a late reply is answered about it).
    async fn last_offer_of(&self, steward: &StewardId) -> StoreResult<Option<Offer>>;

    /// Marks an offer's SMS link used, if it was not: `false` when it had
    /// been already.
    async fn use_link(&self, offer_id: &str, now: DateTime<Utc>) -> StoreResult<bool>;

    /// Queues outbox rows outside an incident change (the answer to an
    /// SMS reply).
    async fn queue_outbox(&self, rows: Vec<NewOutbox>) -> StoreResult<()>;
}
