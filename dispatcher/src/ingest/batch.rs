//! A batch of device events into the store, exactly once: one
//! transaction stores the events (idempotent on `(device_id,
//! event_id)`), runs the rules on each new one, applies what they
//! decided ([`crate::dispatch::lifecycle::effects`]), records what each
//! event did, and makes the first offers of the incidents it opened, so
//! a press waits for one commit. Only when it has committed may the
//! messages be acknowledged.

use std::collections::HashSet;

use async_trait::async_trait;

use crate::dispatch::lifecycle::effects::{self, Opened, first_that_acted};
use crate::dispatch::lifecycle::turn::first_offers;
use crate::domain::{Actor, FirstOffers};
use crate::rules::{RuleBook, Verdict};
use crate::store::dispatch_tx::Committed;
use crate::store::ingest::{IngestStore, IngestTx, Registry};
use crate::store::{Applied, EventAction, IncomingEvent, Ingested, StoreResult};

/// Storing device events, on any store that ingests.
#[async_trait]
pub trait IngestBatch {
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
    /// between). An incident nobody could be offered stays due,
    /// untouched, for the engine.
    async fn ingest_offering(
        &self,
        batch: &[IncomingEvent],
        rules: &RuleBook,
        first_offers: Option<&FirstOffers<'_>>,
    ) -> StoreResult<Ingested>;
}

#[async_trait]
impl<S: IngestStore + ?Sized> IngestBatch for S {
    #[tracing::instrument(skip_all, fields(events = batch.len()))]
    async fn ingest_offering(
        &self,
        batch: &[IncomingEvent],
        rules: &RuleBook,
        first_offers: Option<&FirstOffers<'_>>,
    ) -> StoreResult<Ingested> {
        if batch.is_empty() {
            return Ok(Ingested::default());
        }
        let mut tx = self.begin_ingest().await?;
        match store_batch(&mut *tx, batch, rules, first_offers).await {
            Ok(mut ingested) => {
                ingested.changed = tx.commit().await?;
                Ok(ingested)
            }
            Err(e) => {
                // Rolled back before the write turn passes on: the retry
                // that follows must not find the lock still held.
                tx.rollback().await?;
                Err(e)
            }
        }
    }
}

/// A batch's writes, inside its transaction.
async fn store_batch(
    tx: &mut dyn IngestTx,
    batch: &[IncomingEvent],
    rules: &RuleBook,
    offering: Option<&FirstOffers<'_>>,
) -> StoreResult<Ingested> {
    let registry = tx.registry_for(batch).await?;
    let first = first_occurrences(batch);
    let seqs = tx.insert_events(batch, &first, &registry).await?;

    let mut opened = Opened::default();
    let mut results = Vec::with_capacity(batch.len());
    let mut outcomes = Vec::new();
    for (e, is_first) in batch.iter().zip(first) {
        let key = (e.device_id.to_string(), e.message.event_id.to_string());
        let seq = if is_first {
            seqs.get(&key).copied()
        } else {
            None
        };
        let Some(seq) = seq else {
            results.push(Applied {
                action: EventAction::Duplicate,
                incident: None,
            });
            continue;
        };
        let applied = decide_and_apply(tx, e, rules, &registry, &mut opened).await?;
        let incident_id = applied.incident.as_ref().map(|i| i.id.to_string());
        if applied.action != EventAction::Recorded || incident_id.is_some() {
            outcomes.push((seq, applied.action, incident_id));
        }
        results.push(applied);
    }
    tx.record_outcomes(&outcomes).await?;
    let mut offered = Vec::new();
    if let Some(first) = offering {
        for (incident, d) in opened.0 {
            let elder = incident
                .elder_id
                .as_ref()
                .and_then(|id| registry.elder(id))
                .cloned();
            offered.extend(first_offers(tx, incident, d, elder, first).await?);
        }
    }
    Ok(Ingested {
        applied: results,
        offered,
        changed: Committed::default(),
    })
}

/// What the rules make of one new event, applied.
async fn decide_and_apply(
    tx: &mut dyn IngestTx,
    e: &IncomingEvent,
    rules: &RuleBook,
    registry: &Registry,
    opened: &mut Opened,
) -> StoreResult<Applied> {
    let none = |action| {
        Ok(Applied {
            action,
            incident: None,
        })
    };
    if e.rate_limited {
        return none(EventAction::RateLimited);
    }
    let (device, elder) = registry.lookup(&e.device_id);
    match rules.decide(&e.message, e.received_at, device, elder) {
        Verdict::UnknownDevice => none(EventAction::UnknownDevice),
        Verdict::UnknownType => none(EventAction::UnknownType),
        Verdict::Effects(decided) => {
            let actor = Actor::Device(e.device_id.clone());
            let applied =
                effects::apply(tx, &decided, &actor, e.received_at, rules, opened).await?;
            Ok(first_that_acted(applied))
        }
    }
}

/// For each event of a batch, whether it is the first with its
/// `(device_id, event_id)` in the batch. Only first occurrences are
/// offered to the database; a repeat inside one batch is a duplicate
/// whatever the database says about the first.
fn first_occurrences(batch: &[IncomingEvent]) -> Vec<bool> {
    let mut seen = HashSet::with_capacity(batch.len());
    batch
        .iter()
        .map(|e| seen.insert((e.device_id.as_str(), e.message.event_id.as_str())))
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::domain::{DeviceId, EventId};
    use protocol::{EventMessage, EventType};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn event(device: &str, id: &str) -> IncomingEvent {
        IncomingEvent {
            device_id: DeviceId::parse(device).unwrap(),
            message: EventMessage::new(
                EventId::parse(id).unwrap(),
                EventType::CallPressed,
                at("2026-11-28T16:00:00Z"),
            ),
            received_at: at("2026-11-28T16:00:00Z"),
            rate_limited: false,
        }
    }

    #[test]
    fn only_the_first_of_a_repeat_is_offered() {
        let batch = [
            event("a", "1"),
            event("b", "1"),
            event("a", "1"),
            event("a", "2"),
        ];
        assert_eq!(first_occurrences(&batch), vec![true, true, false, true]);
    }
}
