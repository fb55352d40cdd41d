//! Whether this instance may act on its own: take dispatch turns (offer,
//! re-offer, escalate), fire deadlines, and send what the outbox holds.
//!
//! Every such act is a transaction the store fences by itself (locks,
//! compare-and-set, a claim's own lease as its token), so no two
//! instances commit the same act. What leaves the process (a push, a
//! webhook, a device command) is at least once: a send already under way
//! when its claim is taken over may go out twice. The fence is about the
//! instance that should step back so the others carry on:
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
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::store::{InstanceBeat, Peers, Store};

/// This process's heartbeat id: its MQTT client id and an incarnation,
/// so an instance restarted under the same client id (after a crash) is a
/// new holder, and the claims of the one that died are taken over.
/// PostgreSQL's `application_name` is at most 63 bytes.
pub fn instance_id(client_id: &str) -> String {
    let incarnation = uuid::Uuid::new_v4().simple().to_string();
    let mut name = client_id.to_owned();
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
/// claims over: it starts no send of a claim they may take (one already
/// under way may finish: at least once).
pub const STALE: Duration = Duration::from_millis(1500);

// It lets go of its claims before the others may take them.
const _: () = assert!(
    STALE.as_millis() < (crate::store::ORPHANED_AFTER_S as u128) * 1000,
    "an instance must count itself silent before the others take its claims"
);

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
        /// When the last answered heartbeat was sent, by the monotonic
        /// clock and by the wall clock: the monotonic one does not move
        /// while the machine is suspended, the wall clock does.
        answered_at: Option<(Instant, SystemTime)>,
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
                answered_at.is_some_and(|at| since(at) < STALE),
                self.on_broker(),
                *peers,
            ),
        }
    }

    /// Whether this instance holds a broker connection: it hears devices.
    pub fn on_broker(&self) -> bool {
        self.broker_connected.load(Ordering::Relaxed)
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

    /// From now on the instance acts only on fresh heartbeat answers.
    /// Called before the workers start, so none acts unfenced.
    pub fn watch(&self) {
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
    fn answered(&self, sent: (Instant, SystemTime), found: Peers) {
        let mut watch = self.watch.lock().unwrap_or_else(|p| p.into_inner());
        let (last, broken) = match &*watch {
            Watch::Watched {
                answered_at,
                broken_at,
                ..
            } => (*answered_at, *broken_at),
            Watch::Unwatched => (None, None),
        };
        let silent = last.is_some_and(|last| between(last, sent) >= STALE);
        *watch = Watch::Watched {
            answered_at: Some(sent),
            broken_at: if silent { Some(Instant::now()) } else { broken },
            peers: found,
        };
    }
}

/// Now, by both clocks.
fn now() -> (Instant, SystemTime) {
    (Instant::now(), SystemTime::now())
}

/// The longer of the two clocks' measures from `a` to `b`.
fn between(a: (Instant, SystemTime), b: (Instant, SystemTime)) -> Duration {
    let wall = b.1.duration_since(a.1).unwrap_or_default();
    b.0.saturating_duration_since(a.0).max(wall)
}

/// Time since `at`, by the longer of the two clocks.
fn since(at: (Instant, SystemTime)) -> Duration {
    between(at, now())
}

/// Beats every [`BEAT_EVERY`] until `stop`, keeping the fence current and
/// logging each change of standing.
pub async fn heartbeat_loop(
    fence: Arc<Fence>,
    store: Arc<dyn Store>,
    instance: String,
    stop: CancellationToken,
) {
    fence.watch();
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
            broker_connected: fence.on_broker(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let sent = now();
        match tokio::time::timeout(BEAT_TIMEOUT, store.heartbeat(&me)).await {
            Ok(Ok(peers)) => fence.answered(sent, peers),
            Ok(Err(e)) => tracing::debug!(error = %e, "heartbeat not answered"),
            Err(_) => tracing::debug!(timeout = ?BEAT_TIMEOUT, "heartbeat not answered in time"),
        }
        let now = fence.standing();
        if was != Some(now) {
            match (was, now) {
                (_, Standing::Acting) => {
                    tracing::info!("this instance acts: it takes turns, fires deadlines and sends")
                }
                // Starting up, the broker connects after the first beat:
                // not yet acting is no news for the operator at 3 a.m.
                (None, _) => {
                    tracing::info!(standing = now.as_str(), "this instance does not act yet")
                }
                (Some(_), _) => tracing::warn!(
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
        fence.watch();
        assert_eq!(fence.standing(), Standing::StoreSilent, "not yet answered");
        fence.answered(now(), OTHERS_ON_BROKER);
        assert!(fence.may_act());
        on_broker.store(false, Ordering::Relaxed);
        assert_eq!(fence.standing(), Standing::OffBroker);
        on_broker.store(true, Ordering::Relaxed);
        let claimed = Instant::now();
        assert!(fence.still_holds(claimed));
        // The last answer is older than STALE: a pause, or a silent store.
        let mut watch = fence.watch.lock().unwrap();
        if let Watch::Watched { answered_at, .. } = &mut *watch {
            *answered_at = Some((Instant::now() - STALE, SystemTime::now()));
        }
        drop(watch);
        assert_eq!(fence.standing(), Standing::StoreSilent);
        assert!(!fence.still_holds(claimed));
        // It is answered again: it acts, but what it claimed before the
        // silence may be another's now.
        fence.answered(now(), OTHERS_ON_BROKER);
        assert!(fence.may_act());
        assert!(!fence.still_holds(claimed), "claimed before the silence");
        assert!(fence.still_holds(Instant::now()), "claimed after");
    }

    #[test]
    fn a_suspend_that_stops_the_monotonic_clock_still_counts_as_silence() {
        let fence = Fence::new(Arc::new(AtomicBool::new(true)));
        fence.watch();
        // The wall clock moved 10 s, the monotonic clock did not.
        fence.answered(
            (Instant::now(), SystemTime::now() - Duration::from_secs(10)),
            ALONE,
        );
        assert_eq!(fence.standing(), Standing::StoreSilent);
    }

    #[test]
    fn an_instance_id_names_the_client_and_fits_application_name() {
        let id = instance_id("dispatcher-a");
        assert!(id.starts_with("dispatcher-a:"), "{id}");
        assert_ne!(id, instance_id("dispatcher-a"), "an incarnation each");
        assert!(instance_id(&"x".repeat(100)).len() <= 63);
    }
}
