//! `/api/v1/sim`: the device simulator inside the server, for demos and
//! tests (API.md, Simulator). Admins only, and only where `[sim] enabled =
//! true` (`dispatcher demo` sets it): simulated presses reach stewards'
//! phones exactly like real ones, so a real site keeps it off.
//!
//! A run plays the registered site (every elder's devices over MQTT to
//! this server's broker, every steward through this API) in one of the
//! built-in scenarios (`config/scenarios/`). One run at a time.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use device_sim::scenario::describe::{self, Description, ScenarioError};
use device_sim::{SimConfig, Simulator};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Admin;
use super::error::ErrorBody;
use super::extract::ApiJson;
use super::routes::Routes;
use super::{ApiError, AppState};
use crate::sim::{self, Run, RunInfo, SimControl, Slot};

impl From<sim::SimError> for ApiError {
    fn from(e: sim::SimError) -> Self {
        match e {
            sim::SimError::Store(e) => e.into(),
            sim::SimError::Hashing(e) => e.into(),
        }
    }
}

pub fn routes() -> Routes {
    Routes::new()
        .get("/api/v1/sim", status)
        .post("/api/v1/sim/start", start)
        .post("/api/v1/sim/stop", stop)
}

/// What to play.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartSim {
    /// A built-in scenario: `ordinary-day`, `flu-week`, `earthquake`,
    /// `power-cut`, `stuck-button` (`GET /api/v1/sim` lists them).
    pub scenario: String,
    /// Simulated seconds per real second (above 0, at most 3600); the
    /// scenario's own when absent.
    #[serde(default)]
    pub speed: Option<f64>,
    /// The same seed plays the same scenario; the scenario's own when absent.
    #[serde(default)]
    pub seed: Option<u64>,
}

/// A scenario one can start.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScenarioInfo {
    pub name: String,
    pub summary: String,
    /// Its default speed and seed.
    pub speed: f64,
    pub seed: u64,
}

/// Something the running scenario made happen.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimHappening {
    pub at: DateTime<Utc>,
    /// For a person: "power cut: 46 devices lost power".
    pub what: String,
    pub devices: Vec<String>,
}

/// The simulator: whether it may run, what runs (or ran last) and what it
/// has sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimStatus {
    /// `[sim] enabled` on this server.
    pub enabled: bool,
    pub running: bool,
    /// The running (or last) run's scenario.
    pub scenario: Option<String>,
    pub summary: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    /// Set once the last run stopped.
    pub stopped_at: Option<DateTime<Utc>>,
    pub started_by: Option<String>,
    pub speed: Option<f64>,
    pub seed: Option<u64>,
    /// Simulated devices and stewards.
    pub devices: usize,
    pub stewards: usize,
    /// Events published so far, in all and by type.
    pub events_sent: u64,
    pub sent: BTreeMap<String, u64>,
    /// The scenario's happenings, oldest first.
    pub happenings: Vec<SimHappening>,
    /// Devices without power now (a power cut).
    pub unpowered_devices: Vec<String>,
    /// What can be started.
    pub scenarios: Vec<ScenarioInfo>,
}

/// The simulator's state.
#[utoipa::path(get, path = "/api/v1/sim", tag = "sim", security(("bearer" = [])),
    responses((status = 200, body = SimStatus), (status = 403, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(user = %user.username))]
pub async fn status(
    Admin(user): Admin,
    State(state): State<AppState>,
) -> Result<Json<SimStatus>, ApiError> {
    let slot = state.sim.lock().await;
    Ok(Json(view(&state, &slot)))
}

/// Starts a scenario against this server's broker and API.
#[utoipa::path(post, path = "/api/v1/sim/start", tag = "sim", security(("bearer" = [])),
    request_body = StartSim,
    responses(
        (status = 200, description = "Started", body = SimStatus),
        (status = 403, body = ErrorBody),
        (status = 409, description = "`sim_disabled` (set [sim] enabled = true), `sim_running` (stop it first) or `sim_no_devices`", body = ErrorBody),
        (status = 422, description = "`unknown_scenario` (the message names the known ones) or a bad speed", body = ErrorBody),
        (status = 503, description = "The server's broker is not known yet", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, scenario = ?body.scenario))]
pub async fn start(
    Admin(user): Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<StartSim>,
) -> Result<Json<SimStatus>, ApiError> {
    Ok(Json(start_scenario(&state, body, &user.username).await?))
}

/// Stops the run (devices disconnect cleanly, no offline alarms) and
/// removes the simulated stewards' logins. Stopping when nothing runs is
/// not an error: a second click on Stop must not alarm anyone.
#[utoipa::path(post, path = "/api/v1/sim/stop", tag = "sim", security(("bearer" = [])),
    responses(
        (status = 200, description = "Stopped; the status shows the run's figures", body = SimStatus),
        (status = 403, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username))]
pub async fn stop(
    Admin(user): Admin,
    State(state): State<AppState>,
) -> Result<Json<SimStatus>, ApiError> {
    let mut slot = state.sim.lock().await;
    let logins = SimControl::stop_in(&mut slot, state.clock.now()).await;
    sim::remove_logins(state.store.as_ref(), &logins).await;
    Ok(Json(view(&state, &slot)))
}

