//! The devices and elders an ingest batch decides with, and the copy of
//! them a dispatcher keeps between batches.
//!
//! Reading them back for every batch cost more than the rest of the batch
//! together (rows of JSON for a few hundred elders, each decoded). The
//! store keeps a `registry_version` row that every change to devices'
//! bindings or to elders moves on, by trigger (`migrations/*/0003`), so a
//! batch reads that one row, and only devices it has not seen at that
//! version.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use super::rows::{DeviceRow, ElderRow};
use crate::domain::{Device, DeviceId, Elder, ElderId};

/// Beyond this many devices the copy is dropped and refilled, so memory
/// stays bounded with a million registered devices.
const MAX_CACHED: usize = 100_000;

/// The devices and elders a batch refers to.
#[derive(Default)]
pub(crate) struct Registry {
    devices: HashMap<DeviceId, Arc<Device>>,
    elders: HashMap<ElderId, Arc<Elder>>,
}

impl Registry {
    /// Keeps the rows that read back; a damaged registry row is logged and
    /// its device treated as unknown, so one bad row cannot stop a whole
    /// batch (every other elder's alerts) from being stored.
    pub(crate) fn add_devices(&mut self, rows: Vec<DeviceRow>) {
        for row in rows {
            match row.into_domain() {
                Ok(d) => {
                    self.devices.insert(d.id.clone(), Arc::new(d));
                }
                Err(e) => {
                    tracing::error!(error = %e, "device row unreadable; treating it as unknown")
                }
            }
        }
    }

    pub(crate) fn add_elders(&mut self, rows: Vec<ElderRow>) {
        for row in rows {
            match row.into_domain() {
                Ok(e) => {
                    self.elders.insert(e.id.clone(), Arc::new(e));
                }
                Err(e) => {
                    tracing::error!(error = %e, "elder row unreadable; treating as unknown")
                }
            }
        }
    }

    /// The elder ids the loaded devices are bound to.
    pub(crate) fn elder_ids(&self) -> Vec<&ElderId> {
        let ids: HashSet<&ElderId> = self
            .devices
            .values()
            .filter_map(|d| d.elder_id.as_ref())
            .collect();
        ids.into_iter().collect()
    }

    pub(crate) fn elder(&self, id: &ElderId) -> Option<&Elder> {
        self.elders.get(id).map(|e| &**e)
    }

    pub(crate) fn lookup(&self, device: &DeviceId) -> (Option<&Device>, Option<&Elder>) {
        let device = self.devices.get(device);
        let elder = device
            .and_then(|d| d.elder_id.as_ref())
            .and_then(|id| self.elders.get(id));
        (device.map(|d| &**d), elder.map(|e| &**e))
    }

    fn merge(&mut self, other: &Registry) {
        for (id, d) in &other.devices {
            self.devices.insert(id.clone(), d.clone());
        }
        for (id, e) in &other.elders {
            self.elders.insert(id.clone(), e.clone());
        }
    }
}

/// What ingest has read, valid at one registry version.
#[derive(Default)]
pub(crate) struct RegistryCache(Mutex<Cached>);

#[derive(Default)]
struct Cached {
    version: Option<i64>,
    /// `None`: read at this version and not registered.
    devices: HashMap<DeviceId, Option<Arc<Device>>>,
    elders: HashMap<ElderId, Arc<Elder>>,
}

impl Cached {
    fn at(&mut self, version: i64) -> &mut Self {
        if self.version != Some(version) {
            *self = Cached {
                version: Some(version),
                ..Cached::default()
            };
        }
        self
    }
}

impl RegistryCache {
    /// How many devices a start-up reads ahead: half the copy, leaving
    /// room for the devices batches bring.
    pub(crate) const WARM: usize = MAX_CACHED / 2;

    /// Keeps everything read at `version`; returns how many devices.
    pub(crate) fn fill(&self, version: i64, read: Registry) -> usize {
        let asked: Vec<DeviceId> = read.devices.keys().cloned().collect();
        self.keep(version, &asked, read, Registry::default());
        asked.len()
    }

