//! The device simulator: homes, devices and stewards speaking the eldercare
//! protocol. Devices talk MQTT (PROTOCOL.md) and stewards talk HTTP
//! (API.md) exactly as real ones do; nothing here knows the dispatcher's
//! insides.
//!
//! - [`site`]: the homes and stewards, read from a site file.
//! - [`devices`]: the devices' connections and heartbeats.
//! - [`scenario`]: what happens in the homes: a named scenario from
//!   `config/scenarios/` (an ordinary day, a flu week, an earthquake, a
//!   power cut, a stuck button), or a script.
//! - [`journal`]: what the simulator sent and did, for its status.
//! - [`stewards`]: stewards who answer offers like people.
//! - [`device`]: one device by hand (the `device-sim` binary).
//! - [`load`]: load mode: up to a million devices over a few connections,
//!   for the benchmarks (`device-sim load`).

pub mod device;
pub mod devices;
pub mod journal;
pub mod load;
pub mod scenario;
pub mod site;
pub mod stewards;

use std::sync::Arc;

use protocol::Topics;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::devices::Fleet;
use crate::journal::Happening;
use crate::scenario::{Description, Scenario};
use crate::site::Site;

/// What to simulate and against what.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub broker_host: String,
    pub broker_port: u16,
    /// The topic root, `eldercare/v1` unless the dispatcher uses another.
    pub topic_root: String,
    /// The dispatcher's HTTP base, e.g. `http://127.0.0.1:8080`.
    pub http_base: String,
    pub site: Site,
    pub scenario: Scenario,
    pub seed: u64,
    /// Simulated seconds per real second (60: an hour a minute).
    pub speed: f64,
    /// Play the stewards that have a login in the site.
    pub stewards: bool,
    /// Admin username and password: with them, stewards without a login
    /// get one (`sim-{steward id}`) and are played too.
    pub admin: Option<(String, String)>,
}

impl SimConfig {
    /// An ordinary day at demo speed.
    pub fn new(broker_host: &str, broker_port: u16, http_base: &str, site: Site) -> Self {
        Self {
            broker_host: broker_host.into(),
            broker_port,
            topic_root: Topics::DEFAULT_ROOT.into(),
            http_base: http_base.into(),
            site,
            scenario: Scenario::OrdinaryDay,
            seed: 1,
            speed: 60.0,
            stewards: true,
            admin: None,
        }
    }

    /// Plays this scenario description at its own seed and speed.
    pub fn with_description(mut self, description: Description) -> Self {
        self.seed = description.seed;
        self.speed = description.speed;
        self.scenario = Scenario::Described(Arc::new(description));
        self
    }
}

/// The running simulator.
pub struct Simulator;

/// What [`Simulator::start`] returns; [`SimHandle::stop`] ends it.
pub struct SimHandle {
    stop: CancellationToken,
    fleet: Arc<Fleet>,
    tasks: Vec<JoinHandle<()>>,
    /// How many devices and stewards are simulated.
    pub devices: usize,
    pub stewards: usize,
}

/// What a running simulator has done so far.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SimProgress {
    /// Events published, by type.
    pub sent: std::collections::BTreeMap<String, u64>,
    /// The scenario's happenings, oldest first.
    pub happenings: Vec<Happening>,
    /// Devices without power now (a power cut).
    pub unpowered: Vec<String>,
}

