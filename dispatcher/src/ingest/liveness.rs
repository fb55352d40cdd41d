//! Device liveness, kept in memory: heartbeats are the bulk of the traffic
//! and must not cost a write each (ARCHITECTURE.md rule 6).
//!
//! The table records when each registered device was last heard and its
//! newest heartbeat; [`Liveness::take_due`] hands those due for writing to
//! a batched flush. A device's heartbeat is written when it went offline
//! or came back, and otherwise at most once per `write_every`: a fleet
//! heartbeating every few seconds would otherwise rewrite every device
//! row every second, and each of those writes takes the write lock a
//! press may be waiting for. Until then [`Liveness::overlay`] shows the
//! newer heartbeat to whoever reads the device. [`Liveness::sweep`] finds
//! devices that missed their heartbeats. The table is a cache: it is
//! rebuilt from the store at start-up and refreshed from it periodically,
//! so devices registered through the API are picked up.

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
    /// A sweep that began at `at` is over: every change it found came
    /// before this. Sent only under a manual clock, which hears of it once
    /// those changes are applied (tests wait on it, [`crate::clock`]).
    Swept { at: DateTime<Utc> },
}

struct Entry {
    last_heard: DateTime<Utc>,
    heartbeat_s: u32,
    /// We consider it offline (an incident was raised, or the store said so).
    offline: bool,
    /// The newest heartbeat, not yet written.
    dirty: Option<Heartbeat>,
    /// What the store holds of this device's health, as far as we know.
    written: Option<Written>,
}

/// A heartbeat as last written (or read back) for one device.
#[derive(Debug, Clone, Copy)]
struct Written {
    at: DateTime<Utc>,
    online: bool,
}

impl Entry {
    /// The newest heartbeat must be written at the next flush: the store
    /// has none, the device went offline or came back, or the one it has
    /// is `write_every` old.
    fn due(&self, now: DateTime<Utc>, write_every: Duration) -> bool {
        match (&self.dirty, self.written) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(beat), Some(w)) => beat.online != w.online || now - w.at >= write_every,
        }
    }
}

/// The in-memory liveness table.
pub struct Liveness {
    missed_heartbeats: u32,
    write_every: Duration,
    entries: Mutex<HashMap<DeviceId, Entry>>,
}

