//! What the homes do: a seeded, time-scaled ordinary day, or a fixed
//! script (for tests and demos of one case).
//!
//! Rates are per elder per hour of simulated time; `speed` compresses
//! simulated time (60 = an hour a minute).

use std::sync::Arc;
use std::time::Duration;

use protocol::EventType;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::devices::Fleet;
use crate::site::Site;

/// What the simulated homes do.
#[derive(Debug, Clone)]
pub enum Scenario {
    /// Nothing but heartbeats.
    Quiet,
    /// Rare calls, false alarms, vitals readings, bed exits and returns.
    OrdinaryDay,
    /// These steps, in order, then quiet.
    Script(Vec<Step>),
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

/// How often things happen, per elder per simulated hour.
const PRESS_PER_H: f64 = 0.04;
const FALSE_ALARM_PER_H: f64 = 0.03;
const BED_EXIT_PER_H: f64 = 0.5;
const VITALS_PER_H: f64 = 2.0;
/// Of vitals readings, the share outside the limits.
const VITALS_OUT_OF_RANGE: f64 = 0.005;

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
                let data = match step.data {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                send(&fleet, &step.device, &step.kind, data).await;
            }
        }
        Scenario::OrdinaryDay => ordinary_day(site, fleet, seed, speed, stop).await,
    }
}

/// What one elder can do, by the devices they have.
#[derive(Debug)]
struct Home {
    call_devices: Vec<(String, &'static str)>,
    bed: Option<String>,
    vitals: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Press,
    FalseAlarm,
    BedExit,
    Vitals,
}

async fn ordinary_day(
    site: Arc<Site>,
    fleet: Arc<Fleet>,
    seed: u64,
    speed: f64,
    stop: CancellationToken,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let homes: Vec<Home> = site
        .elders
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
        .collect();
    // Every (home, action) with its rate per simulated second.
    let mut choices: Vec<(usize, Action, f64)> = Vec::new();
    for (i, h) in homes.iter().enumerate() {
        if !h.call_devices.is_empty() {
            choices.push((i, Action::Press, PRESS_PER_H / 3600.0));
            choices.push((i, Action::FalseAlarm, FALSE_ALARM_PER_H / 3600.0));
        }
        if h.bed.is_some() {
            choices.push((i, Action::BedExit, BED_EXIT_PER_H / 3600.0));
        }
        if h.vitals.is_some() {
            choices.push((i, Action::Vitals, VITALS_PER_H / 3600.0));
        }
    }
    let total: f64 = choices.iter().map(|c| c.2).sum();
    if total <= 0.0 {
        return;
    }
    let homes = Arc::new(homes);
    loop {
        // Exponential gap, simulated seconds.
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        let gap = -u.ln() / total;
        if sleep_or_stop(scaled(Duration::from_secs_f64(gap), speed), &stop).await {
            return;
        }
        let mut pick = rng.random_range(0.0..total);
        let mut chosen = choices[choices.len() - 1];
        for c in &choices {
            if pick < c.2 {
                chosen = *c;
                break;
            }
            pick -= c.2;
        }
        let (i, action, _) = chosen;
        let home = &homes[i];
        match action {
            Action::Press | Action::FalseAlarm => {
                let (device, button) =
                    home.call_devices[rng.random_range(0..home.call_devices.len())].clone();
                let button = if button == "bedside" && rng.random_bool(0.3) {
                    "wall"
                } else {
                    button
                };
                send(
                    &fleet,
                    &device,
                    "call.pressed",
                    obj(json!({"button": button})),
                )
                .await;
                if matches!(action, Action::FalseAlarm) {
                    // Pressed by mistake; cancelled a few seconds later
                    // (at least a moment of real time, so it shows).
                    let delay = scaled(Duration::from_secs(rng.random_range(3..12)), speed)
                        .max(Duration::from_millis(1500));
                    let (fleet, stop) = (fleet.clone(), stop.clone());
                    tokio::spawn(async move {
                        if !sleep_or_stop(delay, &stop).await {
                            send(&fleet, &device, "call.cancelled", Map::new()).await;
                        }
                    });
                }
            }
            Action::BedExit => {
                let Some(device) = home.bed.clone() else {
                    continue;
                };
                send(&fleet, &device, "bed.exit", Map::new()).await;
                // Back within 1–8 simulated minutes: inside any limit.
                let delay = scaled(Duration::from_secs(rng.random_range(60..480)), speed);
                let (fleet, stop) = (fleet.clone(), stop.clone());
                tokio::spawn(async move {
                    if !sleep_or_stop(delay, &stop).await {
                        send(&fleet, &device, "bed.return", Map::new()).await;
                    }
                });
            }
            Action::Vitals => {
                let Some(device) = home.vitals.clone() else {
                    continue;
                };
                let data = if rng.random_bool(VITALS_OUT_OF_RANGE) {
                    json!({"heart_rate": rng.random_range(128..150),
                           "resp_rate": rng.random_range(24..32),
                           "spo2": rng.random_range(78..83)})
                } else {
                    json!({"heart_rate": rng.random_range(62..92),
                           "resp_rate": rng.random_range(13..19),
                           "spo2": rng.random_range(92..98)})
                };
                send(&fleet, &device, "vitals", obj(data)).await;
            }
        }
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

async fn send(fleet: &Fleet, device: &str, kind: &str, data: Map<String, Value>) {
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
