//! The device simulator against a real dispatcher: its devices keep
//! themselves online with heartbeats, and its stewards take an incident
//! from offer to resolution through the API, like people with phones.

use std::time::Duration;

use device_sim::scenario::{Scenario, Step};
use device_sim::site::{Site, SiteDevice, SiteElder, SiteSteward, SiteUser};
use device_sim::{SimConfig, Simulator};
use eldercare_tests::app::{Options, TestApp};
use eldercare_tests::wait;
use serde_json::{Value, json};

/// The elders live at 29.6598 N, 91.1377 E (see `elder_body`); the
/// steward starts about 100 m north.
const STEWARD_AT: (f64, f64) = (29.6607, 91.1377);

/// The site with each device's secret, so the simulated devices connect
/// as themselves (the embedded broker lets no one else in).
async fn with_secrets(app: &TestApp, mut site: Site) -> Site {
    for d in &mut site.devices {
        d.secret = app.secret(&d.id).await;
    }
    site
}

fn site() -> Site {
    let elder = |id: &str| SiteElder {
        id: id.into(),
        lat: 29.6598,
        lon: 91.1377,
        risks: Default::default(),
        care: Default::default(),
    };
    let button = |id: &str, elder: &str| SiteDevice {
        id: id.into(),
        elder_id: Some(elder.into()),
        kind: "call_button".into(),
        heartbeat_s: Some(60),
        secret: None,
    };
    Site {
        site: Some("sim test".into()),
        elders: vec![elder("e-1"), elder("e-2")],
        devices: vec![button("btn-1", "e-1"), button("btn-2", "e-2")],
        stewards: vec![SiteSteward {
            id: "s-1".into(),
            lat: Some(STEWARD_AT.0),
            lon: Some(STEWARD_AT.1),
        }],
        users: vec![SiteUser {
            username: "s-1".into(),
            password: "s-1-password".into(),
            role: "steward".into(),
            steward_id: Some("s-1".into()),
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_devices_stay_online_and_a_simulated_steward_resolves_a_press() {
    let app = TestApp::spawn(Options::default()).await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    app.elder_with_device("e-2", "btn-2", "call_button", json!({}))
        .await;
    // The steward and its login (`s-1` / `s-1-password`), on duty.
    app.steward("s-1", "grid-1", STEWARD_AT.0, STEWARD_AT.1)
        .await;

    let mut config = SimConfig::new(
        &app.broker_host,
        app.broker_port,
        &app.base,
        with_secrets(&app, site()).await,
    );
    config.topic_root = app.topics.root().to_owned();
    config.speed = 200.0;
    config.seed = 7;
    config.scenario = Scenario::Script(vec![Step::new(
        Duration::from_secs(200),
        "btn-1",
        "call.pressed",
        json!({"button": "bedside"}),
    )]);
    let sim = Simulator::start(config).expect("the simulator starts");

    // Heartbeats: both devices are online.
    wait::until("both simulated devices online", || async {
        let list = app.get("/api/v1/devices").await;
        let online = list
            .as_array()?
            .iter()
            .filter(|d| d["online"] == Value::Bool(true))
            .count();
        (online == 2).then_some(())
    })
    .await;

    // The press becomes an incident that the simulated steward accepts,
    // walks to, arrives at and resolves.
    let open = wait::until("the press to open an incident", || async {
        let list = app.incidents("elder_id=e-1").await;
        list.first().cloned()
    })
    .await;
    let id = open["id"].as_str().unwrap().to_owned();
    let done = app
        .wait_incident(&id, "the simulated steward to resolve it", |d| {
            d["status"] == "resolved"
        })
        .await;
    assert_eq!(done["steward_id"], "s-1", "{done}");
    assert!(!done["acknowledged_at"].is_null(), "{done}");
    assert!(!done["on_site_at"].is_null(), "{done}");
    let outcome = done["outcome"].as_str().unwrap_or_default();
    assert!(
        outcome == "assisted" || outcome == "false_alarm",
        "outcome {outcome}: {done}"
    );
    // The steward walked: its position reached the elder's home.
    let steward = app.get("/api/v1/stewards/s-1").await;
    let dlat = steward["lat"].as_f64().unwrap() - 29.6598;
    assert!(dlat.abs() < 0.0002, "steward at {steward}");
    // Only the one press: e-2 had no incident.
    assert!(app.incidents("elder_id=e-2").await.is_empty());

    sim.stop().await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordinary_day_sends_vitals_and_bed_exits_and_returns() {
    let app = TestApp::spawn(Options::default()).await;
    for (elder, bed, pad) in [("e-1", "bed-1", "pad-1"), ("e-2", "bed-2", "pad-2")] {
        app.elder_with_device(elder, bed, "bed_sensor", json!({}))
            .await;
        app.post(
            "/api/v1/devices",
            json!({"id": pad, "elder_id": elder, "kind": "vitals_pad", "heartbeat_s": 60}),
        )
        .await;
    }
    let mut site = site();
    site.devices = ["bed-1", "pad-1", "bed-2", "pad-2"]
        .iter()
        .map(|id| SiteDevice {
            id: (*id).into(),
            elder_id: Some(if id.ends_with('1') { "e-1" } else { "e-2" }.into()),
            kind: if id.starts_with("bed") {
                "bed_sensor"
            } else {
                "vitals_pad"
            }
            .into(),
            heartbeat_s: Some(60),
            secret: None,
        })
        .collect();
    let site = with_secrets(&app, site).await;
    let mut config = SimConfig::new(&app.broker_host, app.broker_port, &app.base, site);
    config.topic_root = app.topics.root().to_owned();
    // An hour a second: a few events a second across two homes.
    config.speed = 3600.0;
    config.stewards = false;
    let sim = Simulator::start(config).expect("the simulator starts");

    wait::until("bed exits, returns and vitals from the homes", || async {
        let mut kinds = std::collections::HashSet::new();
        for d in ["bed-1", "pad-1", "bed-2", "pad-2"] {
            for e in app.events(d).await {
                if let Some(t) = e["type"].as_str() {
                    kinds.insert(t.to_owned());
                }
            }
        }
        ["bed.exit", "bed.return", "vitals"]
            .iter()
            .all(|k| kinds.contains(*k))
            .then_some(())
    })
    .await;
    sim.stop().await;
    app.stop().await.unwrap();
}
