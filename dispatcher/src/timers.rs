//! Work that comes due: deadline rows (a bed-exit return window; later
//! offer expiries and escalations), devices that went silent, and the
//! batched heartbeat flush.
//!
//! Deadlines live in the store, not in memory, and each tick claims the
//! due ones with a lease: a restart, or a dead instance, delays nothing by
//! more than one tick plus the lease. The clock is the injectable one, so
//! tests move time instead of waiting; only the tick itself is real time.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, Worker};
use crate::dispatch::{Changed, Lifecycle, after_commit};
use crate::ingest::{HealthChange, Liveness};
use crate::metrics::Metrics;
use crate::rules::RuleBook;
use crate::settings::Settings;
use crate::store::{EventAction, TimerStore};

/// How long a claimed deadline is ours before another instance may take it.
const LEASE: chrono::Duration = chrono::Duration::seconds(60);
/// Deadlines claimed per tick.
const CLAIM_BATCH: i64 = 200;
/// How often the liveness table is refreshed from the registry.
const RELOAD_EVERY: Duration = Duration::from_secs(30);

/// What the timer loops need.
#[derive(Clone)]
pub struct TimerDeps {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn TimerStore>,
    /// What a fired deadline's incident is told to (dispatch, webhooks).
    pub rules: Arc<RuleBook>,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    pub liveness: Arc<Liveness>,
    pub health_tx: mpsc::UnboundedSender<HealthChange>,
    /// When this process started listening: silence before it is not
    /// counted against devices.
    pub listening_since: chrono::DateTime<chrono::Utc>,
    /// Incidents opened by deadlines go to dispatch at once.
    pub engine: crate::dispatch::EngineHandle,
    /// Nudged after commits that wrote stream or outbox rows.
    pub hub: std::sync::Arc<crate::notify::hub::Hub>,
    /// Deadlines are fired only while this instance acts.
    pub fence: Arc<crate::fence::Fence>,
}

/// Claims and fires due deadlines every tick until `stop`.
pub async fn deadline_loop(deps: TimerDeps, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(deps.settings.ingest.tick_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !deps.fence.may_act() {
            continue;
        }
        let began = deps.clock.now();
        match fire_due(&deps).await {
            Ok(_) => deps.clock.pass_done(Worker::Deadlines, began),
            Err(e) => {
                tracing::warn!(error = %e, "could not process due deadlines; retrying next tick");
            }
        }
    }
}

/// Fires every deadline due now. Public so tests can drive it directly.
pub async fn fire_due(deps: &TimerDeps) -> Result<usize, crate::store::StoreError> {
    let mut fired = 0;
    loop {
        let now = deps.clock.now();
        let due = deps.store.claim_due(now, LEASE, CLAIM_BATCH).await?;
        if due.is_empty() {
            return Ok(fired);
        }
        for deadline in &due {
            let done = deps.store.fire_deadline(deadline, now, &deps.rules).await?;
            fired += 1;
            let mut changed = Changed::committed(done.changed);
            for a in &done.value {
                if let (EventAction::Opened, Some(i)) = (a.action, &a.incident) {
                    deps.metrics.incident_opened(i.kind, i.priority);
                    tracing::info!(incident = %i.id, kind = %i.kind, deadline = %deadline.key, "incident opened by a deadline");
                    // Its first offers are the engine's.
                    changed.to_offer.push(i.id.clone());
                }
            }
            after_commit(&deps.hub, &deps.engine, changed);
        }
        if (due.len() as i64) < CLAIM_BATCH {
            return Ok(fired);
        }
    }
}

/// Finds silent devices every tick and refreshes the table from the
/// registry now and then.
pub async fn liveness_loop(deps: TimerDeps, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(deps.settings.ingest.tick_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_reload = tokio::time::Instant::now();
    let mut deaf = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if last_reload.elapsed() >= RELOAD_EVERY {
            last_reload = tokio::time::Instant::now();
            reload(&deps).await;
        }
        let began = deps.clock.now();
        // A device's silence counts only while this instance could have
        // heard it: off the broker (or stepped back, leaving it to the
        // others) every device would look silent. When it hears again,
        // the silence meanwhile is forgiven.
        if !deps.fence.on_broker() || !deps.fence.may_act() {
            deaf = true;
            continue;
        }
        if std::mem::take(&mut deaf) {
            deps.liveness.forgive(began);
        }
        for change in deps.liveness.sweep(began) {
            let _ = deps.health_tx.send(change);
        }
        if deps.clock.is_manual() {
            let _ = deps.health_tx.send(HealthChange::Swept { at: began });
        }
    }
}

/// Merges the registry into the liveness table.
pub async fn reload(deps: &TimerDeps) {
    match deps.store.liveness().await {
        Ok(devices) => deps.liveness.reload(devices, deps.listening_since),
        Err(e) => tracing::warn!(error = %e, "could not refresh devices from the store"),
    }
}

/// Writes changed heartbeats in one batch every `heartbeat_flush_ms`, and
/// once more on the way out.
pub async fn flush_loop(deps: TimerDeps, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(
        deps.settings.ingest.heartbeat_flush_ms,
    ));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            _ = tick.tick() => false,
        };
        flush(&deps, stopping).await;
        if stopping {
            return;
        }
    }
}

/// One batched write of the heartbeats due, or of all not yet written
/// (`all`, on the way out).
pub async fn flush(deps: &TimerDeps, all: bool) {
    let beats = if all {
        deps.liveness.take_all()
    } else {
        deps.liveness.take_due(deps.clock.now())
    };
    if beats.is_empty() {
        return;
    }
    match deps.store.flush_heartbeats(&beats).await {
        Ok(()) => {
            deps.metrics
                .heartbeat_flushes
                .fetch_add(1, Ordering::Relaxed);
        }
        Err(e) if e.is_transient() => {
            tracing::warn!(error = %e, heartbeats = beats.len(), "heartbeat flush failed; keeping them for the next one");
            deps.liveness.restore_dirty(beats);
        }
        Err(e) => {
            // Retrying a batch the database refuses would refuse every
            // later flush too; the next heartbeats replace these.
            tracing::error!(error = %e, heartbeats = beats.len(), "heartbeat flush refused; dropping this batch");
            // The next heartbeat of each is written at once.
            deps.liveness.forget_written(&beats);
        }
    }
    deps.metrics
        .heartbeats_pending
        .store(deps.liveness.pending() as i64, Ordering::Relaxed);
}
