//! Per-device flood control: a stuck button or a broken sensor must not
//! drown the stewards, fill the disk, or stop another elder's call.
//!
//! Fixed one-second windows per device. Up to the limit every event is
//! acted on and stored. Past it an event is excess (PROTOCOL.md): counted,
//! not acted on, and only a bounded sample of it stored, so that one
//! device at 5,000 events a second adds a fixed trickle to the database
//! instead of gigabytes an hour. Excepted is the first event of each type
//! in a window: a real press in the middle of a flood of vitals still
//! counts (and is stored).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use protocol::{DeviceId, EventType};

/// How long a device's sample budget lasts before it is refilled.
pub const SAMPLE_PERIOD: Duration = Duration::seconds(60);

/// What to do with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit (or the first of its type in the window): store
    /// it and act on it.
    Act,
    /// Excess kept as part of the sample: store it, do not act on it.
    Sample,
    /// Excess beyond the sample: count it, acknowledge it, keep nothing.
    Drop,
}

impl Verdict {
    /// Over the limit, whether sampled or dropped.
    pub fn is_excess(self) -> bool {
        self != Self::Act
    }
}

/// One device's current window and sample budget.
struct Window {
    started: DateTime<Utc>,
    count: u32,
    types: HashSet<EventType>,
    /// When the current sample period began.
    sample_started: DateTime<Utc>,
    /// Excess events kept in the current sample period.
    sampled: u32,
}

/// The limiter. Not shared: only the MQTT loop calls it.
pub struct RateLimiter {
    per_second: u32,
    /// Excess events stored per device per [`SAMPLE_PERIOD`].
    sample_max: u32,
    windows: HashMap<DeviceId, Window>,
}

impl RateLimiter {
    pub fn new(per_second: u32, sample_max: u32) -> Self {
        Self {
            per_second,
            sample_max,
            windows: HashMap::new(),
        }
    }

    /// Counts one event and says what to do with it.
    pub fn check(&mut self, device: &DeviceId, kind: &EventType, now: DateTime<Utc>) -> Verdict {
        let window = self
            .windows
            .entry(device.clone())
            .or_insert_with(|| Window {
                started: now,
                count: 0,
                types: HashSet::new(),
                sample_started: now,
                sampled: 0,
            });
        if now - window.started >= Duration::seconds(1) || now < window.started {
            window.started = now;
            window.count = 0;
            window.types.clear();
        }
        window.count += 1;
        let first_of_its_type = window.types.insert(kind.clone());
        if window.count <= self.per_second || first_of_its_type {
            return Verdict::Act;
        }
        if now - window.sample_started >= SAMPLE_PERIOD || now < window.sample_started {
            window.sample_started = now;
            window.sampled = 0;
        }
        if window.sampled < self.sample_max {
            window.sampled += 1;
            Verdict::Sample
        } else {
            Verdict::Drop
        }
    }

    /// Forgets devices quiet for a while, so the map holds only the active.
    /// A device keeps its sample budget for the whole period, so pausing
    /// does not earn a flood a fresh sample sooner.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        self.windows.retain(|_, w| {
            now - w.started < Duration::seconds(10) || now - w.sample_started < SAMPLE_PERIOD
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_excess_is_limited_but_a_new_type_still_counts() {
        let mut rl = RateLimiter::new(3, 0);
        let d = DeviceId::parse("stuck").unwrap();
        let t0: DateTime<Utc> = "2026-11-28T21:00:00Z".parse().unwrap();
        let press = EventType::CallPressed;
        let excess: Vec<bool> = (0..5)
            .map(|_| rl.check(&d, &press, t0).is_excess())
            .collect();
        assert_eq!(excess, [false, false, false, true, true]);
        assert_eq!(rl.check(&d, &EventType::FallDetected, t0), Verdict::Act);
        assert!(rl.check(&d, &EventType::FallDetected, t0).is_excess());
        // A new second, a new window.
        assert_eq!(
            rl.check(&d, &press, t0 + Duration::seconds(1)),
            Verdict::Act
        );
        // Another device is unaffected.
        let other = DeviceId::parse("other").unwrap();
        assert_eq!(rl.check(&other, &press, t0), Verdict::Act);
        rl.prune(t0 + Duration::seconds(90));
        assert!(rl.windows.is_empty());
    }

    #[test]
    fn only_a_fixed_sample_of_the_excess_is_kept_per_period() {
        let mut rl = RateLimiter::new(2, 3);
        let d = DeviceId::parse("stuck").unwrap();
        let t0: DateTime<Utc> = "2026-11-28T21:00:00Z".parse().unwrap();
        let vitals = EventType::Vitals;
        let mut kept = 0;
        let mut acted = 0;
        // Ten seconds of 100 events a second.
        for s in 0..10 {
            for ms in 0..100 {
                let now = t0 + Duration::seconds(s) + Duration::milliseconds(ms * 10);
                match rl.check(&d, &vitals, now) {
                    Verdict::Act => acted += 1,
                    Verdict::Sample => kept += 1,
                    Verdict::Drop => {}
                }
            }
        }
        assert_eq!(acted, 20, "the limit, every second");
        assert_eq!(kept, 3, "the sample, once for the period");
        // Pausing a little earns nothing; a new period a new sample.
        rl.prune(t0 + Duration::seconds(30));
        for _ in 0..3 {
            rl.check(&d, &vitals, t0 + Duration::seconds(30));
        }
        assert_eq!(
            rl.check(&d, &vitals, t0 + Duration::seconds(30)),
            Verdict::Drop
        );
        let later = t0 + SAMPLE_PERIOD + Duration::seconds(1);
        for _ in 0..2 {
            assert_eq!(rl.check(&d, &vitals, later), Verdict::Act);
        }
        assert_eq!(rl.check(&d, &vitals, later), Verdict::Sample);
    }
}
