//! Per-device flood control: a stuck button or a broken sensor must not
//! drown the stewards, and must not stop another elder's call.
//!
//! Fixed one-second windows per device. Past the limit an event is still
//! stored (nothing a device says is lost) but not acted on, except the
//! first event of each type in the window: a real press in the middle of a
//! flood of vitals still counts.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use protocol::{DeviceId, EventType};

/// One device's current window.
struct Window {
    started: DateTime<Utc>,
    count: u32,
    types: HashSet<EventType>,
}

/// The limiter. Not shared: only the MQTT loop calls it.
pub struct RateLimiter {
    per_second: u32,
    windows: HashMap<DeviceId, Window>,
}

impl RateLimiter {
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second,
            windows: HashMap::new(),
        }
    }

    /// Counts one event; true when it is over the limit and must not be
    /// acted on.
    pub fn over_limit(&mut self, device: &DeviceId, kind: &EventType, now: DateTime<Utc>) -> bool {
        let window = self
            .windows
            .entry(device.clone())
            .or_insert_with(|| Window {
                started: now,
                count: 0,
                types: HashSet::new(),
            });
        if now - window.started >= Duration::seconds(1) || now < window.started {
            window.started = now;
            window.count = 0;
            window.types.clear();
        }
        window.count += 1;
        let first_of_its_type = window.types.insert(kind.clone());
        window.count > self.per_second && !first_of_its_type
    }

    /// Forgets devices quiet for a while, so the map holds only the active.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        self.windows
            .retain(|_, w| now - w.started < Duration::seconds(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_excess_is_limited_but_a_new_type_still_counts() {
        let mut rl = RateLimiter::new(3);
        let d = DeviceId::parse("stuck").unwrap();
        let t0: DateTime<Utc> = "2026-11-28T21:00:00Z".parse().unwrap();
        let press = EventType::CallPressed;
        let limited: Vec<bool> = (0..5).map(|_| rl.over_limit(&d, &press, t0)).collect();
        assert_eq!(limited, [false, false, false, true, true]);
        assert!(!rl.over_limit(&d, &EventType::FallDetected, t0));
        assert!(rl.over_limit(&d, &EventType::FallDetected, t0));
        // A new second, a new window.
        assert!(!rl.over_limit(&d, &press, t0 + Duration::seconds(1)));
        // Another device is unaffected.
        assert!(!rl.over_limit(&DeviceId::parse("other").unwrap(), &press, t0));
        rl.prune(t0 + Duration::seconds(30));
        assert!(rl.windows.is_empty());
    }
}
