//! The device simulator inside the server, for demos and tests
//! (`/api/v1/sim`, [`crate::api::sim`]): at most one run at a time, against
//! the server's own broker and HTTP API, which start-up records here as the
//! [`SimTarget`]. This module keeps the run; the API module decides what to
//! run (the registered site, a named scenario) and who may.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use device_sim::site::{Risks as SiteRisks, Site, SiteDevice, SiteElder, SiteSteward, SiteUser};
use device_sim::{SimHandle, SimProgress};
use tokio::sync::{Mutex, MutexGuard};

use crate::auth::{HashError, LoginGuard};
use crate::credentials::{self, DeviceLinks};
use crate::domain::{Role, Steward, User};
use crate::store::Store;

/// Where simulated devices and stewards connect: this server.
#[derive(Debug, Clone)]
pub struct SimTarget {
    pub broker_host: String,
    pub broker_port: u16,
    /// The dispatcher's topic root, so simulated devices are heard.
    pub topic_root: String,
    /// The API's base URL, e.g. `http://127.0.0.1:8080`.
    pub http_base: String,
}

/// What was started, for the status.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub scenario: String,
    pub summary: String,
    pub started_at: DateTime<Utc>,
    pub started_by: String,
    pub speed: f64,
    pub seed: u64,
    pub devices: usize,
    pub stewards: usize,
}

/// A run in progress.
pub struct Run {
    pub info: RunInfo,
    pub handle: SimHandle,
    /// The logins made for the simulated stewards, removed at the end so
    /// no credentials outlive the run.
    pub logins: Vec<String>,
}

/// A run that ended, kept so its figures can still be read.
#[derive(Debug, Clone)]
pub struct Finished {
    pub info: RunInfo,
    pub stopped_at: DateTime<Utc>,
    pub progress: SimProgress,
}

/// The run, or the last one.
#[derive(Default)]
pub struct Slot {
    pub running: Option<Run>,
    pub last: Option<Finished>,
}

impl Slot {
    /// The current run's info and progress, else the last run's.
    pub fn view(&self) -> Option<(&RunInfo, SimProgress, Option<DateTime<Utc>>)> {
        match (&self.running, &self.last) {
            (Some(r), _) => Some((&r.info, r.handle.progress(), None)),
            (None, Some(f)) => Some((&f.info, f.progress.clone(), Some(f.stopped_at))),
            (None, None) => None,
        }
    }
}

/// The simulator's place in the server ([`crate::api::AppState::sim`]).
#[derive(Default)]
pub struct SimControl {
    target: std::sync::Mutex<Option<SimTarget>>,
    /// Held through a whole start or stop, so two starts cannot race.
    slot: Mutex<Slot>,
}

impl SimControl {
    /// Start-up calls this once the broker and the HTTP port are known.
    pub fn set_target(&self, target: SimTarget) {
        *self.target.lock().unwrap_or_else(|p| p.into_inner()) = Some(target);
    }

    /// Where a run would connect; None before start-up set it.
    pub fn target(&self) -> Option<SimTarget> {
        self.target
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub async fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().await
    }

    /// Ends the run in `slot`, if any, keeping its figures; returns the
    /// logins to remove.
    pub async fn stop_in(slot: &mut Slot, now: DateTime<Utc>) -> Vec<String> {
        let Some(run) = slot.running.take() else {
            return Vec::new();
        };
        let progress = run.handle.progress();
        run.handle.stop().await;
        tracing::info!(scenario = %run.info.scenario, "simulator stopped");
        slot.last = Some(Finished {
            info: run.info,
            stopped_at: now,
            progress,
        });
        run.logins
    }
}

/// Events sent in all.
pub fn total_sent(sent: &BTreeMap<String, u64>) -> u64 {
    sent.values().sum()
}

/// The most devices the in-server simulator plays: each is an MQTT
/// connection in this process. Bigger fleets are load tests, for
/// `device-sim`'s load mode on another machine.
pub const MAX_DEVICES: usize = 5_000;

/// The registered site as the simulator sees it (elders, devices,
/// stewards), with a fresh login per steward so the simulated stewards
/// can act through the API like people with phones.
pub struct SimSite {
    pub site: Site,
    /// The logins made (`sim-{steward id}`), to remove when the run ends.
    pub logins: Vec<String>,
}

