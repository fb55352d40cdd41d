//! Device duty (issue 16): a button's scheduled test call goes round
//! trip over a real broker (test.call → test.ack on its commands topic →
//! test.confirmed) and never opens an incident; devices that did not pass
//! a test in time are listed as due, then missed, as the test's manual
//! clock moves; the false alarms stewards record flag devices and elders,
//! and a supervisor applies the suggested rule change, which the next bed
//! exit obeys. Each runs on SQLite with the embedded broker and on
//! PostgreSQL with the machine's Mosquitto.

use chrono::{DateTime, Duration, Utc};
use eldercare_tests::app::{Broker, Db, Options, TestApp};
use eldercare_tests::wait;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Broker::Embedded, super::Db::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Broker::Mosquitto, super::Db::Postgres).await
                }
            )*
        }
    };
}

on_both_stores!(
    a_test_call_goes_round_trip_once_and_opens_no_incident,
    devices_without_a_passed_test_are_due_then_missed,
    false_alarms_flag_and_an_applied_suggestion_changes_the_next_bed_exit,
    bad_suggestions_change_nothing,
    a_device_registered_again_starts_its_duty_afresh,
);

/// 10:00 in Lhasa.
fn morning() -> DateTime<Utc> {
    "2026-11-02T02:00:00Z".parse().unwrap()
}

/// 23:30 in Lhasa.
fn night() -> DateTime<Utc> {
    "2026-11-28T15:30:00Z".parse().unwrap()
}

async fn app(broker: Broker, db: Db, at: DateTime<Utc>) -> TestApp {
    TestApp::spawn(Options {
        broker,
        db,
        clock: Some(at),
        // The admin's session outlives the weeks these tests move the
        // clock through.
        env: vec![("ELDERCARE__AUTH__SESSION_HOURS".into(), "8760".into())],
    })
    .await
}

/// Waits until `n` events of the device are stored.
async fn stored(app: &TestApp, device: &str, n: usize) {
    wait::until(&format!("{n} events of {device} stored"), || async {
        (app.events(device).await.len() == n).then_some(())
    })
    .await;
}

/// The device ids the roster lists with this status, and the whole
/// roster entry of each.
async fn listed(app: &TestApp, status: &str) -> Vec<String> {
    let body = app
        .get(&format!("/api/v1/device-tests?status={status}"))
        .await;
    body["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| {
            assert_eq!(d["status"], status, "{d}");
            d["device_id"].as_str().unwrap().to_owned()
        })
        .collect()
}

async fn roster_entry(app: &TestApp, device: &str) -> Value {
    let body = app.get("/api/v1/device-tests").await;
    body["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device_id"] == device)
        .cloned()
        .unwrap_or_else(|| panic!("{device} not in the roster: {body}"))
}

async fn tests_of(app: &TestApp, device: &str) -> Vec<Value> {
    match app.get(&format!("/api/v1/devices/{device}/tests")).await {
        Value::Array(a) => a,
        other => panic!("not a list: {other}"),
    }
}

/// Moves the manual clock and waits for every worker to look at it.
async fn advance(app: &TestApp, by: Duration) {
    app.clock.advance(by);
    app.settle().await;
}