impl Simulator {
    /// Starts the devices, the scenario and the stewards on tokio tasks.
    pub fn start(config: SimConfig) -> anyhow::Result<SimHandle> {
        let stop = CancellationToken::new();
        // Everything waits until the dispatcher says it is ready (its
        // subscription is in place), so no first heartbeat goes unheard.
        let ready = CancellationToken::new();
        let mut tasks = vec![tokio::spawn(wait_ready(
            config.http_base.clone(),
            ready.clone(),
            stop.clone(),
        ))];
        let site = Arc::new(config.site);
        let players = players(&site, config.stewards, config.admin.is_some());
        // The scenario's clock starts once the stewards are on duty (or
        // after STEWARDS_PATIENCE): an earthquake two minutes in must meet
        // the stewards the scenario promises, however slow the logins.
        let on_duty = Arc::new(Semaphore::new(0));
        let expected = u32::try_from(players.len()).unwrap_or(u32::MAX);
        let fleet = Arc::new(Fleet::start(
            &config.broker_host,
            config.broker_port,
            Topics::new(config.topic_root),
            &site,
            config.seed,
            ready.clone(),
            stop.clone(),
        )?);
        {
            let (scenario, site, fleet) = (config.scenario, site.clone(), fleet.clone());
            let (ready, stop, on_duty) = (ready.clone(), stop.clone(), on_duty.clone());
            tasks.push(tokio::spawn(async move {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ready.cancelled() => {}
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    waited = tokio::time::timeout(STEWARDS_PATIENCE, on_duty.acquire_many(expected)) => {
                        if waited.is_err() {
                            tracing::warn!("simulated stewards are not all on duty after {STEWARDS_PATIENCE:?}; the scenario starts anyway");
                        }
                    }
                }
                scenario::run(scenario, site, fleet, config.seed, config.speed, stop).await
            }));
        }
        let stewards = players.len();
        for (n, (steward, user, create)) in players.into_iter().enumerate() {
            let mut player = stewards::Player::new(
                config.http_base.clone(),
                steward,
                user,
                config.seed.wrapping_add(1 + n as u64),
                config.speed,
                stop.clone(),
            );
            if let (true, Some(admin)) = (create, &config.admin) {
                player = player.creating_login(admin.clone());
            }
            player = player.signalling_on_duty(on_duty.clone());
            tasks.push(tokio::spawn(player.run()));
        }
        Ok(SimHandle {
            stop,
            fleet,
            tasks,
            devices: site.devices.len(),
            stewards,
        })
    }
}

/// How long a scenario waits for its stewards to be on duty.
const STEWARDS_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// The stewards to play: those with a login in the site, and with admin
/// credentials every other one too (a `sim-{id}` login made first). The
/// flag says whether the login must be made.
fn players(
    site: &Site,
    stewards: bool,
    with_admin: bool,
) -> Vec<(site::SiteSteward, site::SiteUser, bool)> {
    if !stewards {
        return Vec::new();
    }
    let mut players: Vec<_> = site
        .playable_stewards()
        .into_iter()
        .map(|(s, u)| (s, u, false))
        .collect();
    if with_admin {
        for s in &site.stewards {
            if !players.iter().any(|(p, _, _)| p.id == s.id) {
                let user = site::SiteUser {
                    username: format!("sim-{}", s.id),
                    password: uuid::Uuid::new_v4().simple().to_string(),
                    role: "steward".into(),
                    steward_id: Some(s.id.clone()),
                };
                players.push((s.clone(), user, true));
            }
        }
    }
    players
}

/// Polls `{base}/readyz` until 200 (or for at most 30 s), then fires
/// `ready`.
async fn wait_ready(base: String, ready: CancellationToken, stop: CancellationToken) {
    let http = reqwest::Client::new();
    let url = format!("{}/readyz", base.trim_end_matches('/'));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline && !stop.is_cancelled() {
        let ok = http
            .get(&url)
            .timeout(std::time::Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            // The subscription is sent right after the connection; give
            // the broker a moment to register it.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    ready.cancel();
}

impl SimHandle {
    /// What it has done so far.
    pub fn progress(&self) -> SimProgress {
        SimProgress {
            sent: self.fleet.sent(),
            happenings: self.fleet.journal.happenings(),
            unpowered: self.fleet.unpowered(),
        }
    }

    /// Stops everything and waits for the devices to disconnect.
    pub async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        if let Ok(fleet) = Arc::try_unwrap(self.fleet) {
            fleet.join().await;
        }
    }
}
