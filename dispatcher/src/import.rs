//! `dispatcher import FILE`: loads a site (elders, devices, stewards,
//! logins) from a TOML or JSON file, such as `config/demo-site.toml`.
//!
//! Importing is idempotent: an elder, device or steward that exists is
//! updated to the file's version; a login that exists is left alone (its
//! password may have been changed since).

use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::domain::{
    Area, Device, DeviceId, DeviceKind, Elder, Role, Scope, Steward, StewardId, StewardStatus, User,
};
use crate::store::{Store, StoreError};

/// A site file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteFile {
    /// A name for logs: "Tama community, Chengguan, Lhasa".
    pub site: Option<String>,
    /// Where each grid belongs (community, district); set before the
    /// logins whose scopes name them.
    pub areas: Vec<Area>,
    pub elders: Vec<Elder>,
    pub devices: Vec<DeviceSeed>,
    pub stewards: Vec<StewardSeed>,
    pub users: Vec<UserSeed>,
}

/// A device as a site file lists it: registry fields only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSeed {
    pub id: DeviceId,
    pub elder_id: Option<crate::domain::ElderId>,
    pub kind: DeviceKind,
    pub heartbeat_s: Option<u32>,
}

/// A steward as a site file lists them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StewardSeed {
    pub id: StewardId,
    pub name: String,
    pub phone: String,
    pub grid: String,
    #[serde(default)]
    pub skills: Vec<String>,
    #[serde(default)]
    pub languages: Vec<String>,
    #[serde(default)]
    pub on_duty: bool,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

/// A login as a site file lists it (demo data only: real passwords do not
/// belong in files).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSeed {
    pub username: String,
    pub password: String,
    pub role: Role,
    pub steward_id: Option<StewardId>,
    /// A supervisor's scope: `community:<name>` or `district:<name>`.
    #[serde(default)]
    pub scope: Scope,
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub elders: usize,
    pub devices: usize,
    pub stewards: usize,
    pub users_created: usize,
    pub users_kept: usize,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} elders, {} devices, {} stewards, {} logins created ({} already existed)",
            self.elders, self.devices, self.stewards, self.users_created, self.users_kept
        )
    }
}

impl SiteFile {
    /// Reads a `.toml` or `.json` file.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        match ext {
            "json" => Self::from_json(&text),
            "toml" => Self::from_toml(&text),
            _ => bail!("{}: a site file must end in .toml or .json", path.display()),
        }
        .with_context(|| format!("{} is not a valid site file", path.display()))
    }

    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        Ok(toml::from_str(text)?)
    }

    pub fn from_json(text: &str) -> anyhow::Result<Self> {
        Ok(serde_json::from_str(text)?)
    }

    /// Loads the site into the store, in dependency order.
    pub async fn import(
        &self,
        store: &dyn Store,
        default_heartbeat_s: u32,
    ) -> anyhow::Result<ImportReport> {
        let mut report = ImportReport::default();
        // A paired steward is in the file or already on the site.
        for elder in &self.elders {
            let Some(paired) = &elder.care.steward_id else {
                continue;
            };
            if !self.stewards.iter().any(|s| &s.id == paired)
                && store.steward(paired).await?.is_none()
            {
                bail!(
                    "elder {}: care.steward_id names {paired}, who is neither in the file's stewards nor on the site",
                    elder.id
                );
            }
        }
        // Stewards first: the planner, running meanwhile, plans a paired
        // elder's visit for their steward only once the steward is there.
        for seed in &self.stewards {
            let location = match (seed.lat, seed.lon) {
                (Some(lat), Some(lon)) => Some(
                    crate::domain::LatLon::new(lat, lon)
                        .map_err(|e| anyhow::anyhow!("steward {}: {e}", seed.id))?,
                ),
                (None, None) => None,
                _ => bail!("steward {}: give both lat and lon, or neither", seed.id),
            };
            let steward = Steward {
                id: seed.id.clone(),
                name: seed.name.clone(),
                phone: seed.phone.clone(),
                grid: seed.grid.clone(),
                skills: seed.skills.clone(),
                languages: seed.languages.clone(),
                on_duty: false,
                status: StewardStatus::OffDuty,
                lat: None,
                lon: None,
                location_at: None,
                accuracy_m: None,
            };
            upsert(store.insert_steward(&steward).await, || {
                store.update_steward(&steward)
            })
            .await
            .with_context(|| format!("steward {}", steward.id))?;
            let now = chrono::Utc::now();
            if let Some(at) = location {
                store
                    .set_steward_location(&steward.id, at, None, now)
                    .await?;
            }
            store
                .set_steward_duty(&steward.id, seed.on_duty, now)
                .await?;
            report.stewards += 1;
        }
        // Elders and devices go in multi-row statements: a site of a
        // million devices imports in seconds instead of minutes. If a
        // batch is refused, the row-by-row path names the culprit.
        if store.upsert_elders(&self.elders).await.is_err() {
            for elder in &self.elders {
                upsert(store.insert_elder(elder).await, || {
                    store.update_elder(elder)
                })
                .await
                .with_context(|| format!("elder {}", elder.id))?;
            }
        }
        report.elders = self.elders.len();
        // A pairing the file (re)names takes effect now: a visit only
        // planned (not begun, not overdue) is planned again for the paired
        // steward on the planner's next pass.
        for elder in self.elders.iter().filter(|e| e.care.steward_id.is_some()) {
            store
                .drop_planned_visit(&elder.id)
                .await
                .with_context(|| format!("elder {}: replanning their visit", elder.id))?;
        }
        store.put_areas(&self.areas).await.context("areas")?;
        let devices: Vec<Device> = self
            .devices
            .iter()
            .map(|seed| Device {
                id: seed.id.clone(),
                elder_id: seed.elder_id.clone(),
                kind: seed.kind,
                heartbeat_s: seed.heartbeat_s.unwrap_or(default_heartbeat_s),
                online: false,
                last_seen: None,
                battery_pct: None,
                rssi_dbm: None,
                fw: None,
            })
            .collect();
        if store.upsert_devices(&devices).await.is_err() {
            for device in &devices {
                upsert(store.insert_device(device).await, || {
                    store.update_device(device)
                })
                .await
                .with_context(|| format!("device {}", device.id))?;
            }
        }
        // Their duty starts now (a device already on duty keeps its date).
        store
            .enrol_new_devices(chrono::Utc::now())
            .await
            .context("enrolling the devices for their test calls")?;
        report.devices = devices.len();
        let areas = store.areas().await?;
        for seed in &self.users {
            if seed.scope != Scope::Site
                && (seed.role != Role::Supervisor || !seed.scope.exists_in(&areas))
            {
                bail!(
                    "login {}: scope {} must be a supervisor's and name a community or district of [[areas]]",
                    seed.username,
                    seed.scope
                );
            }
            if store.user(&seed.username).await?.is_some() {
                report.users_kept += 1;
                continue;
            }
            let password = seed.password.clone();
            let password_hash =
                tokio::task::spawn_blocking(move || crate::auth::hash_password(&password))
                    .await?
                    .map_err(|e| anyhow::anyhow!("login {}: {e}", seed.username))?;
            let user = User {
                username: seed.username.clone(),
                role: seed.role,
                steward_id: seed.steward_id.clone(),
                scope: seed.scope.clone(),
                password_hash,
            };
            store
                .insert_user(&user)
                .await
                .with_context(|| format!("login {}", user.username))?;
            report.users_created += 1;
        }
        Ok(report)
    }
}