/// Starts `req` on behalf of `by`: what the start route does, and what
/// `dispatcher demo` calls for its ordinary day.
pub async fn start_scenario(
    state: &AppState,
    req: StartSim,
    by: &str,
) -> Result<SimStatus, ApiError> {
    if !state.settings.sim.enabled {
        return Err(ApiError::conflict(
            "sim_disabled",
            "the simulator is off on this server: set [sim] enabled = true \
             (or ELDERCARE__SIM__ENABLED=true) and restart; `dispatcher demo` turns it on. \
             Never on a real site: simulated presses reach stewards like real ones",
        ));
    }
    let description = scenario(&req.scenario)?;
    let speed = req.speed.unwrap_or(description.speed);
    describe::check_speed(speed).map_err(|e| ApiError::invalid_body("speed", e))?;
    let seed = req.seed.unwrap_or(description.seed);
    let target = state.sim.target().ok_or_else(|| {
        ApiError::Unavailable(
            "the simulator needs this server's broker; try again once it has started".into(),
        )
    })?;

    let mut slot = state.sim.lock().await;
    if let Some(run) = &slot.running {
        return Err(ApiError::conflict(
            "sim_running",
            format!(
                "the simulator is already playing {} (started by {}); POST /api/v1/sim/stop first",
                run.info.scenario, run.info.started_by
            ),
        ));
    }
    let devices = state.store.devices().await?.len();
    if devices == 0 {
        return Err(ApiError::conflict(
            "sim_no_devices",
            "no devices are registered, so there is nothing to simulate; register a site first \
             (dispatcher import config/demo-site.toml)",
        ));
    }
    if devices > sim::MAX_DEVICES {
        return Err(ApiError::conflict(
            "sim_too_many_devices",
            format!(
                "{devices} devices are registered; the in-server simulator plays at most {}. \
                 Use device-sim's load mode for fleets this size",
                sim::MAX_DEVICES
            ),
        ));
    }
    let site = sim::site_from_store(
        state.store.as_ref(),
        &state.login_guard,
        &state.device_links,
    )
    .await?;
    let (name, summary) = (description.name.clone(), description.summary.clone());
    let mut config = SimConfig::new(
        &target.broker_host,
        target.broker_port,
        &target.http_base,
        site.site,
    )
    .with_description(description);
    config.topic_root = target.topic_root;
    config.speed = speed;
    config.seed = seed;
    let handle = match Simulator::start(config) {
        Ok(h) => h,
        Err(e) => {
            sim::remove_logins(state.store.as_ref(), &site.logins).await;
            return Err(ApiError::Internal(format!(
                "the simulator could not start: {e:#}"
            )));
        }
    };
    tracing::info!(
        scenario = %name, speed, seed,
        devices = handle.devices, stewards = handle.stewards,
        "simulator started"
    );
    slot.running = Some(Run {
        info: RunInfo {
            scenario: name,
            summary,
            started_at: state.clock.now(),
            started_by: by.to_owned(),
            speed,
            seed,
            devices: handle.devices,
            stewards: handle.stewards,
        },
        handle,
        logins: site.logins,
    });
    Ok(view(state, &slot))
}

/// A built-in scenario, or 422 naming the known ones.
fn scenario(name: &str) -> Result<Description, ApiError> {
    describe::built_in(name).map_err(|e| match e {
        ScenarioError::Unknown { .. } => ApiError::Unprocessable {
            code: "unknown_scenario",
            message: e.to_string(),
        },
        // A built-in file that does not read is our bug, not the caller's.
        ScenarioError::Invalid { .. } => ApiError::Internal(e.to_string()),
    })
}

fn view(state: &AppState, slot: &Slot) -> SimStatus {
    let scenarios = describe::all()
        .unwrap_or_default()
        .into_iter()
        .map(|d| ScenarioInfo {
            name: d.name,
            summary: d.summary,
            speed: d.speed,
            seed: d.seed,
        })
        .collect();
    let mut status = SimStatus {
        enabled: state.settings.sim.enabled,
        running: slot.running.is_some(),
        scenario: None,
        summary: None,
        started_at: None,
        stopped_at: None,
        started_by: None,
        speed: None,
        seed: None,
        devices: 0,
        stewards: 0,
        events_sent: 0,
        sent: BTreeMap::new(),
        happenings: Vec::new(),
        unpowered_devices: Vec::new(),
        scenarios,
    };
    if let Some((info, progress, stopped_at)) = slot.view() {
        status.scenario = Some(info.scenario.clone());
        status.summary = Some(info.summary.clone());
        status.started_at = Some(info.started_at);
        status.stopped_at = stopped_at;
        status.started_by = Some(info.started_by.clone());
        status.speed = Some(info.speed);
        status.seed = Some(info.seed);
        status.devices = info.devices;
        status.stewards = info.stewards;
        status.events_sent = sim::total_sent(&progress.sent);
        status.sent = progress.sent;
        status.happenings = progress
            .happenings
            .into_iter()
            .map(|h| SimHappening {
                at: h.at,
                what: h.what,
                devices: h.devices,
            })
            .collect();
        status.unpowered_devices = progress.unpowered;
    }
    status
}
