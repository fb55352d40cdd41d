//! Whether this instance may act on its own: take dispatch turns (offer,
//! re-offer, escalate), fire deadlines, and send what the outbox holds.
//!
//! Every such act is a transaction the store fences by itself (locks,
//! compare-and-set, a claim's own lease as its token), so an instance can
//! never act twice with another. The fence is about the instance that
//! should step back so the others carry on:
//!
//! - **Cut off from the store.** A heartbeat (a round trip that records
//!   this instance, [`crate::store::Store::heartbeat`]) has not answered
//!   for [`STALE`]. This also covers an instance that comes back from a
//!   pause (a long stall, a suspended VM): the time since its last answer
//!   shows the pause, and it acts again only after the store has answered
//!   anew. What it held before the pause is fenced in the store: its
//!   transactions were ended by PostgreSQL's idle-in-transaction timeout,
//!   and its claims were taken over (`OutboxItem::claimed_until`).
//! - **Cut off from the broker while another instance is on it.** It
//!   hears no press and cannot tell a button that help is coming; the
//!   others can. When no instance holds the broker (the broker itself is
//!   down or restarting), every instance keeps acting on what the store
//!   holds: offers expire and are re-offered, escalations happen, and
//!   nothing waits for the broker to come back.
//!
//! `/readyz` says where an instance stands; `/metrics` has
//! `dispatcher_acting` and `dispatcher_peers_alive`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::store::{InstanceBeat, Peers, Store};

/// This process's heartbeat id: its MQTT client id and an incarnation,
/// so an instance restarted under the same client id (after a crash) is a
/// new holder, and the claims of the one that died are taken over.
/// PostgreSQL's `application_name` is at most 63 bytes.
pub fn instance_id(client_id: &str) -> String {
    let incarnation = uuid::Uuid::new_v4().simple().to_string();
    let mut name: String = client_id.chars().take(48).collect();
    while name.len() > 48 {
        name.pop();
    }
    format!("{name}:{}", &incarnation[..8])
}

/// How often the heartbeat goes.
pub const BEAT_EVERY: Duration = Duration::from_millis(500);
/// How long a heartbeat may take before it counts as unanswered.
const BEAT_TIMEOUT: Duration = Duration::from_secs(1);
/// Without an answer for this long, the instance stops acting, and
/// counts what it claimed before as no longer its own. Well inside
/// [`crate::store::ORPHANED_AFTER_S`], after which the others take its
/// claims over: it lets go before they take.
pub const STALE: Duration = Duration::from_millis(1500);

/// Where an instance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Acting,
    /// No heartbeat answered for [`STALE`]: the store is unreachable, or
    /// this process was paused and has not heard from it since.
    StoreSilent,
    /// Off the broker while another instance holds it.
    OffBroker,
}

impl Standing {
    /// What `/readyz` and the log say.
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Acting => "acting",
            Standing::StoreSilent => "stepped back: the store has not answered a heartbeat",
            Standing::OffBroker => "stepped back: off the broker while another instance is on it",
        }
    }
}

/// The rule, on what the instance knows.
fn standing(store_answered: bool, on_broker: bool, peers: Peers) -> Standing {
    if !store_answered {
        Standing::StoreSilent
    } else if !on_broker && peers.on_broker > 0 {
        Standing::OffBroker
    } else {
        Standing::Acting
    }
}

#[derive(Debug, Default)]
enum Watch {
    /// No heartbeat runs (a test that drives the engine by hand): the
    /// instance acts.
    #[default]
    Unwatched,
    Watched {
        /// When the last answered heartbeat was sent.
        answered_at: Option<Instant>,
        /// When an answer came after a silence of [`STALE`] or more: the
        /// others may have taken over what this instance claimed before.
        broken_at: Option<Instant>,
        peers: Peers,
    },
}

/// This instance's standing, shared by the workers that act.
pub struct Fence {
    broker_connected: Arc<AtomicBool>,
    watch: Mutex<Watch>,
}

impl Fence {
    pub fn new(broker_connected: Arc<AtomicBool>) -> Self {
        Self {
            broker_connected,
            watch: Mutex::default(),
        }
    }

    pub fn standing(&self) -> Standing {
        let watch = self.watch.lock().unwrap_or_else(|p| p.into_inner());
        match &*watch {
            Watch::Unwatched => Standing::Acting,
            Watch::Watched {
                answered_at, peers, ..
            } => standing(
                answered_at.is_some_and(|at| at.elapsed() < STALE),
                self.broker_connected.load(Ordering::Relaxed),
                *peers,
            ),
        }
    }

    /// Whether the workers may take turns, fire deadlines and send.
    pub fn may_act(&self) -> bool {
        self.standing() == Standing::Acting
    }

    /// Whether a claim made at `claimed_at` is still this instance's to
    /// act on: it acts now, and its heartbeat has not gone silent since
    /// (a silence of [`STALE`] lets the others take its claims over,
    /// [`crate::store::ORPHANED_AFTER_S`] later, whatever the claim's
    /// lease says).
    pub fn still_holds(&self, claimed_at: Instant) -> bool {
        if !self.may_act() {
            return false;
        }
        match &*self.watch.lock().unwrap_or_else(|p| p.into_inner()) {
            Watch::Unwatched => true,
            Watch::Watched { broken_at, .. } => broken_at.is_none_or(|at| at < claimed_at),
        }
    }

