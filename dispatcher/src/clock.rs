//! The one clock. Production reads the system time; tests hold a manual
//! clock and move it forward, so a 20-minute bed-exit window or a
//! 3-heartbeat offline rule is tested in milliseconds without sleeping.
//!
//! A manual clock also hears from the workers that act on time (the
//! engine, the deadline timers, the liveness detector, the outbox) each
//! time they finish a pass, so a test that moved the clock can wait until
//! every one of them has looked at the new time ([`Clock::passed`])
//! instead of sleeping and hoping they did. "Nothing happened before its
//! time" is then a fact about a pass that ran, not about a sleep that was
//! long enough.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use tokio::sync::Notify;

/// A worker whose passes act on the clock's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Worker {
    /// Expiries, escalations and due dispatch turns.
    Engine,
    /// Rules' deadlines (a bed not returned to).
    Deadlines,
    /// Silent devices, with what they opened applied.
    Liveness,
    /// Deliveries whose time came (a ladder's SMS, a push repeated); a pass
    /// counts when it found nothing due and nothing in flight.
    Outbox,
    /// The care planner: visits planned, check-ins watched, overdue
    /// visits raised.
    Care,
}

impl Worker {
    pub const ALL: [Self; 5] = [
        Self::Engine,
        Self::Deadlines,
        Self::Liveness,
        Self::Outbox,
        Self::Care,
    ];
}

#[derive(Clone, Default)]
pub enum Clock {
    #[default]
    System,
    Manual(Arc<ManualTime>),
}

/// A manual clock's time and what the workers last looked at.
pub struct ManualTime {
    now: Mutex<DateTime<Utc>>,
    /// For each worker, when (by this clock) its last finished pass began.
    passes: Mutex<HashMap<Worker, DateTime<Utc>>>,
    pass_done: Notify,
}

impl Clock {
    pub fn manual(start: DateTime<Utc>) -> Self {
        Self::Manual(Arc::new(ManualTime {
            now: Mutex::new(start),
            passes: Mutex::new(HashMap::new()),
            pass_done: Notify::new(),
        }))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Self::System => Utc::now(),
            Self::Manual(m) => *m.now.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Moves a manual clock forward; the system clock ignores it.
    pub fn advance(&self, by: Duration) {
        if let Self::Manual(m) = self {
            *m.now.lock().unwrap_or_else(|p| p.into_inner()) += by;
        }
    }

    pub fn set(&self, to: DateTime<Utc>) {
        if let Self::Manual(m) = self {
            *m.now.lock().unwrap_or_else(|p| p.into_inner()) = to;
        }
    }

    pub fn is_manual(&self) -> bool {
        matches!(self, Self::Manual(_))
    }

    /// `worker` finished a pass that began when this clock read `began`.
    /// Nothing on the system clock.
    pub fn pass_done(&self, worker: Worker, began: DateTime<Utc>) {
        if let Self::Manual(m) = self {
            let mut passes = m.passes.lock().unwrap_or_else(|p| p.into_inner());
            let last = passes.entry(worker).or_insert(began);
            *last = (*last).max(began);
            drop(passes);
            m.pass_done.notify_waiters();
        }
    }

    /// Waits until each of `workers` has finished a pass that began at
    /// this clock's current time or later. Returns at once on the system
    /// clock. A worker that is not running is waited for forever: callers
    /// put a timeout around it.
    pub async fn passed(&self, workers: &[Worker]) {
        let Self::Manual(m) = self else { return };
        let now = self.now();
        loop {
            let notified = m.pass_done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let done = {
                let passes = m.passes.lock().unwrap_or_else(|p| p.into_inner());
                workers
                    .iter()
                    .all(|w| passes.get(w).is_some_and(|at| *at >= now))
            };
            if done {
                return;
            }
            notified.await;
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::System => f.write_str("Clock::System"),
            Self::Manual(_) => write!(f, "Clock::Manual({})", self.now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn a_pass_counts_only_if_it_began_at_the_time_waited_for() {
        let clock = Clock::manual(at("2026-12-05T00:00:00Z"));
        clock.pass_done(Worker::Engine, clock.now());
        clock.advance(Duration::seconds(30));
        let waiting = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.passed(&[Worker::Engine]).await })
        };
        // A pass that began before the move does not count.
        clock.pass_done(Worker::Engine, at("2026-12-05T00:00:10Z"));
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        clock.pass_done(Worker::Engine, clock.now());
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the pass at the new time ends the wait")
            .unwrap();
        // The system clock has nothing to wait for.
        Clock::System.passed(&Worker::ALL).await;
    }
}