async fn a_test_call_goes_round_trip_once_and_opens_no_incident(broker: Broker, db: Db) {
    let app = app(broker, db, morning()).await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    let mut button = app.device("btn-1").await;
    let mut lamp = button.commands().await;

    button.event("t-1", "test.call", json!({})).await;
    let ack = lamp.next().await;
    assert_eq!(ack["type"], "test.ack", "{ack}");
    assert_eq!(ack["event_id"], "t-1", "{ack}");
    assert!(ack["ts"].is_string(), "{ack}");

    // Before the lamp's confirmation: pending, and no incident.
    let tests = tests_of(&app, "btn-1").await;
    assert_eq!(tests.len(), 1, "{tests:?}");
    assert_eq!(tests[0]["result"], "pending");
    assert!(app.incidents("").await.is_empty(), "a test opens nothing");

    // The broker redelivers the call (a device that did not hear the
    // PUBACK), then the device confirms.
    button.event("t-1", "test.call", json!({})).await;
    button
        .event("c-1", "test.confirmed", json!({"test_event_id": "t-1"}))
        .await;
    button.flushed().await;
    stored(&app, "btn-1", 2).await;
    let tests = tests_of(&app, "btn-1").await;
    assert_eq!(tests.len(), 1, "one test for a redelivered call: {tests:?}");
    assert_eq!(tests[0]["event_id"], "t-1");
    assert_eq!(tests[0]["result"], "passed", "{}", tests[0]);
    assert_eq!(tests[0]["received_at"], tests[0]["confirmed_at"]);

    // A second confirmation and one naming no test of ours are stored and
    // change nothing.
    button
        .event("c-2", "test.confirmed", json!({"test_event_id": "t-1"}))
        .await;
    button
        .event("c-3", "test.confirmed", json!({"test_event_id": "nope"}))
        .await;
    button.event("c-4", "test.confirmed", json!({})).await;
    button.flushed().await;
    stored(&app, "btn-1", 5).await;
    assert_eq!(tests_of(&app, "btn-1").await, tests);
    let events = app.events("btn-1").await;
    assert!(
        events.iter().all(|e| e["action"] == "recorded"),
        "{events:?}"
    );

    // The next command the lamp hears answers the next test: the
    // redelivered call was not answered twice.
    button.event("t-2", "test.call", json!({})).await;
    let next = lamp.next().await;
    assert_eq!(
        (next["type"].as_str(), next["event_id"].as_str()),
        (Some("test.ack"), Some("t-2")),
        "{next}"
    );
    assert!(app.incidents("").await.is_empty(), "tests open nothing");
    let entry = roster_entry(&app, "btn-1").await;
    assert_eq!(entry["status"], "ok", "{entry}");
    assert_eq!(entry["last_test"]["event_id"], "t-2", "{entry}");
    assert_eq!(entry["last_result"], "pending", "{entry}");
    assert_eq!(
        entry["due_at"]
            .as_str()
            .map(|t| t.parse::<DateTime<Utc>>().unwrap()),
        Some(morning() + Duration::days(30)),
        "a month after the passed test: {entry}"
    );
}

