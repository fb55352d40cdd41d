//! Hearing the other instances on a shared PostgreSQL.
//!
//! The store's change feed ([`crate::store::changes`]) says, as each
//! commit lands, which stewards any instance changed and that the stream
//! grew. This task turns that into what the instance keeps current: the
//! matcher re-reads those stewards (and offers waiting incidents when one
//! became free), the stream hub reads the new rows. When the feed
//! (re)connects, notices may have been lost: every steward is re-read and
//! the hub looks at the log.
//!
//! While the feed is down the instance still works, on a matcher that may
//! lag: a turn that finds nobody re-reads every steward from the store
//! before it escalates ([`crate::dispatch::Engine::dispatch`]), so no
//! "nobody available" rests on a stale view.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::dispatch::EngineHandle;
use crate::metrics::Metrics;
use crate::notify::hub::{Hub, Polling};
use crate::store::changes::{ChangeFeed, Changes};

/// The longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Follows `feed` until `stop`.
pub async fn follow(
    mut feed: Box<dyn ChangeFeed>,
    engine: EngineHandle,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let first_backoff = Duration::from_millis(100);
    let mut backoff = first_backoff;
    let mut down = false;
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => return,
            next = feed.next() => next,
        };
        match next {
            Ok(changes) => {
                if down && changes.resync {
                    tracing::info!(
                        "hearing the other instances' changes again; re-read every steward"
                    );
                }
                if changes.resync {
                    hub.set_polling(Polling::Told);
                    metrics.change_feed_connected.store(1, Ordering::Relaxed);
                }
                down = false;
                backoff = first_backoff;
                apply(changes, &engine, &hub);
            }
            Err(e) => {
                if !down {
                    tracing::warn!(
                        error = %e,
                        "cannot hear the other instances' changes; reconnecting. Until then \
                         the stream hub polls and a turn that finds nobody re-reads the stewards"
                    );
                }
                down = true;
                hub.set_polling(Polling::Often);
                metrics.change_feed_connected.store(0, Ordering::Relaxed);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

fn apply(changes: Changes, engine: &EngineHandle, hub: &Hub) {
    if changes.resync {
        engine.resync();
    }
    if changes.resync || changes.stream {
        hub.nudge();
    }
    engine.stewards_changed(changes.stewards.into_iter().collect());
}
