//! Device liveness, kept in memory: heartbeats are the bulk of the traffic
//! and must not cost a write each (ARCHITECTURE.md rule 6).
//!
//! The table records when each registered device was last heard and which
//! heartbeat fields changed; [`Liveness::take_dirty`] hands the changes to
//! a batched flush. [`Liveness::sweep`] finds devices that missed their
//! heartbeats. The table is a cache: it is rebuilt from the store at
//! start-up and refreshed from it periodically, so devices registered
//! through the API are picked up.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use protocol::{DeviceId, StatusMessage};

use crate::store::{self, Heartbeat};

/// A change of a device's health that the store must hear about.
#[derive(Debug, Clone, PartialEq)]
pub enum HealthChange {
    /// Offline by its own status (last will) or by missed heartbeats.
    WentOffline { device: DeviceId, why: String },
    /// Heard again after being offline: its incident clears.
    CameBack { device: DeviceId },
}

struct Entry {
    last_heard: DateTime<Utc>,
    heartbeat_s: u32,
    /// We consider it offline (an incident was raised, or the store said so).
    offline: bool,
    /// Heartbeat fields not yet flushed.
    dirty: Option<Heartbeat>,
}

/// The in-memory liveness table.
pub struct Liveness {
    missed_heartbeats: u32,
    entries: Mutex<HashMap<DeviceId, Entry>>,
}

