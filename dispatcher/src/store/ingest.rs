//! Device events in: stored once, decided by the rules, with the
//! incidents they open and those incidents' first offers.

use super::*;
use crate::domain::Actor;

/// Ingest; every [`Store`] implements it.
#[async_trait]
pub trait IngestStore: Send + Sync {
    /// Stores a batch of events in one transaction, idempotent on
    /// `(device_id, event_id)`, and runs the rules on each new one inside
    /// the same transaction: when it returns Ok, every event and every
    /// incident change it caused is committed, and only then may the
    /// messages be acknowledged. One result per event, in order.
    async fn ingest(&self, batch: &[IncomingEvent], rules: &RuleBook) -> StoreResult<Vec<Applied>> {
        Ok(self.ingest_offering(batch, rules, None).await?.applied)
    }
    /// [`Self::ingest`], and in the same transaction the first offers of
    /// each incident the batch opens that is due for dispatch (a press
    /// then waits for one commit, not two, and for no other writer in
    /// between). An incident nobody could be offered stays due, untouched,
    /// for the engine.
    async fn ingest_offering(
        &self,
        batch: &[IncomingEvent],
        rules: &RuleBook,
        first_offers: Option<&crate::domain::FirstOffers<'_>>,
    ) -> StoreResult<Ingested>;
    /// Applies effects raised outside ingest (a device going offline or
    /// coming back, a deadline coming due) in one transaction. `rules`
    /// decide whether an opened incident is dispatched and who is told.
    async fn apply(
        &self,
        effects: &[Effect],
        actor: &Actor,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Vec<Applied>>;
    async fn events(&self, filter: &EventFilter) -> StoreResult<Vec<StoredEvent>>;
    /// Unknown devices, the most recently heard first: `limit` of them
    /// after skipping `offset`.
    async fn unknown_devices(&self, limit: i64, offset: i64) -> StoreResult<Vec<UnknownDevice>>;
}
