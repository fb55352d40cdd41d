//! Everyday life in the homes: calls for help, false alarms, bed exits and
//! returns, vitals readings, each a Poisson process at the rates of a
//! [`Life`], over every elder's devices.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, json};
use tokio_util::sync::CancellationToken;

use super::describe::Life;
use super::{Home, obj, scaled, send, sleep_or_stop};
use crate::devices::Fleet;
use crate::site::Site;

#[derive(Debug, Clone, Copy)]
enum Action {
    Press,
    FalseAlarm,
    BedExit,
    Vitals,
}

/// Runs until `stop`.
pub(crate) async fn run(
    life: Life,
    site: Arc<Site>,
    fleet: Arc<Fleet>,
    seed: u64,
    speed: f64,
    stop: CancellationToken,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let homes = Home::all(&site);
    // Every (home, action) with its rate per simulated second.
    let mut choices: Vec<(usize, Action, f64)> = Vec::new();
    for (i, h) in homes.iter().enumerate() {
        if !h.call_devices.is_empty() {
            choices.push((i, Action::Press, life.press_per_h / 3600.0));
            choices.push((i, Action::FalseAlarm, life.false_alarm_per_h / 3600.0));
        }
        if h.bed.is_some() {
            choices.push((i, Action::BedExit, life.bed_exit_per_h / 3600.0));
        }
        if h.vitals.is_some() {
            choices.push((i, Action::Vitals, life.vitals_per_h / 3600.0));
        }
    }
    choices.retain(|c| c.2 > 0.0);
    let total: f64 = choices.iter().map(|c| c.2).sum();
    if total <= 0.0 {
        return;
    }
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
                let (device, button) = home.call_device(&mut rng);
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
                let data = if rng.random_bool(life.vitals_out_of_range) {
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