impl Liveness {
    pub fn new(missed_heartbeats: u32) -> Self {
        Self {
            missed_heartbeats,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Merges the registry's devices. A device's silence is counted from
    /// when it was last seen or from `listening_since`, whichever is later:
    /// while the dispatcher was not listening it could not hear anyone.
    pub fn reload(&self, devices: Vec<store::Liveness>, listening_since: DateTime<Utc>) {
        let mut entries = self.entries();
        let mut seen = std::collections::HashSet::with_capacity(devices.len());
        for d in devices {
            seen.insert(d.device_id.clone());
            let heard = d
                .last_seen
                .map_or(listening_since, |t| t.max(listening_since));
            entries
                .entry(d.device_id)
                .and_modify(|e| e.heartbeat_s = d.heartbeat_s)
                .or_insert(Entry {
                    last_heard: heard,
                    heartbeat_s: d.heartbeat_s,
                    offline: !d.online && d.last_seen.is_some(),
                    dirty: None,
                });
        }
        entries.retain(|id, _| seen.contains(id));
    }

    /// Starts (or updates) tracking a device just registered or changed;
    /// its silence counts from `now`.
    pub fn track(&self, device: &crate::domain::Device, now: DateTime<Utc>) {
        self.entries()
            .entry(device.id.clone())
            .and_modify(|e| e.heartbeat_s = device.heartbeat_s)
            .or_insert(Entry {
                last_heard: device.last_seen.map_or(now, |t| t.max(now)),
                heartbeat_s: device.heartbeat_s,
                offline: false,
                dirty: None,
            });
    }

    /// Stops tracking a device removed from the registry.
    pub fn forget(&self, device: &DeviceId) {
        self.entries().remove(device);
    }

    /// A status message arrived. Returns the health change it makes, if any.
    pub fn on_status(
        &self,
        device: &DeviceId,
        status: &StatusMessage,
        now: DateTime<Utc>,
    ) -> Option<HealthChange> {
        let mut entries = self.entries();
        let entry = entries.get_mut(device)?;
        // A retained status may be older than what we already know.
        entry.last_heard = entry.last_heard.max(now);
        if let Some(s) = status.heartbeat_s.filter(|s| *s > 0) {
            entry.heartbeat_s = s;
        }
        let previous = entry.dirty.take();
        entry.dirty = Some(Heartbeat {
            device_id: device.clone(),
            last_seen: now,
            online: status.online,
            battery_pct: status
                .battery_pct
                .or(previous.as_ref().and_then(|p| p.battery_pct)),
            rssi_dbm: status
                .rssi_dbm
                .or(previous.as_ref().and_then(|p| p.rssi_dbm)),
            fw: status.fw.clone().or(previous.and_then(|p| p.fw)),
        });
        match (status.online, entry.offline) {
            (false, false) => {
                entry.offline = true;
                Some(HealthChange::WentOffline {
                    device: device.clone(),
                    why: "the device reported itself offline".into(),
                })
            }
            (true, true) => {
                entry.offline = false;
                Some(HealthChange::CameBack {
                    device: device.clone(),
                })
            }
            _ => None,
        }
    }

    /// An event arrived: the device is alive whatever its status said.
    pub fn on_event(&self, device: &DeviceId, now: DateTime<Utc>) -> Option<HealthChange> {
        let mut entries = self.entries();
        let entry = entries.get_mut(device)?;
        entry.last_heard = entry.last_heard.max(now);
        if !entry.offline {
            return None;
        }
        entry.offline = false;
        let beat = entry.dirty.get_or_insert_with(|| Heartbeat {
            device_id: device.clone(),
            last_seen: now,
            online: true,
            battery_pct: None,
            rssi_dbm: None,
            fw: None,
        });
        beat.online = true;
        beat.last_seen = now;
        Some(HealthChange::CameBack {
            device: device.clone(),
        })
    }

    /// Devices that missed `missed_heartbeats` heartbeats in a row and are
    /// not already offline; they are marked offline.
    pub fn sweep(&self, now: DateTime<Utc>) -> Vec<HealthChange> {
        let mut entries = self.entries();
        let mut out = Vec::new();
        for (id, e) in entries.iter_mut() {
            let allowed =
                Duration::seconds(i64::from(e.heartbeat_s) * i64::from(self.missed_heartbeats));
            if !e.offline && now - e.last_heard > allowed {
                e.offline = true;
                out.push(HealthChange::WentOffline {
                    device: id.clone(),
                    why: format!(
                        "no heartbeat for {} s (expected every {} s)",
                        (now - e.last_heard).num_seconds(),
                        e.heartbeat_s
                    ),
                });
            }
        }
        out
    }

    /// The heartbeats changed since the last call, for one batched write.
    pub fn take_dirty(&self) -> Vec<Heartbeat> {
        self.entries()
            .values_mut()
            .filter_map(|e| e.dirty.take())
            .collect()
    }

    /// Puts back heartbeats whose flush failed, unless newer ones arrived.
    pub fn restore_dirty(&self, beats: Vec<Heartbeat>) {
        let mut entries = self.entries();
        for b in beats {
            if let Some(e) = entries.get_mut(&b.device_id)
                && e.dirty.is_none()
            {
                e.dirty = Some(b);
            }
        }
    }

    pub fn pending(&self) -> usize {
        self.entries()
            .values()
            .filter(|e| e.dirty.is_some())
            .count()
    }

    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        "2026-11-28T21:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::seconds(s)
    }

    fn table() -> (Liveness, DeviceId) {
        let l = Liveness::new(3);
        let d = DeviceId::parse("bed-1").unwrap();
        l.reload(
            vec![store::Liveness {
                device_id: d.clone(),
                last_seen: None,
                online: false,
                heartbeat_s: 60,
            }],
            t(0),
        );
        (l, d)
    }

    #[test]
    fn silence_past_three_heartbeats_is_offline_once() {
        let (l, d) = table();
        assert!(l.sweep(t(180)).is_empty());
        let changes = l.sweep(t(181));
        assert!(matches!(&changes[..], [HealthChange::WentOffline { device, .. }] if *device == d));
        assert!(l.sweep(t(400)).is_empty(), "raised once");
        assert_eq!(
            l.on_status(&d, &StatusMessage::online(t(401)), t(401)),
            Some(HealthChange::CameBack { device: d.clone() })
        );
        assert_eq!(l.take_dirty().len(), 1);
        assert!(l.take_dirty().is_empty());
    }

    #[test]
    fn a_last_will_is_offline_at_once_and_an_event_brings_it_back() {
        let (l, d) = table();
        assert!(matches!(
            l.on_status(&d, &StatusMessage::offline(), t(5)),
            Some(HealthChange::WentOffline { .. })
        ));
        assert_eq!(l.on_status(&d, &StatusMessage::offline(), t(6)), None);
        assert_eq!(
            l.on_event(&d, t(7)),
            Some(HealthChange::CameBack { device: d.clone() })
        );
        assert_eq!(l.on_event(&d, t(8)), None);
    }

    #[test]
    fn unregistered_devices_are_not_tracked() {
        let (l, _) = table();
        let stranger = DeviceId::parse("stranger").unwrap();
        assert_eq!(
            l.on_status(&stranger, &StatusMessage::offline(), t(1)),
            None
        );
        assert_eq!(l.len(), 1);
    }
}
