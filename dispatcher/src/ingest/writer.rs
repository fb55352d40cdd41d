//! The writer: commit, then acknowledge, as a pipeline. And the health
//! task.
//!
//! The classifier numbers each event as it hands it over ([`Intake`]). The
//! **committer** stores events in batches, one transaction each, and
//! publishes the number of the last event committed. The **acker** sends
//! each message's PUBACK in arrival order, as soon as every event up to it
//! is committed. So the next batch gathers while one commits, and a
//! heartbeat that arrived before any uncommitted event is acknowledged at
//! once instead of waiting behind a commit.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rumqttc::{AsyncClient, Publish};
use tokio::sync::{mpsc, watch};

use super::{HealthChange, IngestDeps, Item};
use crate::clock::Worker;
use crate::dispatch::engine::log_offered;
use crate::dispatch::{Changed, Lifecycle, after_commit};
use crate::domain::{Actor, IncidentId};
use crate::domain::{DispatchTurn, FirstOffers};
use crate::ingest::IngestBatch;
use crate::store::{Applied, EventAction, IncomingEvent, Ingested, StoreError};

/// Longest wait between attempts when the store is down.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// An event numbered in arrival order.
pub(crate) type Numbered = (u64, IncomingEvent);

/// A message waiting for its acknowledgement: it may go once every event
/// up to number `after` is committed.
pub(crate) struct PendingAck {
    publish: Publish,
    after: u64,
}

/// The writer is gone (shutdown under way).
#[derive(Debug)]
pub(crate) struct WriterGone;

/// The classifier's end of the pipeline.
pub(crate) struct Intake {
    events: mpsc::Sender<Numbered>,
    acks: mpsc::UnboundedSender<PendingAck>,
    /// The number of the last event handed over.
    last: u64,
}

impl Intake {
    pub(crate) fn new(
        events: mpsc::Sender<Numbered>,
        acks: mpsc::UnboundedSender<PendingAck>,
    ) -> Self {
        Self {
            events,
            acks,
            last: 0,
        }
    }

    /// Hands one message over. Waits while the committer has a full queue
    /// of events: the broker keeps the rest until we are ready for them.
    pub(crate) async fn push(&mut self, item: Item) -> Result<(), WriterGone> {
        let publish = match item {
            Item::Event(publish, event) => {
                self.last += 1;
                self.events
                    .send((self.last, event))
                    .await
                    .map_err(|_| WriterGone)?;
                publish
            }
            Item::AckOnly(publish) => publish,
        };
        self.acks
            .send(PendingAck {
                publish,
                after: self.last,
            })
            .map_err(|_| WriterGone)
    }
}

/// Stores events in batches, back to back, and announces each batch's last
/// number once it is committed.
pub(crate) async fn commit_loop(
    deps: IngestDeps,
    mut events: mpsc::Receiver<Numbered>,
    committed: watch::Sender<u64>,
) {
    let batch_max = deps.settings.ingest.batch_max;
    let mut batch: Vec<Numbered> = Vec::with_capacity(batch_max);
    while events.recv_many(&mut batch, batch_max).await > 0 {
        let last = batch.last().map_or(0, |(n, _)| *n);
        let stored: Vec<IncomingEvent> = batch.drain(..).map(|(_, e)| e).collect();
        let ingested = commit(&deps, &stored).await;
        record(&deps, &stored, &ingested);
        committed.send_replace(last);
    }
}

/// Acknowledges messages in arrival order, each once what came before it
/// is committed.
pub(crate) async fn ack_loop(
    deps: IngestDeps,
    client: AsyncClient,
    mut acks: mpsc::UnboundedReceiver<PendingAck>,
    mut committed: watch::Receiver<u64>,
) {
    let mut ready = Vec::new();
    while acks.recv_many(&mut ready, 1024).await > 0 {
        for ack in ready.drain(..) {
            if committed.wait_for(|c| *c >= ack.after).await.is_err() {
                // The committer stopped first (shutdown with a batch
                // unfinished): this and what follows stay unacknowledged,
                // and the broker redelivers them next time.
                return;
            }
            // Committed: now, and only now, the broker may forget it.
            if let Err(e) = client.ack(&ack.publish).await {
                tracing::warn!(error = %e, "could not queue an acknowledgement; the broker will redeliver");
            }
            if let Some(receipts) = &deps.receipts {
                receipts.acknowledged(&ack.publish.topic, &ack.publish.payload);
            }
            deps.metrics.ingest_queue.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Stores a batch, with the first offers of the incidents it opens,
/// retrying while the store is unavailable. Never gives up on a transient
/// failure: an unacknowledged message is safe in the broker, and the
/// broker stops sending once its inflight window is full.
async fn commit(deps: &IngestDeps, events: &[IncomingEvent]) -> Ingested {
    let mut wait = Duration::from_millis(50);
    let mut offering = true;
    loop {
        let now = deps.clock.now();
        let planner = |turn: &DispatchTurn| deps.engine.plan(&deps.rules, turn, now);
        let first = FirstOffers {
            planner: &planner,
            now,
        };
        let first = offering.then_some(&first);
        match deps.store.ingest_offering(events, &deps.rules, first).await {
            Ok(ingested) => return ingested,
            Err(e) if offering => {
                // Offering is the engine's work too: a batch must never
                // wait or fail for it. Stored without, its incidents stay
                // due for the engine.
                tracing::warn!(error = %e, events = events.len(), "could not store the batch with its first offers; storing it without them");
                offering = false;
            }
            Err(e) if e.is_transient() => {
                deps.metrics.store_retries.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, events = events.len(), retry_in = ?wait, "store unavailable; holding the batch");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_RETRY);
            }
            Err(e) if events.len() > 1 => {
                // Something in the batch itself is wrong: store the events
                // one by one so one bad event cannot hold the others back.
                tracing::error!(error = %e, "batch failed; storing its events one by one");
                let mut out = Ingested::default();
                for event in events {
                    let one = Box::pin(commit(deps, std::slice::from_ref(event))).await;
                    out.applied.extend(one.applied);
                    out.offered.extend(one.offered);
                    out.changed = std::mem::take(&mut out.changed).and(one.changed);
                }
                return out;
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    device = %events[0].device_id,
                    event_id = %events[0].message.event_id,
                    "an event could not be stored and is dropped; this is a bug, please report it"
                );
                return Ingested {
                    applied: vec![Applied {
                        action: EventAction::Recorded,
                        incident: None,
                    }],
                    ..Ingested::default()
                };
            }
        }
    }
}