impl SiteFile {
    /// The file's devices that need a secret: new ones, and those without
    /// one in `store` (registered before device credentials, or revoked);
    /// every one of them when `all`.
    pub async fn devices_needing_secrets(
        &self,
        store: &dyn Store,
        all: bool,
    ) -> anyhow::Result<Vec<DeviceId>> {
        if all {
            return Ok(self.devices.iter().map(|d| d.id.clone()).collect());
        }
        let registered: std::collections::HashSet<DeviceId> =
            store.devices().await?.into_iter().map(|d| d.id).collect();
        let without: std::collections::HashSet<DeviceId> =
            store.devices_without_secret().await?.into_iter().collect();
        Ok(self
            .devices
            .iter()
            .map(|d| d.id.clone())
            .filter(|id| !registered.contains(id) || without.contains(id))
            .collect())
    }
}

/// Insert, or on a taken id, update.
async fn upsert<F, Fut>(inserted: Result<(), StoreError>, update: F) -> Result<(), StoreError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    match inserted {
        Err(StoreError::Conflict { .. }) => update().await,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_site_reads() {
        let site = SiteFile::from_toml(include_str!("../../config/demo-site.toml")).unwrap();
        assert!(site.elders.len() >= 24, "a few dozen homes");
        assert!(site.stewards.len() >= 8);
        for d in &site.devices {
            let elder = d.elder_id.as_ref().expect("demo devices are bound");
            assert!(
                site.elders.iter().any(|e| &e.id == elder),
                "{} names {elder}",
                d.id
            );
        }
        assert!(site.users.iter().any(|u| u.role == Role::Supervisor));
        let paired: Vec<_> = site
            .elders
            .iter()
            .filter_map(|e| e.care.steward_id.as_ref())
            .collect();
        assert!(!paired.is_empty(), "the demo shows a pairing");
        for s in paired {
            assert!(site.stewards.iter().any(|x| &x.id == s), "{s}");
        }
        // Two communities, each with a supervisor of its own and homes,
        // devices and stewards only in its grids.
        let communities: std::collections::BTreeSet<&str> =
            site.areas.iter().map(|a| a.community.as_str()).collect();
        assert_eq!(communities.len(), 2);
        for community in communities {
            let scope = Scope::Community(community.to_owned());
            assert!(site.users.iter().any(|u| u.scope == scope), "{community}");
            let grids = scope.grids(&site.areas).unwrap();
            assert!(
                site.elders
                    .iter()
                    .filter(|e| grids.contains(&e.grid))
                    .count()
                    >= 6
            );
            assert!(
                site.stewards
                    .iter()
                    .filter(|s| grids.contains(&s.grid))
                    .count()
                    >= 3
            );
        }
        let placed: std::collections::BTreeSet<&str> =
            site.areas.iter().map(|a| a.grid.as_str()).collect();
        assert!(site.elders.iter().all(|e| placed.contains(e.grid.as_str())));
        assert!(
            site.stewards
                .iter()
                .all(|s| placed.contains(s.grid.as_str()))
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(SiteFile::from_toml("[[elders]]\nid = \"e\"\nnmae = \"x\"\n").is_err());
    }
}
