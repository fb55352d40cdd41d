//! What the simulator did, for whoever watches it: events published by
//! type and the scenario's happenings (a press wave, a power cut, a stuck
//! button), newest last. `GET /api/v1/sim` shows it, and the end-to-end
//! tests compare it with what the dispatcher stored.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The most happenings kept; the oldest go first (a long demo must not
/// grow without bound).
const KEEP: usize = 200;

/// One thing the scenario made happen.
#[derive(Debug, Clone, Serialize)]
pub struct Happening {
    pub at: DateTime<Utc>,
    /// What, for a person: "press wave: 25 elders press within 60 s".
    pub what: String,
    /// The devices concerned, so a test or a supervisor can follow them.
    pub devices: Vec<String>,
}

/// Counters and the log, shared by the fleet and the scenario.
#[derive(Debug, Default)]
pub struct Journal {
    sent: Mutex<BTreeMap<String, u64>>,
    happenings: Mutex<Vec<Happening>>,
}

impl Journal {
    /// One more event of this type published.
    pub fn count_sent(&self, event_type: &str) {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        *sent.entry(event_type.to_owned()).or_default() += 1;
    }

    /// Events published so far, by type.
    pub fn sent(&self) -> BTreeMap<String, u64> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Notes a happening (and logs it: an operator watching the demo's
    /// log sees the scenario play).
    pub fn note(&self, what: String, devices: Vec<String>) {
        tracing::info!(devices = devices.len(), "simulator: {what}");
        let mut log = self.happenings.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() >= KEEP {
            log.remove(0);
        }
        log.push(Happening {
            at: Utc::now(),
            what,
            devices,
        });
    }

    /// The happenings so far, oldest first.
    pub fn happenings(&self) -> Vec<Happening> {
        self.happenings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
