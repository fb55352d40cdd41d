//! What the homes do: a named scenario (`config/scenarios/*.toml`: an
//! ordinary day, a flu week, an earthquake, a power cut, a stuck button),
//! or a fixed script (for tests and demos of one case).
//!
//! - [`describe`]: the scenario files, built in, and their checks.
//! - [`life`]: everyday life at a scenario's rates.
//! - [`steps`]: the timed steps: press waves, power cuts, stuck buttons.
//!
//! Rates are per elder per hour of simulated time; `speed` compresses
//! simulated time (60 = an hour a minute).

pub mod describe;
mod life;
mod steps;

use std::sync::Arc;
use std::time::Duration;

use protocol::EventType;
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

pub use describe::{Description, Life, ScenarioError, StepSpec};

use crate::devices::Fleet;
use crate::site::Site;

/// What the simulated homes do.
#[derive(Debug, Clone)]
pub enum Scenario {
    /// Nothing but heartbeats.
    Quiet,
    /// Rare calls, false alarms, vitals readings, bed exits and returns
    /// (the rates of `ordinary-day.toml`).
    OrdinaryDay,
    /// These steps, in order, then quiet.
    Script(Vec<Step>),
    /// A scenario description: everyday life at its rates, and its steps.
    Described(Arc<Description>),
}

impl Scenario {
    /// A built-in scenario by name (`earthquake`, …).
    pub fn named(name: &str) -> Result<Self, ScenarioError> {
        Ok(Self::Described(Arc::new(describe::built_in(name)?)))
    }
}

/// One scripted event.
#[derive(Debug, Clone)]
pub struct Step {
    /// Simulated time to wait before it (scaled by `speed`).
    pub after: Duration,
    pub device: String,
    pub kind: String,
    pub data: Value,
}

impl Step {
    pub fn new(after: Duration, device: &str, kind: &str, data: Value) -> Self {
        Self {
            after,
            device: device.into(),
            kind: kind.into(),
            data,
        }
    }
}

/// Real time for `sim` simulated time at `speed`.
pub fn scaled(sim: Duration, speed: f64) -> Duration {
    sim.div_f64(speed.max(0.001))
}

/// Runs the scenario until `stop`.
pub async fn run(
    scenario: Scenario,
    site: Arc<Site>,
    fleet: Arc<Fleet>,
    seed: u64,
    speed: f64,
    stop: CancellationToken,
) {
    match scenario {
        Scenario::Quiet => {}
        Scenario::Script(steps) => {
            for step in steps {
                if sleep_or_stop(scaled(step.after, speed), &stop).await {
                    return;
                }
                send(&fleet, &step.device, &step.kind, obj(step.data)).await;
            }
        }
        Scenario::OrdinaryDay => life::run(Life::ORDINARY, site, fleet, seed, speed, stop).await,
        Scenario::Described(d) => {
            let steps = tokio::spawn(steps::run(
                d.steps.clone(),
                site.clone(),
                fleet.clone(),
                seed,
                speed,
                stop.clone(),
            ));
            life::run(d.life, site, fleet, seed, speed, stop).await;
            let _ = steps.await;
        }
    }
}

/// What one elder can do, by the devices they have.
#[derive(Debug)]
pub(crate) struct Home {
    /// Call devices and the `button` their presses name.
    call_devices: Vec<(String, &'static str)>,
    bed: Option<String>,
    vitals: Option<String>,
}

impl Home {
    /// One per elder, in the site's order.
    fn all(site: &Site) -> Vec<Home> {
        site.elders
            .iter()
            .map(|e| {
                let mut home = Home {
                    call_devices: Vec::new(),
                    bed: None,
                    vitals: None,
                };
                for d in site.devices_of(&e.id) {
                    match d.kind.as_str() {
                        "call_button" => home.call_devices.push((d.id.clone(), "bedside")),
                        "pendant" => home.call_devices.push((d.id.clone(), "pendant")),
                        "pull_cord" => home.call_devices.push((d.id.clone(), "pull_cord")),
                        "bed_sensor" => home.bed = Some(d.id.clone()),
                        "vitals_pad" => home.vitals = Some(d.id.clone()),
                        _ => {}
                    }
                }
                home
            })
            .collect()
    }

    /// One of the home's call devices and the button pressed (a bedside
    /// button is sometimes the one on the wall). Only for homes with one.
    fn call_device(&self, rng: &mut StdRng) -> (String, &'static str) {
        let (device, button) =
            self.call_devices[rng.random_range(0..self.call_devices.len())].clone();
        let button = if button == "bedside" && rng.random_bool(0.3) {
            "wall"
        } else {
            button
        };
        (device, button)
    }

    fn has(&self, device: &str) -> bool {
        self.call_devices.iter().any(|(d, _)| d == device)
            || self.bed.as_deref() == Some(device)
            || self.vitals.as_deref() == Some(device)
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Publishes one event; a device without power sends nothing (and that is
/// no error: it is the point of a power cut).
async fn send(fleet: &Fleet, device: &str, kind: &str, data: Map<String, Value>) {
    if fleet.powered(device) == Some(false) {
        tracing::debug!(device, kind, "simulated device has no power; nothing sent");
        return;
    }
    tracing::debug!(device, kind, "simulated event");
    if let Err(e) = fleet.event(device, EventType::from(kind), data).await {
        tracing::warn!(device, kind, "simulator could not publish: {e:#}");
    }
}

/// Sleeps; true if stopped meanwhile.
pub(crate) async fn sleep_or_stop(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}
