//! The simulator's scenarios (`config/scenarios/`) against a real
//! dispatcher, started through the API as a demo or a dashboard would:
//! the demo site's 38 homes, 163 devices and 13 stewards in two
//! communities, over a real
//! broker. Each test asserts what must come out of the scenario, never how
//! long it took: the earthquake loses nobody, the power cut's offline
//! incidents open and clear, the stuck button's flood is contained while
//! another elder still reaches a steward.
//!
//! Speeds are high so a test takes seconds; every wait is generous, for a
//! loaded two-core machine.

use std::collections::{BTreeMap, BTreeSet};

use dispatcher::import::SiteFile;
use eldercare_tests::app::{Options, TestApp};
use eldercare_tests::wait;
use serde_json::{Value, json};

const DEMO_SITE: &str = include_str!("../../config/demo-site.toml");

/// A dispatcher with the simulator enabled and the demo site registered.
async fn demo_site() -> TestApp {
    let app = TestApp::spawn(Options {
        env: vec![("ELDERCARE__SIM__ENABLED".into(), "true".into())],
        ..Options::default()
    })
    .await;
    let site = SiteFile::from_toml(DEMO_SITE).expect("the demo site reads");
    site.import(app.state.store.as_ref(), 60)
        .await
        .expect("the demo site imports");
    // Imported behind the API's back: start their heartbeat clocks now, as
    // registering through the API would (the periodic refresh is slower).
    let now = app.clock.now();
    for d in app.state.store.devices().await.expect("devices") {
        app.state.liveness.track(&d, now);
    }
    app
}

/// Starts a scenario through the API; returns the status.
async fn play(app: &TestApp, scenario: &str, speed: f64) -> Value {
    let status = app
        .post(
            "/api/v1/sim/start",
            json!({"scenario": scenario, "speed": speed}),
        )
        .await;
    assert_eq!(status["running"], true, "{status}");
    assert_eq!(status["devices"], 163, "{status}");
    assert_eq!(status["stewards"], 13, "{status}");
    status
}