async fn devices_without_a_passed_test_are_due_then_missed(broker: Broker, db: Db) {
    let app = app(broker, db, morning()).await;
    app.elder_with_device("e-1", "btn-ok", "call_button", json!({}))
        .await;
    for (id, kind) in [
        ("btn-dark", "call_button"),
        ("pend-never", "pendant"),
        ("bed-1", "bed_sensor"),
    ] {
        app.register_device(json!({"id": id, "elder_id": "e-1", "kind": kind, "heartbeat_s": 60}))
            .await;
    }

    // btn-ok passes its test; btn-dark's lamp never answers.
    let mut ok = app.device("btn-ok").await;
    let mut ok_lamp = ok.commands().await;
    ok.event("t-1", "test.call", json!({})).await;
    assert_eq!(ok_lamp.next().await["event_id"], "t-1");
    ok.event("c-1", "test.confirmed", json!({"test_event_id": "t-1"}))
        .await;
    ok.flushed().await;
    stored(&app, "btn-ok", 2).await;
    let mut dark = app.device("btn-dark").await;
    let mut dark_lamp = dark.commands().await;
    dark.event("t-9", "test.call", json!({})).await;
    assert_eq!(dark_lamp.next().await["event_id"], "t-9");

    // Within confirm_within_s the unconfirmed test is pending; past it,
    // failed.
    advance(&app, Duration::seconds(299)).await;
    assert_eq!(tests_of(&app, "btn-dark").await[0]["result"], "pending");
    advance(&app, Duration::seconds(2)).await;
    assert_eq!(tests_of(&app, "btn-dark").await[0]["result"], "failed");
    let entry = roster_entry(&app, "btn-dark").await;
    assert_eq!(
        (entry["status"].as_str(), entry["last_result"].as_str()),
        (Some("ok"), Some("failed")),
        "new devices have a grace: {entry}"
    );
    assert!(listed(&app, "due").await.is_empty());

    // A week after registration the two that never passed are due…
    advance(&app, Duration::days(7)).await;
    assert_eq!(listed(&app, "due").await, ["btn-dark", "pend-never"]);
    assert!(listed(&app, "missed").await.is_empty());
    assert_eq!(listed(&app, "ok").await, ["btn-ok"]);
    // …and a week later they missed it.
    advance(&app, Duration::days(7)).await;
    assert_eq!(listed(&app, "missed").await, ["btn-dark", "pend-never"]);
    assert_eq!(listed(&app, "ok").await, ["btn-ok"]);

    // A confirmation days late does not pass the test.
    dark.event("c-9", "test.confirmed", json!({"test_event_id": "t-9"}))
        .await;
    dark.flushed().await;
    stored(&app, "btn-dark", 2).await;
    assert_eq!(tests_of(&app, "btn-dark").await[0]["result"], "late");
    assert_eq!(listed(&app, "missed").await, ["btn-dark", "pend-never"]);

    // A month after its passed test btn-ok is due, a week later missed.
    advance(&app, Duration::days(16)).await;
    assert_eq!(listed(&app, "due").await, ["btn-ok"]);
    advance(&app, Duration::days(7)).await;
    assert_eq!(
        listed(&app, "missed").await,
        ["btn-dark", "btn-ok", "pend-never"]
    );
    let entry = roster_entry(&app, "btn-ok").await;
    assert_eq!(entry["last_result"], "passed", "{entry}");
    // A bed sensor has no button to test with: not on the roster.
    let roster = app.get("/api/v1/device-tests").await;
    assert_eq!(roster["devices"].as_array().unwrap().len(), 3, "{roster}");
    assert_eq!(roster["counts"], json!({"missed": 3, "due": 0, "ok": 0}));
    assert_eq!(roster["total"], 3);
    // A city's roster comes a page at a time; the counts cover them all.
    let page = app
        .get("/api/v1/device-tests?status=missed&limit=1&offset=1")
        .await;
    let ids: Vec<&str> = page["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["btn-ok"], "{page}");
    assert_eq!(page["total"], 3);
    assert_eq!(page["counts"]["missed"], 3);
    let none = app.get("/api/v1/device-tests?status=due").await;
    assert_eq!(
        (none["total"].clone(), none["counts"]["missed"].clone()),
        (json!(0), json!(3))
    );
    for bad in ["limit=0", "limit=many", "offset=-1"] {
        let (status, body) = app
            .call(
                Some(&app.admin),
                Method::GET,
                &format!("/api/v1/device-tests?{bad}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_query", "{bad}");
    }

    // Asking for a status that does not exist is the client's error.
    let (status, body) = app
        .call(
            Some(&app.admin),
            Method::GET,
            "/api/v1/device-tests?status=late",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_query");
    let (status, _) = app
        .call(
            Some(&app.admin),
            Method::GET,
            "/api/v1/devices/nobody/tests",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Opens an incident of `kind` through `device` (a bed exit left
/// unreturned for the elder's window, or a press), resolves it as the
/// admin with `outcome` and returns its id.
async fn resolved(
    app: &TestApp,
    device: &mut eldercare_tests::device::TestDevice,
    kind: &str,
    outcome: &str,
    n: usize,
) -> String {
    let id = format!("{kind}-{n}");
    match kind {
        "bed.no_return" => {
            device.event(&id, "bed.exit", json!({})).await;
            device.flushed().await;
            wait::until("the bed exit stored", || async {
                app.events(device.id.as_str())
                    .await
                    .iter()
                    .any(|e| e["event_id"] == id.as_str())
                    .then_some(())
            })
            .await;
            advance(app, Duration::minutes(21)).await;
        }
        _ => {
            device.event(&id, "call.pressed", json!({})).await;
        }
    }
    let open = wait::until(&format!("an open {kind}"), || async {
        app.incidents(&format!("kind={kind}&status=dispatching"))
            .await
            .into_iter()
            .find(|i| i["device_id"] == device.id.as_str())
    })
    .await;
    let incident = open["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/incidents/{incident}/resolve"),
        json!({"outcome": outcome, "notes": "checked"}),
    )
    .await;
    incident
}

async fn false_alarms_flag_and_an_applied_suggestion_changes_the_next_bed_exit(
    broker: Broker,
    db: Db,
) {
    let app = app(broker, db, night()).await;
    app.elder_with_device("e-bed", "bed-1", "bed_sensor", json!({}))
        .await;
    app.elder_with_device("e-half", "btn-half", "call_button", json!({}))
        .await;
    app.elder_with_device("e-wolf", "btn-wolf", "call_button", json!({}))
        .await;

    // e-bed: three of four bed exits were nothing (0.75, flagged).
    let mut bed = app.device("bed-1").await;
    for (n, outcome) in ["false_alarm", "false_alarm", "assisted", "false_alarm"]
        .into_iter()
        .enumerate()
    {
        resolved(&app, &mut bed, "bed.no_return", outcome, n).await;
    }
    // e-half: two of four (0.5, not above the threshold).
    let mut half = app.device("btn-half").await;
    for (n, outcome) in ["false_alarm", "assisted", "false_alarm", "hospital"]
        .into_iter()
        .enumerate()
    {
        resolved(&app, &mut half, "call", outcome, n).await;
    }
    // e-wolf: three of three (1.0, too few to judge), then a fourth.
    let mut wolf = app.device("btn-wolf").await;
    for n in 0..3 {
        resolved(&app, &mut wolf, "call", "false_alarm", n).await;
    }
    let report = app.get("/api/v1/false-alarms").await;
    let elder = |r: &Value, id: &str| {
        r["elders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["elder_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not in {r}"))
    };
    assert_eq!(elder(&report, "e-wolf")["rate"], 1.0);
    assert_eq!(
        elder(&report, "e-wolf")["flagged"],
        false,
        "3 < 4 incidents"
    );
    resolved(&app, &mut wolf, "call", "false_alarm", 3).await;

    let report = app.get("/api/v1/false-alarms").await;
    let e_bed = elder(&report, "e-bed");
    assert_eq!(
        (
            &e_bed["resolved"],
            &e_bed["false_alarms"],
            &e_bed["rate"],
            &e_bed["flagged"]
        ),
        (&json!(4), &json!(3), &json!(0.75), &json!(true)),
        "{e_bed}"
    );
    assert_eq!(e_bed["suggestion"]["kind"], "bed.no_return");
    assert_eq!(
        e_bed["suggestion"]["change"],
        json!({"limit": "bed_return_min", "from": 20, "to": 30})
    );
    let e_half = elder(&report, "e-half");
    assert_eq!(
        (&e_half["rate"], &e_half["flagged"], &e_half["suggestion"]),
        (&json!(0.5), &json!(false), &Value::Null),
        "{e_half}"
    );
    let e_wolf = elder(&report, "e-wolf");
    assert_eq!(
        (&e_wolf["rate"], &e_wolf["flagged"]),
        (&json!(1.0), &json!(true))
    );
    assert_eq!(e_wolf["suggestion"]["kind"], "call");
    assert_eq!(e_wolf["suggestion"]["change"], Value::Null, "words only");
    assert!(
        e_wolf["suggestion"]["advice"]
            .as_str()
            .unwrap()
            .contains("placement"),
        "{e_wolf}"
    );
    let devices = report["devices"].as_array().unwrap();
    let flagged: Vec<_> = devices
        .iter()
        .filter(|d| d["flagged"] == true)
        .map(|d| {
            (
                d["device_id"].as_str().unwrap(),
                d["rate"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(flagged, [("btn-wolf", 1.0), ("bed-1", 0.75)], "{report}");
    // The device offline incidents the silent devices raised meanwhile
    // are technical: not counted.
    let bed_1 = devices.iter().find(|d| d["device_id"] == "bed-1").unwrap();
    assert_eq!(bed_1["resolved"], 4, "{bed_1}");

    // The supervisor applies the suggestion: the next bed exit waits 30
    // minutes, not 20.
    let applied = app
        .post(
            "/api/v1/false-alarms/suggestions/apply",
            json!({"elder_id": "e-bed", "change": e_bed["suggestion"]["change"]}),
        )
        .await;
    assert_eq!(applied["limits"]["bed_return_min"], 30, "{applied}");
    let stored_elder = app.get("/api/v1/elders/e-bed").await;
    assert_eq!(stored_elder["limits"]["bed_return_min"], 30);
    // Applied once: the same suggestion again is stale.
    let (status, body) = app
        .call(
            Some(&app.admin),
            Method::POST,
            "/api/v1/false-alarms/suggestions/apply",
            Some(json!({"elder_id": "e-bed", "change": e_bed["suggestion"]["change"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "stale_suggestion");

    bed.event("exit-after", "bed.exit", json!({})).await;
    bed.flushed().await;
    wait::until("the bed exit stored", || async {
        app.events("bed-1")
            .await
            .iter()
            .any(|e| e["event_id"] == "exit-after")
            .then_some(())
    })
    .await;
    advance(&app, Duration::minutes(25)).await;
    assert!(
        app.incidents("kind=bed.no_return&status=dispatching")
            .await
            .is_empty(),
        "25 minutes is inside the new window"
    );
    advance(&app, Duration::minutes(6)).await;
    app.wait_incidents("kind=bed.no_return&status=dispatching", 1)
        .await;
}

async fn bad_suggestions_change_nothing(broker: Broker, db: Db) {
    let app = app(broker, db, morning()).await;
    app.elder_with_device(
        "e-1",
        "btn-1",
        "call_button",
        json!({"inactivity_min": 120}),
    )
    .await;
    let steward = app.steward("s-1", "grid-1", 29.66, 91.14).await;
    let before = app.get("/api/v1/elders/e-1").await;
    let path = "/api/v1/false-alarms/suggestions/apply";
    let good = json!({"limit": "bed_return_min", "from": 20, "to": 30});
    let cases = [
        (
            Some(steward.as_str()),
            json!({"elder_id": "e-1", "change": good}),
            StatusCode::FORBIDDEN,
        ),
        (
            None,
            json!({"elder_id": "e-1", "change": good}),
            StatusCode::UNAUTHORIZED,
        ),
        (
            Some(app.admin.as_str()),
            json!({"elder_id": "e-nobody", "change": good}),
            StatusCode::NOT_FOUND,
        ),
        (
            Some(app.admin.as_str()),
            json!({"elder_id": "e-1", "change": {"limit": "heart_rate_max", "from": 1, "to": 2}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Some(app.admin.as_str()),
            json!({"elder_id": "e-1", "change": {"limit": "bed_return_min", "from": 20, "to": 0}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Some(app.admin.as_str()),
            json!({"elder_id": "e-1", "change": {"limit": "bed_return_min", "from": 20, "to": 20}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Some(app.admin.as_str()),
            json!({"elder_id": "e-1", "change": {"limit": "bed_return_min", "from": 20, "to": 99999}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Some(app.admin.as_str()),
            json!({"elder_id": "e-1", "change": {"limit": "bed_return_min", "from": -1, "to": 30}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Some(app.admin.as_str()),
            json!({"elder_id": "e-1", "change": {"limit": "bed_return_min", "to": 30}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Some(app.admin.as_str()),
            json!({"elder_id": "e-1", "change": good, "also": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Some(app.admin.as_str()),
            json!({"elder_id": "bad id!", "change": good}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Some(app.admin.as_str()),
            json!({"elder_id": "e-1"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        // Someone changed it since the suggestion was made.
        (
            Some(app.admin.as_str()),
            json!({"elder_id": "e-1", "change": {"limit": "inactivity_min", "from": 90, "to": 180}}),
            StatusCode::CONFLICT,
        ),
    ];
    for (token, body, want) in cases {
        let (status, answer) = app
            .call(token, Method::POST, path, Some(body.clone()))
            .await;
        assert_eq!(status, want, "{body}: {answer}");
        assert!(answer["error"]["code"].is_string(), "{body}: {answer}");
    }
    let (status, answer) = app
        .call(
            Some(&app.admin),
            Method::POST,
            path,
            Some(Value::String("{".into())),
        )
        .await;
    assert!(status.is_client_error(), "{answer}");
    assert_eq!(
        app.get("/api/v1/elders/e-1").await,
        before,
        "nothing changed"
    );

    // Stewards read none of the duty lists.
    for route in [
        "/api/v1/device-tests",
        "/api/v1/devices/btn-1/tests",
        "/api/v1/false-alarms",
    ] {
        let (status, _) = app.call(Some(&steward), Method::GET, route, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{route}");
    }

    // The inactivity limit applied from its value in force.
    let applied = app
        .post(
            path,
            json!({"elder_id": "e-1", "change": {"limit": "inactivity_min", "from": 120, "to": 180}}),
        )
        .await;
    assert_eq!(applied["limits"]["inactivity_min"], 180);
    assert_eq!(
        app.get("/api/v1/elders/e-1").await["limits"]["inactivity_min"],
        180
    );
}

/// The simulator's buttons run their test calls: each sends `test.call`,
/// its lamp hears the `test.ack` and it confirms, so every test passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_buttons_run_their_test_calls_round_trip() {
    use device_sim::scenario::Description;
    use device_sim::site::{Site, SiteDevice, SiteElder};
    use device_sim::{SimConfig, Simulator};

    let app = TestApp::spawn(Options::default()).await;
    let mut site = Site {
        site: Some("duty test".into()),
        elders: vec![],
        devices: vec![],
        stewards: vec![],
        users: vec![],
    };
    for (elder, button) in [("e-1", "btn-1"), ("e-2", "btn-2")] {
        app.elder_with_device(elder, button, "call_button", json!({}))
            .await;
        site.elders.push(SiteElder {
            id: elder.into(),
            lat: 29.6598,
            lon: 91.1377,
            risks: Default::default(),
            care: Default::default(),
        });
        site.devices.push(SiteDevice {
            id: button.into(),
            elder_id: Some(elder.into()),
            kind: "call_button".into(),
            heartbeat_s: Some(60),
            secret: app.secret(button).await,
        });
    }
    let scenario = Description::parse(
        "duty",
        r#"name = "duty"
summary = "test calls only"
seed = 7
speed = 60.0
[life]
press_per_h = 0.0
false_alarm_per_h = 0.0
bed_exit_per_h = 0.0
vitals_per_h = 0.0
vitals_out_of_range = 0.0
[[step]]
do = "test_calls"
at_s = 0
within_s = 60
"#,
    )
    .expect("a valid scenario");
    let mut config = SimConfig::new(&app.broker_host, app.broker_port, &app.base, site)
        .with_description(scenario);
    config.topic_root = app.topics.root().to_owned();
    config.stewards = false;
    let sim = Simulator::start(config).expect("the simulator starts");
    for button in ["btn-1", "btn-2"] {
        wait::until(&format!("{button}'s test passed"), || async {
            let tests = tests_of(&app, button).await;
            (tests.len() == 1 && tests[0]["result"] == "passed").then_some(())
        })
        .await;
    }
    assert_eq!(listed(&app, "ok").await, ["btn-1", "btn-2"]);
    assert!(app.incidents("").await.is_empty(), "tests open nothing");
    let sent = sim.progress().sent;
    assert_eq!(sent.get("test.call"), Some(&2), "{sent:?}");
    assert_eq!(sent.get("test.confirmed"), Some(&2), "{sent:?}");
    sim.stop().await;
    app.stop().await.unwrap();
}

async fn a_device_registered_again_starts_its_duty_afresh(broker: Broker, db: Db) {
    let app = app(broker, db, morning()).await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    {
        let mut button = app.device("btn-1").await;
        let mut lamp = button.commands().await;
        button.event("t-1", "test.call", json!({})).await;
        assert_eq!(lamp.next().await["event_id"], "t-1");
        button
            .event("c-1", "test.confirmed", json!({"test_event_id": "t-1"}))
            .await;
        button.flushed().await;
        stored(&app, "btn-1", 2).await;
    }
    assert_eq!(tests_of(&app, "btn-1").await[0]["result"], "passed");

    // Removed, and a month later registered again (another home, say):
    // its old test is not its new registration's.
    let (status, body) = app
        .call(
            Some(&app.admin),
            Method::DELETE,
            "/api/v1/devices/btn-1",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    advance(&app, Duration::days(31)).await;
    app.register_device(json!({"id": "btn-1", "elder_id": "e-1", "kind": "call_button"}))
        .await;
    assert!(tests_of(&app, "btn-1").await.is_empty());
    let entry = roster_entry(&app, "btn-1").await;
    assert_eq!(entry["status"], "ok", "a new grace: {entry}");
    assert_eq!(entry["last_test"], Value::Null, "{entry}");
    assert_eq!(
        entry["enrolled_at"]
            .as_str()
            .map(|t| t.parse::<DateTime<Utc>>().unwrap()),
        Some(morning() + Duration::days(31)),
        "{entry}"
    );
}
