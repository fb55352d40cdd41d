//! The timed steps of a scenario: press waves, power cuts, stuck buttons,
//! the monthly test calls, single events. Each step starts at its `at_s`; steps that last (a power
//! cut, a flood) run on their own tasks so the next step starts on time.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::describe::StepSpec;
use super::{Home, obj, scaled, send};
use crate::devices::Fleet;
use crate::site::Site;

/// Runs the steps in time order, then returns (everyday life goes on).
pub(crate) async fn run(
    mut steps: Vec<StepSpec>,
    site: Arc<Site>,
    fleet: Arc<Fleet>,
    seed: u64,
    speed: f64,
    stop: CancellationToken,
) {
    // Its own stream of randomness: the steps pick the same elders and
    // devices whatever everyday life drew before them.
    let mut rng = StdRng::seed_from_u64(seed.rotate_left(29) ^ 0x5CE7_A810);
    steps.sort_by(|a, b| a.at_s().total_cmp(&b.at_s()));
    let homes = Home::all(&site);
    let start = Instant::now();
    // Elders whose button is stuck: a press wave chooses others, so "another
    // elder presses" means another elder.
    let mut stuck: HashSet<usize> = HashSet::new();
    for step in steps {
        let due = start + scaled(Duration::from_secs_f64(step.at_s()), speed);
        if sleep_until_or_stop(due, &stop).await {
            return;
        }
        match step {
            StepSpec::PressWave {
                share,
                count,
                within_s,
                ..
            } => {
                let mut eligible: Vec<usize> = (0..homes.len())
                    .filter(|i| !homes[*i].call_devices.is_empty() && !stuck.contains(i))
                    .collect();
                eligible.shuffle(&mut rng);
                let n = match (share, count) {
                    (Some(s), _) => ((s * eligible.len() as f64).round() as usize).max(1),
                    (None, Some(c)) => c,
                    (None, None) => 0,
                };
                eligible.truncate(n);
                let mut presses: Vec<(f64, String, &'static str)> = eligible
                    .iter()
                    .map(|i| {
                        let (device, button) = homes[*i].call_device(&mut rng);
                        (rng.random_range(0.0..within_s.max(0.001)), device, button)
                    })
                    .collect();
                presses.sort_by(|a, b| a.0.total_cmp(&b.0));
                fleet.journal.note(
                    format!(
                        "press wave: {} elders press within {within_s} s",
                        presses.len()
                    ),
                    presses.iter().map(|p| p.1.clone()).collect(),
                );
                let (fleet, stop) = (fleet.clone(), stop.clone());
                tokio::spawn(async move {
                    let wave = Instant::now();
                    for (after, device, button) in presses {
                        let at = wave + scaled(Duration::from_secs_f64(after), speed);
                        if sleep_until_or_stop(at, &stop).await {
                            return;
                        }
                        send(
                            &fleet,
                            &device,
                            "call.pressed",
                            obj(json!({"button": button})),
                        )
                        .await;
                    }
                });
            }
            StepSpec::PowerCut {
                share,
                for_s,
                return_within_s,
                ..
            } => {
                let mut all: Vec<String> = site.devices.iter().map(|d| d.id.clone()).collect();
                all.shuffle(&mut rng);
                all.truncate(((share * all.len() as f64).round() as usize).max(1));
                all.sort();
                for d in &all {
                    fleet.set_power(d, false);
                }
                fleet.journal.note(
                    format!("power cut: {} devices lost power", all.len()),
                    all.clone(),
                );
                let mut returns: Vec<(f64, String)> = all
                    .into_iter()
                    .map(|d| (for_s + rng.random_range(0.0..=return_within_s), d))
                    .collect();
                returns.sort_by(|a, b| a.0.total_cmp(&b.0));
                let (fleet, stop) = (fleet.clone(), stop.clone());
                tokio::spawn(async move {
                    let cut = Instant::now();
                    let back: Vec<String> = returns.iter().map(|r| r.1.clone()).collect();
                    for (after, device) in returns {
                        let at = cut + scaled(Duration::from_secs_f64(after), speed);
                        if sleep_until_or_stop(at, &stop).await {
                            return;
                        }
                        fleet.set_power(&device, true);
                    }
                    fleet
                        .journal
                        .note(format!("power back: {} devices", back.len()), back);
                });
            }
            StepSpec::StuckButton {
                device,
                per_s,
                for_s,
                ..
            } => {
                let device = device.or_else(|| {
                    let buttons: Vec<&str> = site
                        .devices
                        .iter()
                        .filter(|d| d.kind == "call_button")
                        .map(|d| d.id.as_str())
                        .collect();
                    (!buttons.is_empty())
                        .then(|| buttons[rng.random_range(0..buttons.len())].to_owned())
                });
                let Some(device) = device else {
                    fleet
                        .journal
                        .note("stuck button: the site has no call button".into(), vec![]);
                    continue;
                };
                if let Some(i) = homes.iter().position(|h| h.has(&device)) {
                    stuck.insert(i);
                }
                let presses = (per_s * for_s).round().max(1.0) as u64;
                fleet.journal.note(
                    format!("stuck button: {device} repeats its press {per_s} times a second for {for_s} s"),
                    vec![device.clone()],
                );
                let (fleet, stop) = (fleet.clone(), stop.clone());
                tokio::spawn(async move {
                    let jam = Instant::now();
                    let every = scaled(Duration::from_secs_f64(1.0 / per_s), speed);
                    for n in 0..presses {
                        // On a schedule, not after each send: a slow
                        // publish must not slow the flood down.
                        let at = jam + every.mul_f64(n as f64);
                        if sleep_until_or_stop(at, &stop).await {
                            return;
                        }
                        send(
                            &fleet,
                            &device,
                            "call.pressed",
                            obj(json!({"button": "bedside"})),
                        )
                        .await;
                    }
                    fleet.journal.note(
                        format!("stuck button released: {device} sent {presses} presses"),
                        vec![device],
                    );
                });
            }
            StepSpec::TestCalls {
                within_s,
                fail_share,
                skip_share,
                ..
            } => {
                let mut tested: Vec<(f64, String)> = Vec::new();
                let (mut failing, mut skipped) = (Vec::new(), Vec::new());
                for (device, _) in homes.iter().flat_map(|h| h.call_devices.iter()) {
                    if rng.random_bool(skip_share) {
                        skipped.push(device.clone());
                        continue;
                    }
                    if rng.random_bool(fail_share) {
                        fleet.break_lamp(device);
                        failing.push(device.clone());
                    }
                    tested.push((rng.random_range(0.0..within_s.max(0.001)), device.clone()));
                }
                tested.sort_by(|a, b| a.0.total_cmp(&b.0));
                fleet.journal.note(
                    format!(
                        "test calls: {} devices test within {within_s} s; {} lamps will not confirm, {} devices are never tested",
                        tested.len(),
                        failing.len(),
                        skipped.len()
                    ),
                    tested.iter().map(|t| t.1.clone()).collect(),
                );
                if !failing.is_empty() {
                    fleet
                        .journal
                        .note("test calls: broken lamps".into(), failing);
                }
                if !skipped.is_empty() {
                    fleet
                        .journal
                        .note("test calls: never tested".into(), skipped);
                }
                let (fleet, stop) = (fleet.clone(), stop.clone());
                tokio::spawn(async move {
                    let round = Instant::now();
                    for (after, device) in tested {
                        let at = round + scaled(Duration::from_secs_f64(after), speed);
                        if sleep_until_or_stop(at, &stop).await {
                            return;
                        }
                        send(&fleet, &device, "test.call", serde_json::Map::new()).await;
                    }
                });
            }
            StepSpec::Event {
                device,
                event_type,
                data,
                ..
            } => {
                send(&fleet, &device, &event_type, obj(data)).await;
            }
        }
    }
}

/// Sleeps until `at`; true if stopped meanwhile.
async fn sleep_until_or_stop(at: Instant, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => true,
        _ = tokio::time::sleep_until(at) => false,
    }
}