impl Liveness {
    /// `write_every`: how often at most a device's heartbeat is written
    /// while its health does not change (zero: at every flush).
    pub fn new(missed_heartbeats: u32, write_every: std::time::Duration) -> Self {
        Self {
            missed_heartbeats,
            write_every: Duration::from_std(write_every).unwrap_or(Duration::MAX),
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
                    written: d.last_seen.map(|at| Written {
                        at,
                        online: d.online,
                    }),
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
                written: None,
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
                // The store must say so too, at the next flush (a device
                // never heard is offline there already).
                if let Some(beat) = e.dirty.as_mut() {
                    beat.online = false;
                } else if let Some(w) = e.written {
                    e.dirty = Some(Heartbeat {
                        device_id: id.clone(),
                        last_seen: w.at,
                        online: false,
                        battery_pct: None,
                        rssi_dbm: None,
                        fw: None,
                    });
                }
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

    /// This instance could not hear devices until `now` (off the broker):
    /// silence before it is not counted, as silence before start-up is
    /// not ([`Self::reload`]'s `listening_since`).
    pub fn forgive(&self, now: DateTime<Utc>) {
        for e in self.entries().values_mut() {
            e.last_heard = e.last_heard.max(now);
        }
    }

    /// The heartbeats due for writing at `now`, for one batched write.
    pub fn take_due(&self, now: DateTime<Utc>) -> Vec<Heartbeat> {
        let every = self.write_every;
        self.take(|e| e.due(now, every))
    }

    /// Every heartbeat not yet written (the last flush, on the way out).
    pub fn take_all(&self) -> Vec<Heartbeat> {
        self.take(|e| e.dirty.is_some())
    }

    fn take(&self, wanted: impl Fn(&Entry) -> bool) -> Vec<Heartbeat> {
        self.entries()
            .values_mut()
            .filter(|e| wanted(e))
            .filter_map(|e| {
                let beat = e.dirty.take()?;
                e.written = Some(Written {
                    at: beat.last_seen,
                    online: beat.online,
                });
                Some(beat)
            })
            .collect()
    }

    /// Puts back heartbeats whose flush failed, unless newer ones arrived,
    /// and makes them due at the next flush.
    pub fn restore_dirty(&self, beats: Vec<Heartbeat>) {
        let mut entries = self.entries();
        for b in beats {
            if let Some(e) = entries.get_mut(&b.device_id) {
                e.written = None;
                e.dirty.get_or_insert(b);
            }
        }
    }

    /// Heartbeats the store refused: what it holds of them is unknown, so
    /// the next of each is due at once.
    pub fn forget_written(&self, beats: &[Heartbeat]) {
        let mut entries = self.entries();
        for b in beats {
            if let Some(e) = entries.get_mut(&b.device_id) {
                e.written = None;
            }
        }
    }

    /// Shows on `device`, read from the store, the newer heartbeat that is
    /// not written yet. Only this instance's: with several instances
    /// sharing the devices, another's may be up to `write_every` behind.
    pub fn overlay(&self, device: &mut crate::domain::Device) {
        let entries = self.entries();
        let Some(beat) = entries.get(&device.id).and_then(|e| e.dirty.as_ref()) else {
            return;
        };
        if device.last_seen.is_some_and(|seen| seen > beat.last_seen) {
            return;
        }
        device.last_seen = Some(beat.last_seen);
        device.online = beat.online;
        device.battery_pct = beat.battery_pct.or(device.battery_pct);
        device.rssi_dbm = beat.rssi_dbm.or(device.rssi_dbm);
        if beat.fw.is_some() {
            device.fw.clone_from(&beat.fw);
        }
    }

    /// Heartbeats held in memory, not yet written.
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

    /// A table of one device as the store holds it, listening since `t(0)`.
    fn one_device(
        id: &str,
        last_seen: Option<DateTime<Utc>>,
        online: bool,
        heartbeat_s: u32,
    ) -> (Liveness, DeviceId) {
        let l = Liveness::new(3, std::time::Duration::from_secs(30));
        let d = DeviceId::parse(id).unwrap();
        l.reload(
            vec![store::Liveness {
                device_id: d.clone(),
                last_seen,
                online,
                heartbeat_s,
            }],
            t(0),
        );
        (l, d)
    }

    /// A device never heard, heartbeating every 60 s.
    fn table() -> (Liveness, DeviceId) {
        one_device("bed-1", None, false, 60)
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
        assert_eq!(l.take_due(t(401)).len(), 1);
        assert!(l.take_due(t(401)).is_empty());
    }

    #[test]
    fn silence_while_the_dispatcher_could_not_hear_is_forgiven() {
        let (l, _) = table();
        // Off the broker from 0 to 170 s: nobody could be heard.
        l.forgive(t(170));
        assert!(
            l.sweep(t(181)).is_empty(),
            "silent 11 s since hearing again"
        );
        assert_eq!(l.sweep(t(351)).len(), 1, "silent 181 s since");
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

    /// A device the store last saw online at `t(0)`, heartbeating every
    /// 2 s.
    fn heard_at_zero() -> (Liveness, DeviceId) {
        one_device("pad-1", Some(t(0)), true, 2)
    }

    fn beat(l: &Liveness, d: &DeviceId, at: i64, battery: u8) {
        let mut status = StatusMessage::online(t(at));
        status.battery_pct = Some(battery);
        l.on_status(d, &status, t(at));
    }

    #[test]
    fn a_steady_heartbeat_is_written_once_per_write_interval() {
        let (l, d) = heard_at_zero();
        let mut written = Vec::new();
        for at in (2..=90).step_by(2) {
            beat(&l, &d, at, 80);
            written.extend(l.take_due(t(at)).into_iter().map(|b| b.last_seen));
        }
        assert_eq!(written, vec![t(30), t(60), t(90)]);
        beat(&l, &d, 92, 79);
        assert_eq!(l.pending(), 1, "held in memory until due");
        let last = l.take_all();
        assert_eq!((last[0].last_seen, last[0].battery_pct), (t(92), Some(79)));
    }

    #[test]
    fn going_offline_and_coming_back_are_written_at_the_next_flush() {
        let (l, d) = heard_at_zero();
        beat(&l, &d, 2, 80);
        assert!(l.take_due(t(2)).is_empty());
        // Silent past three heartbeats: offline, written with what the
        // store had.
        assert_eq!(l.sweep(t(9)).len(), 1);
        let offline = l.take_due(t(9));
        assert_eq!(offline.len(), 1);
        assert!(!offline[0].online);
        // Back: written at once, not 30 s later.
        assert_eq!(
            l.on_status(&d, &StatusMessage::online(t(10)), t(10)),
            Some(HealthChange::CameBack { device: d.clone() })
        );
        let back = l.take_due(t(10));
        assert!(back[0].online && back[0].last_seen == t(10));
        // A last will, too.
        l.on_status(&d, &StatusMessage::offline(), t(11));
        assert!(!l.take_due(t(11))[0].online);
    }

    #[test]
    fn a_failed_flush_is_due_again_at_once_and_a_refused_one_at_the_next_heartbeat() {
        let (l, d) = heard_at_zero();
        beat(&l, &d, 30, 80);
        let beats = l.take_due(t(30));
        assert_eq!(beats.len(), 1);
        l.restore_dirty(beats);
        assert_eq!(l.take_due(t(31)).len(), 1);
        // Refused and dropped: the device's next heartbeat goes at once.
        beat(&l, &d, 32, 80);
        assert!(l.take_due(t(32)).is_empty());
        beat(&l, &d, 34, 80);
        let refused = l.take_all();
        l.forget_written(&refused);
        beat(&l, &d, 36, 80);
        assert_eq!(l.take_due(t(36)).len(), 1);
    }

    #[test]
    fn a_heartbeat_not_yet_written_shows_on_the_stored_device() {
        let (l, d) = heard_at_zero();
        let stored = crate::domain::Device {
            id: d.clone(),
            elder_id: None,
            kind: crate::domain::DeviceKind::VitalsPad,
            heartbeat_s: 2,
            online: true,
            last_seen: Some(t(0)),
            battery_pct: Some(90),
            rssi_dbm: Some(-60),
            fw: None,
        };
        let mut shown = stored.clone();
        l.overlay(&mut shown);
        assert_eq!(shown, stored, "nothing newer in memory");
        beat(&l, &d, 4, 85);
        l.overlay(&mut shown);
        assert_eq!(
            (shown.last_seen, shown.battery_pct, shown.rssi_dbm),
            (Some(t(4)), Some(85), Some(-60))
        );
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