/// Waits for the scenario's happening whose text starts with `what`;
/// returns its devices.
async fn happening(app: &TestApp, what: &str) -> Vec<String> {
    wait::until(&format!("the simulator to report {what:?}"), || async {
        let status = app.get("/api/v1/sim").await;
        status["happenings"].as_array()?.iter().find_map(|h| {
            h["what"].as_str()?.starts_with(what).then(|| {
                h["devices"]
                    .as_array()
                    .map(|d| {
                        d.iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            })
        })
    })
    .await
}

/// Device id to elder id, from the site file.
fn owners() -> BTreeMap<String, String> {
    let site = SiteFile::from_toml(DEMO_SITE).expect("the demo site reads");
    site.devices
        .iter()
        .filter_map(|d| Some((d.id.to_string(), d.elder_id.as_ref()?.to_string())))
        .collect()
}

/// Every stored event of this type, counted by device.
async fn stored(app: &TestApp, event_type: &str) -> BTreeMap<String, usize> {
    let all = app.get("/api/v1/events?limit=1000").await;
    let all = all.as_array().expect("an event list");
    // One page holds them all here; a full page would undercount.
    assert!(all.len() < 1000, "more events than one page");
    let mut by_device = BTreeMap::new();
    for e in all.iter().filter(|e| e["type"] == event_type) {
        if let Some(d) = e["device_id"].as_str() {
            *by_device.entry(d.to_owned()).or_default() += 1;
        }
    }
    by_device
}

/// Stops the simulator; returns the final status (with what it sent).
async fn stop(app: &TestApp) -> Value {
    let status = app.post("/api/v1/sim/stop", json!({})).await;
    assert_eq!(status["running"], false, "{status}");
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earthquake_every_pressing_elder_gets_a_steward_or_an_escalation_and_none_is_lost() {
    let app = demo_site().await;
    play(&app, "earthquake", 60.0).await;
    let wave = happening(&app, "press wave").await;
    assert!(wave.len() >= 20, "most of 38 elders press: {wave:?}");
    let owners = owners();

    // Every elder in the wave has an incident, and each incident of theirs
    // ends with a steward who accepted or an escalation (or the elder's own
    // cancel, after a false alarm of everyday life): nobody is left waiting
    // unseen.
    let elders: BTreeSet<String> = wave.iter().map(|d| owners[d].clone()).collect();
    let (mut acknowledged, mut escalated) = (0, 0);
    for elder in &elders {
        let incidents = wait::until(&format!("{elder}'s call settled"), || async {
            let list = app.incidents(&format!("elder_id={elder}&kind=call")).await;
            if list.is_empty() {
                return None;
            }
            let mut settled = Vec::new();
            for i in &list {
                let ack = !i["acknowledged_at"].is_null();
                let up = i["escalation_level"].as_i64().unwrap_or(0) > 0;
                let cancelled_by_elder = i["status"] == "cancelled" && cancelled(&app, elder).await;
                if !(ack || up || cancelled_by_elder) {
                    return None;
                }
                settled.push((ack, up));
            }
            Some(settled)
        })
        .await;
        for (ack, up) in incidents {
            acknowledged += usize::from(ack);
            escalated += usize::from(up && !ack);
        }
    }
    eprintln!(
        "earthquake: {} elders pressed; {acknowledged} calls acknowledged, {escalated} escalated unacknowledged",
        elders.len()
    );

    // None lost: every press the simulator sent is stored, and every elder
    // who pressed (in the wave or in everyday life) has an incident.
    let sent = stop(&app).await["sent"]["call.pressed"]
        .as_u64()
        .expect("presses sent");
    let presses = wait::until("every press stored", || async {
        let by_device = stored(&app, "call.pressed").await;
        (by_device.values().sum::<usize>() as u64 == sent).then_some(by_device)
    })
    .await;
    for device in presses.keys() {
        let elder = &owners[device];
        assert!(
            !app.incidents(&format!("elder_id={elder}&kind=call"))
                .await
                .is_empty(),
            "{elder} pressed {device} and has no incident"
        );
    }
    app.stop().await.unwrap();
}

/// Whether any of the elder's devices sent `call.cancelled`.
async fn cancelled(app: &TestApp, elder: &str) -> bool {
    for (device, owner) in owners() {
        if owner == elder
            && app
                .events(&device)
                .await
                .iter()
                .any(|e| e["type"] == "call.cancelled")
        {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cut_offline_incidents_open_for_the_devices_that_went_away_and_clear_when_they_return()
 {
    let app = demo_site().await;
    play(&app, "power-cut", 120.0).await;
    let cut: BTreeSet<String> = happening(&app, "power cut").await.into_iter().collect();
    assert!(
        (47..=61).contains(&cut.len()),
        "about a third of 163 devices: {}",
        cut.len()
    );

    // Each device that lost power has its own technical incident…
    let offline_devices = || async {
        app.incidents("kind=device.offline&limit=1000")
            .await
            .iter()
            .filter_map(|i| i["device_id"].as_str().map(str::to_owned))
            .collect::<BTreeSet<String>>()
    };
    let found = wait::within(
        std::time::Duration::from_secs(30),
        "an offline incident per device without power",
        || async { offline_devices().await.is_superset(&cut).then_some(()) },
    )
    .await;
    if found.is_none() {
        let missing: Vec<String> = cut.difference(&offline_devices().await).cloned().collect();
        let devices = app.get("/api/v1/devices").await;
        let states: Vec<&serde_json::Value> = devices
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| missing.iter().any(|m| d["id"] == m.as_str()))
            .collect();
        panic!("no offline incident for {missing:?}: {states:?}");
    }
    for i in app.incidents("kind=device.offline&limit=1000").await {
        assert_eq!(i["priority"], "technical", "{i}");
    }

    // …and when power returns, every one of them clears by itself.
    happening(&app, "power back").await;
    wait::until("every offline incident cleared", || async {
        let list = app.incidents("kind=device.offline&limit=1000").await;
        list.iter()
            .all(|i| i["status"] == "resolved" && i["outcome"] == "cleared")
            .then_some(())
    })
    .await;
    wait::until("the devices online again", || async {
        let devices = app.get("/api/v1/devices").await;
        let online: BTreeSet<String> = devices
            .as_array()?
            .iter()
            .filter(|d| d["online"] == true)
            .filter_map(|d| d["id"].as_str().map(str::to_owned))
            .collect();
        online.is_superset(&cut).then_some(())
    })
    .await;
    // No false alarm: only the devices that lost power went offline.
    assert_eq!(offline_devices().await, cut);
    stop(&app).await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_button_flood_is_contained_and_another_elders_press_is_still_dispatched() {
    let app = demo_site().await;
    play(&app, "stuck-button", 5.0).await;
    let stuck = happening(&app, "stuck button:").await;
    let [stuck] = &stuck[..] else {
        panic!("one stuck button: {stuck:?}")
    };
    let other = happening(&app, "press wave").await;
    let owners = owners();
    let stuck_elder = &owners[stuck];
    let [other] = &other[..] else {
        panic!("one other elder presses: {other:?}")
    };
    let other_elder = &owners[other];
    assert_ne!(stuck_elder, other_elder);

    // The other elder, pressing within the same second as the flood,
    // still reaches a steward.
    let theirs = wait::until("the other elder's incident", || async {
        app.incidents(&format!("elder_id={other_elder}&kind=call"))
            .await
            .first()
            .cloned()
    })
    .await;
    let id = theirs["id"].as_str().unwrap().to_owned();
    let detail = app
        .wait_incident(&id, "an offer to a steward", |d| {
            !d["offers"].as_array().is_none_or(Vec::is_empty)
        })
        .await;
    assert!(
        detail["offers"][0]["steward_id"].is_string(),
        "{}",
        detail["offers"]
    );

    // The flood: every press stored or counted as excess (beyond a fixed
    // sample, the excess is not stored), and one incident for the stuck
    // button's elder.
    happening(&app, "stuck button released").await;
    assert!(
        app.metric("dispatcher_rejected_messages_total{reason=\"rate_limited\"}")
            .await
            > 0.0,
        "the flood was over the rate limit"
    );
    let final_status = stop(&app).await;
    let sent = final_status["sent"]["call.pressed"].as_u64().unwrap() as usize;
    let (presses, dropped) = wait::until("every press stored or counted", || async {
        let by_device = stored(&app, "call.pressed").await;
        let dropped = app.metric("dispatcher_events_flood_dropped_total").await as usize;
        (by_device.values().sum::<usize>() + dropped == sent).then_some((by_device, dropped))
    })
    .await;
    let floods = presses[stuck];
    assert!(
        floods + dropped >= 150,
        "the flood: {floods} presses stored, {dropped} not"
    );
    let incidents = app
        .incidents(&format!("elder_id={stuck_elder}&kind=call"))
        .await;
    assert_eq!(
        incidents.len(),
        1,
        "{floods} presses make one incident: {incidents:?}"
    );
    app.stop().await.unwrap();
}
