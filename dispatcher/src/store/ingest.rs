//! Device events in: the transaction a batch is stored in, and what
//! the board reads of events. What the events do is
//! [`crate::ingest::Ingest`]'s and [`crate::dispatch::lifecycle`]'s.

use std::collections::HashMap;

use super::dispatch_tx::DispatchTx;
pub(crate) use super::registry_cache::Registry;
use super::*;

/// Ingest; every [`Store`] implements it.
#[async_trait]
pub trait IngestStore: Send + Sync {
    /// Opens the write transaction a batch of events is stored in
    /// ([`crate::ingest::IngestBatch`] runs it); SQLite: in this process's
    /// write turn.
    #[allow(private_interfaces)]
    async fn begin_ingest(&self) -> StoreResult<Box<dyn IngestTx + '_>>;
    async fn events(&self, filter: &EventFilter) -> StoreResult<Vec<StoredEvent>>;
    /// Unknown devices, the most recently heard first: `limit` of them
    /// after skipping `offset`.
    async fn unknown_devices(&self, limit: i64, offset: i64) -> StoreResult<Vec<UnknownDevice>>;
}

/// The transaction of a batch: dispatch's, and the statements only a
/// batch needs.
#[async_trait]
pub(crate) trait IngestTx: DispatchTx {
    /// The batch's devices and the elders they are bound to (from the
    /// store's copy at its registry version, reading only what it lacks).
    async fn registry_for(&mut self, batch: &[IncomingEvent]) -> StoreResult<Registry>;

    /// Inserts the first occurrence of each event (`first`), skipping
    /// those already stored: the new rows' `seq` by `(device_id,
    /// event_id)`. Inserting before deciding is what makes a redelivery
    /// racing its original on another instance a duplicate.
    async fn insert_events(
        &mut self,
        batch: &[IncomingEvent],
        first: &[bool],
        registry: &Registry,
    ) -> StoreResult<HashMap<(String, String), i64>>;

    /// Records what each new event did.
    async fn record_outcomes(
        &mut self,
        outcomes: &[(i64, EventAction, Option<String>)],
    ) -> StoreResult<()>;
}