    /// What the copy holds for these devices at `version`, and the devices
    /// it does not know and the caller must read.
    pub(crate) fn get<'a>(
        &self,
        version: i64,
        devices: impl IntoIterator<Item = &'a DeviceId>,
    ) -> (Registry, Vec<DeviceId>) {
        let mut cached = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let cached = cached.at(version);
        let mut hit = Registry::default();
        let mut missing = Vec::new();
        let mut seen = HashSet::new();
        for id in devices {
            if !seen.insert(id) {
                continue;
            }
            match cached.devices.get(id) {
                None => missing.push(id.clone()),
                Some(None) => {}
                Some(Some(device)) => match &device.elder_id {
                    Some(elder_id) => match cached.elders.get(elder_id) {
                        Some(elder) => {
                            hit.elders.insert(elder_id.clone(), elder.clone());
                            hit.devices.insert(id.clone(), device.clone());
                        }
                        // Its elder was unreadable when last read: try again.
                        None => missing.push(id.clone()),
                    },
                    None => {
                        hit.devices.insert(id.clone(), device.clone());
                    }
                },
            }
        }
        (hit, missing)
    }

    /// Remembers what was read at `version` for the `asked` devices
    /// (those not read back are remembered as unregistered), and returns
    /// the whole registry for the batch.
    pub(crate) fn keep(
        &self,
        version: i64,
        asked: &[DeviceId],
        read: Registry,
        mut hit: Registry,
    ) -> Registry {
        let mut cached = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let cached = cached.at(version);
        if cached.devices.len() + asked.len() > MAX_CACHED {
            cached.devices.clear();
            cached.elders.clear();
        }
        for id in asked {
            cached
                .devices
                .insert(id.clone(), read.devices.get(id).cloned());
        }
        for (id, elder) in &read.elders {
            cached.elders.insert(id.clone(), elder.clone());
        }
        hit.merge(&read);
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DeviceKind;

    fn device(id: &str, elder: Option<&str>) -> Arc<Device> {
        Arc::new(Device {
            id: DeviceId::parse(id).unwrap(),
            elder_id: elder.map(|e| ElderId::parse(e).unwrap()),
            kind: DeviceKind::CallButton,
            heartbeat_s: 60,
            online: true,
            last_seen: None,
            battery_pct: None,
            rssi_dbm: None,
            fw: None,
        })
    }

    fn read(devices: &[Arc<Device>]) -> Registry {
        let mut r = Registry::default();
        for d in devices {
            r.devices.insert(d.id.clone(), d.clone());
        }
        r
    }

    fn ids(names: &[&str]) -> Vec<DeviceId> {
        names.iter().map(|n| DeviceId::parse(*n).unwrap()).collect()
    }

    #[test]
    fn a_device_read_once_is_not_read_again_at_the_same_version() {
        let cache = RegistryCache::default();
        let batch = ids(&["d-1", "d-2", "d-1"]);
        let (hit, missing) = cache.get(7, &batch);
        assert_eq!(missing, ids(&["d-1", "d-2"]), "each asked once");
        // d-2 is not registered: remembered as such.
        let all = cache.keep(7, &missing, read(&[device("d-1", None)]), hit);
        assert!(all.lookup(&batch[0]).0.is_some());
        let (hit, missing) = cache.get(7, &batch);
        assert!(missing.is_empty(), "both known at version 7: {missing:?}");
        assert!(hit.lookup(&batch[0]).0.is_some());
        assert!(hit.lookup(&batch[1]).0.is_none(), "still unregistered");
    }

    #[test]
    fn a_new_version_forgets_everything() {
        let cache = RegistryCache::default();
        let batch = ids(&["d-1"]);
        let (hit, missing) = cache.get(1, &batch);
        cache.keep(1, &missing, read(&[device("d-1", None)]), hit);
        let (_, missing) = cache.get(2, &batch);
        assert_eq!(missing, batch, "a registry change means reading again");
    }

    #[test]
    fn a_device_whose_elder_was_not_read_is_read_again() {
        let cache = RegistryCache::default();
        let batch = ids(&["d-1"]);
        let (hit, missing) = cache.get(1, &batch);
        // Bound to an elder whose row did not read back.
        cache.keep(1, &missing, read(&[device("d-1", Some("e-1"))]), hit);
        let (_, missing) = cache.get(1, &batch);
        assert_eq!(missing, batch);
    }
}