/// Counts and logs what a committed batch did, and hands opened incidents
/// not offered yet to dispatch.
fn record(deps: &IngestDeps, events: &[IncomingEvent], ingested: &Ingested) {
    let Ingested {
        applied,
        offered,
        changed: committed,
    } = ingested;
    // What the commit said it changed (stewards a cancel or a clear
    // freed), and the turns it took.
    let mut changed = Changed::committed(committed.clone());
    changed.stream |= applied.iter().any(|a| a.incident.is_some());
    changed.turns = offered;
    let offered_now: HashSet<&IncidentId> = offered.iter().map(|t| &t.turn.incident.id).collect();
    let now = deps.clock.now();
    if let Some(oldest) = events.iter().map(|e| e.received_at).min() {
        deps.metrics
            .ingest_lag_ms
            .store((now - oldest).num_milliseconds(), Ordering::Relaxed);
    }
    for (event, result) in events.iter().zip(applied) {
        match result.action {
            EventAction::Duplicate => {
                deps.metrics
                    .events_duplicate
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            _ => deps.metrics.events_stored.fetch_add(1, Ordering::Relaxed),
        };
        if let Some(incident) = &result.incident {
            if result.action == EventAction::Opened {
                deps.metrics
                    .incident_opened(incident.kind, incident.priority);
                if !offered_now.contains(&incident.id) {
                    changed.to_offer.push(incident.id.clone());
                }
            }
            tracing::info!(
                device = %event.device_id,
                event = %event.message.event_type,
                action = %result.action,
                incident = %incident.id,
                kind = %incident.kind,
                priority = %incident.priority,
                "incident {}", result.action
            );
        } else if result.action == EventAction::UnknownDevice {
            tracing::warn!(
                device = %event.device_id,
                event = %event.message.event_type,
                "event from an unregistered device kept for supervisors"
            );
        }
    }
    for taken in offered {
        for offer in &taken.offers {
            log_offered(&taken.turn.incident.id, offer);
        }
    }
    // The claimed stewards are busy now: the matcher must not rank them.
    after_commit(&deps.hub, &deps.engine, changed);
}

/// Applies devices going offline and coming back, retrying while the store
/// is down.
pub(crate) async fn health(deps: IngestDeps, mut changes: mpsc::UnboundedReceiver<HealthChange>) {
    while let Some(change) = changes.recv().await {
        if let HealthChange::Swept { at } = change {
            deps.clock.pass_done(Worker::Liveness, at);
            continue;
        }
        let mut wait = Duration::from_millis(100);
        loop {
            match apply_health(&deps, &change).await {
                Ok(()) => break,
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, retry_in = ?wait, "store unavailable; holding a device health change");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_RETRY);
                }
                Err(e) => {
                    tracing::error!(error = %e, ?change, "could not apply a device health change");
                    break;
                }
            }
        }
    }
}

async fn apply_health(deps: &IngestDeps, change: &HealthChange) -> Result<(), StoreError> {
    let now = deps.clock.now();
    let effects = match change {
        HealthChange::WentOffline { device, why } => {
            let Some(device) = deps.store.device(device).await? else {
                return Ok(());
            };
            tracing::warn!(device = %device.id, %why, "device offline");
            deps.rules.device_offline(&device, why)
        }
        HealthChange::CameBack { device } => {
            tracing::info!(%device, "device heard again");
            deps.rules.device_heard(device)
        }
        HealthChange::Swept { .. } => return Ok(()),
    };
    let done = deps
        .store
        .apply(&effects, &Actor::System, now, &deps.rules)
        .await?;
    after_commit(&deps.hub, &deps.engine, Changed::committed(done.changed));
    for applied in done.value {
        if let (EventAction::Opened, Some(i)) = (applied.action, &applied.incident) {
            deps.metrics.incident_opened(i.kind, i.priority);
        }
    }
    Ok(())
}
