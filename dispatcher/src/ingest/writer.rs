//! The writer: commit, then acknowledge. And the health task.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rumqttc::AsyncClient;
use tokio::sync::mpsc;

use super::{HealthChange, IngestDeps, Item};
use crate::store::{Applied, EventAction, IncomingEvent, StoreError};

/// Longest wait between attempts when the store is down.
const MAX_RETRY: Duration = Duration::from_secs(5);

pub(crate) async fn run(
    deps: IngestDeps,
    client: AsyncClient,
    mut items: mpsc::UnboundedReceiver<Item>,
) {
    let batch_max = deps.settings.ingest.batch_max;
    let mut batch = Vec::with_capacity(batch_max);
    while let Some(first) = items.recv().await {
        batch.push(first);
        while batch.len() < batch_max {
            match items.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        deps.metrics
            .ingest_queue
            .fetch_sub(batch.len() as i64, Ordering::Relaxed);
        let events: Vec<IncomingEvent> = batch
            .iter()
            .filter_map(|i| match i {
                Item::Event(_, e) => Some(e.clone()),
                Item::AckOnly(_) => None,
            })
            .collect();
        if !events.is_empty() {
            let applied = commit(&deps, &events).await;
            record(&deps, &events, &applied);
        }
        // Committed: now, and only now, the broker may forget them.
        for item in batch.drain(..) {
            let publish = match item {
                Item::Event(p, _) | Item::AckOnly(p) => p,
            };
            if let Err(e) = client.ack(&publish).await {
                tracing::warn!(error = %e, "could not queue an acknowledgement; the broker will redeliver");
            }
        }
    }
}

/// Stores a batch, retrying while the store is unavailable. Never gives up
/// on a transient failure: an unacknowledged message is safe in the
/// broker, and the broker stops sending once its inflight window is full.
async fn commit(deps: &IngestDeps, events: &[IncomingEvent]) -> Vec<Applied> {
    let mut wait = Duration::from_millis(50);
    loop {
        match deps.store.ingest(events, &deps.rules).await {
            Ok(applied) => return applied,
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
                let mut out = Vec::with_capacity(events.len());
                for event in events {
                    out.extend(Box::pin(commit(deps, std::slice::from_ref(event))).await);
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
                return vec![Applied {
                    action: EventAction::Recorded,
                    incident: None,
                }];
            }
        }
    }
}

/// Counts and logs what a committed batch did, and hands opened incidents
/// to dispatch.
fn record(deps: &IngestDeps, events: &[IncomingEvent], applied: &[Applied]) {
    if applied.iter().any(|a| a.incident.is_some()) {
        deps.hub.nudge();
    }
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
            match result.action {
                EventAction::Opened => {
                    deps.metrics
                        .incident_opened(incident.kind, incident.priority);
                    deps.engine.kick(&incident.id);
                }
                EventAction::Cancelled | EventAction::Cleared => deps.engine.released(&incident.id),
                _ => {}
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
}

/// Applies devices going offline and coming back, retrying while the store
/// is down.
pub(crate) async fn health(deps: IngestDeps, mut changes: mpsc::UnboundedReceiver<HealthChange>) {
    while let Some(change) = changes.recv().await {
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
    };
    let applied = deps
        .store
        .apply(&effects, "system", now, &deps.rules)
        .await?;
    deps.hub.nudge();
    for applied in applied {
        if let (EventAction::Opened, Some(i)) = (applied.action, &applied.incident) {
            deps.metrics.incident_opened(i.kind, i.priority);
        }
    }
    Ok(())
}
