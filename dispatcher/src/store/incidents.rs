//! Incidents as clients read them.

use super::*;

/// Incidents as clients read them; every [`Store`] implements it.
#[async_trait]
pub trait IncidentStore: Send + Sync {
    async fn incidents(&self, filter: &IncidentFilter) -> StoreResult<Vec<Incident>>;
    /// One incident with its offers, timeline, the matcher's reasoning and
    /// its deliveries. (A supervisor's cancel is
    /// [`crate::dispatch::Lifecycle::cancel`].)
    async fn incident(&self, id: &IncidentId) -> StoreResult<Option<IncidentDetail>>;
    /// Whether the steward holds a live offer (unanswered, not expired at
    /// `now`) of an open incident of this elder, or is assigned an open
    /// one, or is assigned an open follow-up of the elder: the only ways
    /// a steward may read an elder's health data. Declined, expired,
    /// withdrawn, closed, the follow-up done or handed back: no longer.
    async fn steward_sees_elder(
        &self,
        steward: &StewardId,
        elder: &ElderId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// The open incident holding a dedup key, if any.
    async fn open_incident(&self, key: &DedupKey) -> StoreResult<Option<Incident>>;
}