/// Why the registered site could not be made ready to play.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("making the stewards' logins: {0}")]
    Hashing(#[from] HashError),
}

/// Reads the site from the store and makes the stewards' logins.
///
/// Each device gets a fresh secret too, kept in memory for the run: the
/// simulated devices connect as themselves, with their own credentials,
/// like real ones (the embedded broker lets no one else in). A device
/// still connected with its old secret is closed: one more reason the
/// simulator never runs on a real site.
pub async fn site_from_store(
    store: &dyn Store,
    guard: &LoginGuard,
    links: &DeviceLinks,
) -> Result<SimSite, SimError> {
    let elders = store.elders().await?;
    let devices = store.devices().await?;
    let stewards = store.stewards().await?;
    let issued: Vec<credentials::Issued> = devices.iter().map(|_| credentials::issue()).collect();
    let hashes: Vec<(crate::domain::DeviceId, String)> = devices
        .iter()
        .zip(&issued)
        .map(|(d, i)| (d.id.clone(), i.hash.clone()))
        .collect();
    store.set_device_secrets(&hashes, Utc::now()).await?;
    for (id, hash) in &hashes {
        links.close_stale(id, Some(hash));
    }
    let mut site = Site {
        site: Some("the registered site".into()),
        elders: elders
            .iter()
            .map(|e| SiteElder {
                id: e.id.to_string(),
                lat: e.location.lat,
                lon: e.location.lon,
                risks: SiteRisks {
                    fall: e.risks.fall,
                    wandering: e.risks.wandering,
                },
                care: device_sim::site::Care {
                    checkin: e
                        .care
                        .checkin
                        .map(|c| toml::Value::String(c.by.to_string())),
                },
            })
            .collect(),
        devices: devices
            .iter()
            .zip(issued)
            .map(|(d, issued)| SiteDevice {
                id: d.id.to_string(),
                elder_id: d.elder_id.as_ref().map(ToString::to_string),
                kind: d.kind.to_string(),
                heartbeat_s: Some(d.heartbeat_s),
                secret: Some(issued.secret),
            })
            .collect(),
        stewards: stewards
            .iter()
            .map(|s| SiteSteward {
                id: s.id.to_string(),
                lat: s.lat,
                lon: s.lon,
            })
            .collect(),
        users: Vec::new(),
    };
    // Hashing is the slow part: all at once, the guard lets two through.
    let made =
        futures::future::join_all(stewards.iter().map(|s| steward_login(store, guard, s))).await;
    let mut logins = Vec::new();
    for user in made {
        if let Some(user) = user? {
            logins.push(user.username.clone());
            site.users.push(user);
        }
    }
    Ok(SimSite { site, logins })
}

/// A fresh `sim-{id}` login for one steward (replacing the last run's);
/// None when that name belongs to someone else or cannot be a username.
async fn steward_login(
    store: &dyn Store,
    guard: &LoginGuard,
    steward: &Steward,
) -> Result<Option<SiteUser>, SimError> {
    let username = format!("sim-{}", steward.id);
    if !crate::auth::valid_username(&username) {
        return Ok(None);
    }
    if let Some(old) = store.user(&username).await? {
        if old.steward_id.as_ref() != Some(&steward.id) {
            tracing::warn!(%username, "a login of that name is not this steward's; the simulator does not play them");
            return Ok(None);
        }
        store.delete_user(&username).await?;
    }
    let password = uuid::Uuid::new_v4().simple().to_string();
    let user = User {
        username: username.clone(),
        role: Role::Steward,
        steward_id: Some(steward.id.clone()),
        scope: crate::domain::Scope::Site,
        password_hash: guard.hash(password.clone()).await?,
    };
    store.insert_user(&user).await?;
    Ok(Some(SiteUser {
        username,
        password,
        role: "steward".into(),
        steward_id: Some(steward.id.to_string()),
    }))
}

/// Removes the run's logins (and so their sessions).
pub async fn remove_logins(store: &dyn Store, logins: &[String]) {
    for username in logins {
        if let Err(e) = store.delete_user(username).await {
            tracing::warn!(%username, "could not remove a simulated steward's login: {e}");
        }
    }
}