    /// The other instances, as the last heartbeat found them.
    pub fn peers(&self) -> Peers {
        match &*self.watch.lock().unwrap_or_else(|p| p.into_inner()) {
            Watch::Unwatched => Peers::default(),
            Watch::Watched { peers, .. } => *peers,
        }
    }

    fn watched(&self) {
        let mut watch = self.watch.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*watch, Watch::Unwatched) {
            *watch = Watch::Watched {
                answered_at: None,
                broken_at: None,
                peers: Peers::default(),
            };
        }
    }

    /// A heartbeat sent at `sent` was answered.
    fn answered(&self, sent: Instant, found: Peers) {
        let mut watch = self.watch.lock().unwrap_or_else(|p| p.into_inner());
        let (last, broken) = match &*watch {
            Watch::Watched {
                answered_at,
                broken_at,
                ..
            } => (*answered_at, *broken_at),
            Watch::Unwatched => (None, None),
        };
        let silent = last.is_some_and(|last| sent.saturating_duration_since(last) >= STALE);
        *watch = Watch::Watched {
            answered_at: Some(sent),
            broken_at: if silent { Some(Instant::now()) } else { broken },
            peers: found,
        };
    }
}

/// Beats every [`BEAT_EVERY`] until `stop`, keeping the fence and the
/// gauges current and logging each change of standing.
pub async fn heartbeat_loop(
    fence: Arc<Fence>,
    store: Arc<dyn Store>,
    instance: String,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    fence.watched();
    let mut tick = tokio::time::interval(BEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let me = InstanceBeat {
            instance: instance.clone(),
            broker_connected: fence.broker_connected.load(Ordering::Relaxed),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let sent = Instant::now();
        match tokio::time::timeout(BEAT_TIMEOUT, store.heartbeat(&me)).await {
            Ok(Ok(peers)) => fence.answered(sent, peers),
            Ok(Err(e)) => tracing::debug!(error = %e, "heartbeat not answered"),
            Err(_) => tracing::debug!(timeout = ?BEAT_TIMEOUT, "heartbeat not answered in time"),
        }
        let now = fence.standing();
        metrics
            .acting
            .store(i64::from(now == Standing::Acting), Ordering::Relaxed);
        metrics
            .peers_alive
            .store(i64::from(fence.peers().alive), Ordering::Relaxed);
        if was != Some(now) {
            match now {
                Standing::Acting => {
                    tracing::info!("this instance acts: it takes turns, fires deadlines and sends")
                }
                _ => tracing::warn!(
                    standing = now.as_str(),
                    "this instance stopped taking turns, firing deadlines and sending; the others carry on"
                ),
            }
            was = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALONE: Peers = Peers {
        alive: 0,
        on_broker: 0,
    };
    const OTHERS_ON_BROKER: Peers = Peers {
        alive: 2,
        on_broker: 1,
    };
    const OTHERS_OFF_BROKER: Peers = Peers {
        alive: 2,
        on_broker: 0,
    };

    #[test]
    fn an_instance_steps_back_only_when_it_is_cut_off_and_others_are_not() {
        assert_eq!(standing(true, true, OTHERS_ON_BROKER), Standing::Acting);
        assert_eq!(standing(false, true, ALONE), Standing::StoreSilent);
        assert_eq!(
            standing(false, true, OTHERS_ON_BROKER),
            Standing::StoreSilent
        );
        assert_eq!(standing(true, false, OTHERS_ON_BROKER), Standing::OffBroker);
        // The broker is down for everyone: all keep acting on the store.
        assert_eq!(standing(true, false, OTHERS_OFF_BROKER), Standing::Acting);
        assert_eq!(standing(true, false, ALONE), Standing::Acting);
    }

    #[test]
    fn a_watched_instance_acts_only_on_a_fresh_answer() {
        let on_broker = Arc::new(AtomicBool::new(true));
        let fence = Fence::new(on_broker.clone());
        assert!(fence.may_act(), "unwatched: a test driving the engine");
        fence.watched();
        assert_eq!(fence.standing(), Standing::StoreSilent, "not yet answered");
        fence.answered(Instant::now(), OTHERS_ON_BROKER);
        assert!(fence.may_act());
        on_broker.store(false, Ordering::Relaxed);
        assert_eq!(fence.standing(), Standing::OffBroker);
        on_broker.store(true, Ordering::Relaxed);
        let claimed = Instant::now();
        assert!(fence.still_holds(claimed));
        // The last answer is older than STALE: a pause, or a silent store.
        let mut watch = fence.watch.lock().unwrap();
        if let Watch::Watched { answered_at, .. } = &mut *watch {
            *answered_at = Some(Instant::now() - STALE);
        }
        drop(watch);
        assert_eq!(fence.standing(), Standing::StoreSilent);
        assert!(!fence.still_holds(claimed));
        // It is answered again: it acts, but what it claimed before the
        // silence may be another's now.
        fence.answered(Instant::now(), OTHERS_ON_BROKER);
        assert!(fence.may_act());
        assert!(!fence.still_holds(claimed), "claimed before the silence");
        assert!(fence.still_holds(Instant::now()), "claimed after");
    }

    #[test]
    fn an_instance_id_names_the_client_and_fits_application_name() {
        let id = instance_id("dispatcher-a");
        assert!(id.starts_with("dispatcher-a:"), "{id}");
        assert_ne!(id, instance_id("dispatcher-a"), "an incarnation each");
        assert!(instance_id(&"x".repeat(100)).len() <= 63);
    }
}
