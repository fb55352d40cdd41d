//! Retention: what grows without bound (device events, stream rows, sent
//! notifications, closed incidents with their timelines) is pruned past
//! the age the operator set (`[retention]`), in the background.
//!
//! A pass every `retention.interval_s` goes through each kind in small
//! batches (`retention.batch` rows a statement, `retention.pause_ms`
//! between statements) until nothing older than its cutoff is left, so no
//! statement holds a lock for long and ingest always gets its turn. What
//! an open incident needs is never pruned (see
//! [`crate::store::retention`]). Every instance may run it: two pruning
//! the same rows only find fewer to delete.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::settings::RetentionSettings;
use crate::store::retention::{Prunable, RetentionStore};

/// What the pruner needs.
#[derive(Clone)]
pub struct RetentionDeps {
    pub settings: RetentionSettings,
    /// Only the pruning: the rest of the store is none of its business.
    pub store: Arc<dyn RetentionStore>,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
}

/// The age in days after which `what` is pruned; 0 keeps it for ever.
fn days(settings: &RetentionSettings, what: Prunable) -> u32 {
    match what {
        Prunable::Events => settings.events_days,
        Prunable::Stream => settings.stream_days,
        Prunable::Outbox => settings.outbox_days,
        Prunable::ClosedIncidents => settings.incidents_days,
    }
}

/// Runs a pass at start and every `interval_s` until `stop`.
pub async fn run(deps: RetentionDeps, stop: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(deps.settings.interval_s));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let pass = prune_once(&deps, &stop);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = pass => {}
        }
    }
}

/// One pass over every kind; returns the rows removed. A failure is
/// logged and the kind left for the next pass: pruning is never urgent.
pub async fn prune_once(deps: &RetentionDeps, stop: &CancellationToken) -> u64 {
    let pause = Duration::from_millis(deps.settings.pause_ms);
    let limit = i64::from(deps.settings.batch);
    let mut total = 0;
    for what in Prunable::ALL {
        let age = days(&deps.settings, what);
        if age == 0 {
            continue;
        }
        let before = deps.clock.now() - chrono::Duration::days(i64::from(age));
        loop {
            match deps.store.prune_batch(what, before, limit).await {
                Ok(n) => {
                    if n > 0 {
                        deps.metrics.pruned(what.table(), n);
                        total += n;
                    }
                    if n < u64::try_from(limit).unwrap_or(u64::MAX) || stop.is_cancelled() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, table = what.table(), "pruning failed; trying again at the next pass");
                    break;
                }
            }
            tokio::time::sleep(pause).await;
        }
    }
    if total > 0 {
        tracing::info!(rows = total, "retention pruned old rows");
    }
    total
}
