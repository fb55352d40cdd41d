//! Device events over a real broker, read back through the real HTTP API.
//! Each scenario runs against the embedded broker and the machine's
//! Mosquitto (under a topic root of its own).

use chrono::{DateTime, Duration, Utc};
use eldercare_tests::app::{Broker, Db, Options, TestApp};
use eldercare_tests::wait;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Runs a scenario once per broker.
macro_rules! on_both_brokers {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Broker::Embedded).await
                }
            )*
        }
        mod mosquitto {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Broker::Mosquitto).await
                }
            )*
        }
    };
}

on_both_brokers!(
    presses_and_redeliveries_join_one_incident_and_a_cancel_closes_it,
    vitals_are_judged_against_each_elders_own_limits,
    every_bad_input_is_rejected_and_counted_while_good_events_flow,
    a_flooding_device_is_contained_and_another_elders_press_still_counts,
    a_full_writer_queue_holds_messages_back_and_loses_none,
    a_last_will_raises_offline_at_once_and_a_goodbye_does_not,
);

/// An unregistered device cannot connect to the embedded broker at all
/// (tests/tests/broker.rs); an external broker may let it in, and then
/// supervisors see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_device_on_an_open_broker_is_kept_for_supervisors() {
    an_unregistered_device_is_kept_for_supervisors(Broker::Mosquitto).await
}

async fn app(broker: Broker) -> TestApp {
    TestApp::spawn(Options {
        broker,
        ..Options::default()
    })
    .await
}

async fn presses_and_redeliveries_join_one_incident_and_a_cancel_closes_it(broker: Broker) {
    let app = app(broker).await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    let mut button = app.device("btn-1").await;

    button
        .event("press-1", "call.pressed", json!({"button": "bedside"}))
        .await;
    let open = app
        .wait_incidents("elder_id=e-1&status=dispatching", 1)
        .await;
    assert_eq!(open[0]["kind"], "call");
    assert_eq!(open[0]["priority"], "urgent");

    // Five more presses and a redelivery of the first.
    for i in 2..=6 {
        button
            .event(
                &format!("press-{i}"),
                "call.pressed",
                json!({"button": "bedside"}),
            )
            .await;
    }
    button
        .event("press-1", "call.pressed", json!({"button": "bedside"}))
        .await;
    button.flushed().await;
    wait::until("six distinct events stored", || async {
        (app.events("btn-1").await.len() == 6).then_some(())
    })
    .await;
    let open = app.wait_incidents("elder_id=e-1", 1).await;
    assert_eq!(open[0]["event_count"], 6, "{}", open[0]);
    let id = open[0]["id"].as_str().unwrap().to_owned();

    let detail = app.get(&format!("/api/v1/incidents/{id}")).await;
    let timeline = detail["timeline"].as_array().unwrap();
    assert!(
        timeline[0]["what"].as_str().unwrap().starts_with("opened"),
        "{detail}"
    );
    // Opened once, joined five times (with no steward on duty it also
    // escalates; that is dispatch's story, not this one).
    let joins = timeline
        .iter()
        .filter(|t| t["what"].as_str().unwrap().starts_with("joined"))
        .count();
    assert_eq!(joins, 5, "opened + 5 joins: {detail}");

    button.event("cancel-1", "call.cancelled", json!({})).await;
    wait::until("the incident to be cancelled", || async {
        let d = app.get(&format!("/api/v1/incidents/{id}")).await;
        (d["status"] == "cancelled").then_some(())
    })
    .await;

    // A new press after the cancel is a new need.
    button.event("press-7", "call.pressed", json!({})).await;
    app.wait_incidents("elder_id=e-1", 2).await;
    app.wait_incidents("elder_id=e-1&status=dispatching", 1)
        .await;
}

async fn vitals_are_judged_against_each_elders_own_limits(broker: Broker) {
    let app = app(broker).await;
    // Long at altitude: her usual SpO2 is 86-88 %.
    app.elder_with_device(
        "e-high",
        "vit-high",
        "vitals_pad",
        json!({"spo2_min": 84.0}),
    )
    .await;
    app.elder_with_device("e-std", "vit-std", "vitals_pad", json!({}))
        .await;
    let mut high = app.device("vit-high").await;
    let mut std = app.device("vit-std").await;
    let reading = json!({"heart_rate": 88, "resp_rate": 18, "spo2": 86});
    high.event("v-1", "vitals", reading.clone()).await;
    std.event("v-1", "vitals", reading).await;

    let open = app.wait_incidents("elder_id=e-std", 1).await;
    assert_eq!(open[0]["kind"], "vitals");
    assert_eq!(open[0]["priority"], "critical");
    assert!(
        open[0]["summary"].as_str().unwrap().contains("SpO2"),
        "{}",
        open[0]
    );
    // Both events are stored; only one elder has an incident.
    wait::until("the other elder's reading stored", || async {
        (app.events("vit-high").await.len() == 1).then_some(())
    })
    .await;
    assert!(app.incidents("elder_id=e-high").await.is_empty());
}

async fn every_bad_input_is_rejected_and_counted_while_good_events_flow(broker: Broker) {
    let app = app(broker).await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    let mut dev = app.device("btn-1").await;
    let now = Utc::now();
    let ts = now.to_rfc3339();
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("invalid_json", b"{not json".to_vec()),
        ("invalid_json", b"\xff\xfe".to_vec()),
        (
            "too_large",
            format!(
                r#"{{"event_id":"big","type":"vitals","ts":"{ts}","data":{{"x":"{}"}}}}"#,
                "x".repeat(5000)
            )
            .into_bytes(),
        ),
        (
            "missing_field",
            format!(r#"{{"type":"call.pressed","ts":"{ts}"}}"#).into_bytes(),
        ),
        (
            "wrong_type",
            format!(r#"{{"event_id":42,"type":"call.pressed","ts":"{ts}"}}"#).into_bytes(),
        ),
        (
            "bad_event_id",
            format!(r#"{{"event_id":"","type":"call.pressed","ts":"{ts}"}}"#).into_bytes(),
        ),
        (
            "bad_event_id",
            format!(
                r#"{{"event_id":"{}","type":"call.pressed","ts":"{ts}"}}"#,
                "x".repeat(65)
            )
            .into_bytes(),
        ),
        (
            "bad_timestamp",
            br#"{"event_id":"t","type":"call.pressed","ts":"last tuesday"}"#.to_vec(),
        ),
        (
            "future_timestamp",
            format!(
                r#"{{"event_id":"f","type":"call.pressed","ts":"{}"}}"#,
                (now + Duration::hours(25)).to_rfc3339()
            )
            .into_bytes(),
        ),
        (
            "out_of_range",
            format!(r#"{{"event_id":"o","type":"vitals","ts":"{ts}","data":{{"spo2":-5}}}}"#)
                .into_bytes(),
        ),
        (
            "out_of_range",
            format!(
                r#"{{"event_id":"h","type":"vitals","ts":"{ts}","data":{{"heart_rate":900,"spo2":97}}}}"#
            )
            .into_bytes(),
        ),
        (
            "device_id_mismatch",
            format!(
                r#"{{"event_id":"m","type":"call.pressed","ts":"{ts}","device_id":"someone-else"}}"#
            )
            .into_bytes(),
        ),
    ];
    let mut expected: std::collections::BTreeMap<&str, f64> = Default::default();
    for (i, (reason, payload)) in bad.iter().enumerate() {
        dev.raw_event(payload.clone()).await;
        *expected.entry(reason).or_default() += 1.0;
        // A good event between every two bad ones.
        dev.event(&format!("good-{i}"), "bed.return", json!({}))
            .await;
    }
    dev.event("press", "call.pressed", json!({})).await;
    dev.flushed().await;

    app.wait_incidents("elder_id=e-1", 1).await;
    wait::until("every good event stored", || async {
        (app.events("btn-1").await.len() == bad.len() + 1).then_some(())
    })
    .await;
    for (reason, n) in expected {
        let series = format!("dispatcher_rejected_messages_total{{reason=\"{reason}\"}}");
        assert_eq!(app.metric(&series).await, n, "{series}");
    }
    // Nothing bad was stored.
    let ids: Vec<String> = app
        .events("btn-1")
        .await
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        ids.iter()
            .all(|id| id.starts_with("good-") || id == "press"),
        "{ids:?}"
    );
}

async fn a_flooding_device_is_contained_and_another_elders_press_still_counts(broker: Broker) {
    let app = app(broker).await;
    app.elder_with_device("e-stuck", "btn-stuck", "call_button", json!({}))
        .await;
    app.elder_with_device("e-2", "btn-2", "call_button", json!({}))
        .await;
    let mut stuck = app.device("btn-stuck").await;
    let mut other = app.device("btn-2").await;
    for i in 0..300 {
        stuck
            .event(&format!("flood-{i}"), "call.pressed", json!({}))
            .await;
        if i == 150 {
            other.event("real", "call.pressed", json!({})).await;
        }
    }
    stuck.flushed().await;
    other.flushed().await;
    app.wait_incidents("elder_id=e-2", 1).await;
    let stuck_incidents = app.wait_incidents("elder_id=e-stuck", 1).await;
    // Every message accounted for: stored, or counted as dropped excess
    // (the broker acknowledged them before the dispatcher read them all).
    let (stored, dropped) = wait::until("every message stored or dropped", || async {
        let dropped = app.metric("dispatcher_events_flood_dropped_total").await;
        let stored = app.events("btn-stuck").await;
        (stored.len() as f64 + dropped == 300.0).then_some((stored, dropped))
    })
    .await;
    // The excess was counted; beyond its sample it was not stored.
    let excess = app
        .metric("dispatcher_rejected_messages_total{reason=\"rate_limited\"}")
        .await;
    assert!(excess > 0.0 && dropped > 0.0, "{excess} {dropped}");
    let sampled = stored
        .iter()
        .filter(|e| e["action"] == "rate_limited")
        .count() as f64;
    assert_eq!(sampled, excess - dropped);
    assert!(sampled <= 10.0, "the sample is bounded: {sampled}");
    // And it all joined one incident at most.
    assert!(stuck_incidents[0]["event_count"].as_i64().unwrap() <= 300);
}

/// With room for one event at a time, ingest stops reading until it has
/// committed, and the broker keeps the rest: every event is stored once,
/// every message is acknowledged, heartbeats in between included.
async fn a_full_writer_queue_holds_messages_back_and_loses_none(broker: Broker) {
    let app = TestApp::spawn(Options {
        broker,
        env: vec![
            ("ELDERCARE__INGEST__QUEUE_MAX".into(), "1".into()),
            ("ELDERCARE__INGEST__BATCH_MAX".into(), "2".into()),
            // 40 events in a burst per pad is a flood by the default
            // limit, whose excess is not stored; this test is about the
            // queue, not floods.
            ("ELDERCARE__INGEST__RATE_LIMIT_PER_S".into(), "1000".into()),
        ],
        ..Options::default()
    })
    .await;
    let names = ["pad-1", "pad-2", "pad-3"];
    let mut pads = Vec::new();
    for (i, name) in names.iter().enumerate() {
        app.elder_with_device(&format!("e-{i}"), name, "vitals_pad", json!({}))
            .await;
        pads.push(app.device(name).await);
    }
    for round in 0..40 {
        for pad in &mut pads {
            pad.event(&format!("v-{round}"), "vitals", json!({"heart_rate": 72}))
                .await;
            pad.status(true, Utc::now()).await;
        }
    }
    for pad in &pads {
        pad.flushed().await;
    }
    for name in names {
        wait::until(&format!("40 events of {name} stored"), || async {
            (app.events(name).await.len() == 40).then_some(())
        })
        .await;
    }
    wait::until("every message acknowledged", || async {
        (app.metric("dispatcher_ingest_queue").await == 0.0).then_some(())
    })
    .await;
    assert_eq!(app.metric("dispatcher_events_duplicate_total").await, 0.0);
}

async fn an_unregistered_device_is_kept_for_supervisors(broker: Broker) {
    let app = app(broker).await;
    let mut stranger = app.device("stranger-7").await;
    stranger
        .event("s-1", "call.pressed", json!({"button": "pendant"}))
        .await;
    stranger.flushed().await;
    let unknown = wait::until("the unknown device listed", || async {
        match app.get("/api/v1/unknown-devices").await {
            Value::Array(a) if !a.is_empty() => Some(a),
            _ => None,
        }
    })
    .await;
    assert_eq!(unknown[0]["device_id"], "stranger-7");
    assert!(app.incidents("").await.is_empty());
    assert_eq!(app.events("stranger-7").await.len(), 1);
}

/// Night in Lhasa (UTC+8): 23:30 local.
fn night() -> DateTime<Utc> {
    "2026-11-28T15:30:00Z".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_device_goes_offline_and_clears_when_heard_again() {
    let app = TestApp::spawn(Options {
        clock: Some(night()),
        ..Options::default()
    })
    .await;
    app.elder_with_device("e-1", "bed-1", "bed_sensor", json!({}))
        .await;
    let mut bed = app.device("bed-1").await;
    bed.status(true, app.clock.now()).await;
    bed.flushed().await;
    wait::until("the heartbeat flushed", || async {
        let d = app.get("/api/v1/devices/bed-1").await;
        (d["online"] == true).then_some(())
    })
    .await;

    // Two missed heartbeats: still fine.
    app.clock.advance(Duration::seconds(150));
    app.settle().await;
    assert!(app.incidents("kind=device.offline").await.is_empty());

    // The third: offline.
    app.clock.advance(Duration::seconds(40));
    let open = app
        .wait_incidents("kind=device.offline&status=dispatching", 1)
        .await;
    assert_eq!(open[0]["priority"], "technical");
    assert_eq!(open[0]["device_id"], "bed-1");

    // Heard again: it clears itself.
    bed.status(true, app.clock.now()).await;
    let id = open[0]["id"].as_str().unwrap().to_owned();
    wait::until("the offline incident to clear", || async {
        let d = app.get(&format!("/api/v1/incidents/{id}")).await;
        (d["status"] == "resolved" && d["outcome"] == "cleared").then_some(())
    })
    .await;
}

async fn a_last_will_raises_offline_at_once_and_a_goodbye_does_not(broker: Broker) {
    let app = app(broker).await;
    app.elder_with_device("e-1", "pen-1", "pendant", json!({}))
        .await;
    app.elder_with_device("e-2", "btn-2", "call_button", json!({}))
        .await;
    // A device that disconnects properly (as a test's device does when
    // dropped) leaves no will behind: its broker drops it.
    let mut button = app.device("btn-2").await;
    button.status(true, Utc::now()).await;
    button.flushed().await;
    drop(button);

    let mut pendant = app.device("pen-1").await;
    pendant.status(true, Utc::now()).await;
    pendant.flushed().await;
    pendant.vanish();
    // Wills arrive in the order the connections ended: once the pendant's
    // shows, a will of the button's would have too.
    let open = app.wait_incidents("kind=device.offline", 1).await;
    assert_eq!(open[0]["device_id"], "pen-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fall_risk_elder_out_of_bed_at_night_raises_an_incident_after_the_limit() {
    let app = TestApp::spawn(Options {
        clock: Some(night()),
        ..Options::default()
    })
    .await;
    app.elder_with_device("e-1", "bed-1", "bed_sensor", json!({"bed_return_min": 15}))
        .await;
    let mut bed = app.device("bed-1").await;

    // Out and back within the limit: nothing.
    bed.event("x-1", "bed.exit", json!({})).await;
    bed.flushed().await;
    wait::until("the exit stored", || async {
        (app.events("bed-1").await.len() == 1).then_some(())
    })
    .await;
    app.clock.advance(Duration::minutes(10));
    bed.event("r-1", "bed.return", json!({})).await;
    bed.flushed().await;
    wait::until("the return stored", || async {
        (app.events("bed-1").await.len() == 2).then_some(())
    })
    .await;
    app.clock.advance(Duration::minutes(10));
    app.settle().await;
    assert!(app.incidents("kind=bed.no_return").await.is_empty());

    // Out and not back.
    bed.event("x-2", "bed.exit", json!({})).await;
    bed.flushed().await;
    wait::until("the exit stored", || async {
        (app.events("bed-1").await.len() == 3).then_some(())
    })
    .await;
    app.clock.advance(Duration::minutes(14));
    app.settle().await;
    assert!(app.incidents("kind=bed.no_return").await.is_empty());
    app.clock.advance(Duration::minutes(2));
    // (The silent bed sensor is offline by now too; that is its own incident.)
    let open = app.wait_incidents("kind=bed.no_return", 1).await;
    assert_eq!(open[0]["kind"], "bed.no_return");
    assert_eq!(open[0]["priority"], "urgent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_ingests_like_sqlite() {
    let app = TestApp::spawn(Options {
        broker: Broker::Mosquitto,
        db: Db::Postgres,
        ..Options::default()
    })
    .await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    let mut button = app.device("btn-1").await;
    for i in 0..5 {
        button
            .event(&format!("p-{i}"), "call.pressed", json!({}))
            .await;
    }
    // PostgreSQL refuses NUL in text: such input must be refused or
    // cleaned at the edge, never wedge ingestion for everyone.
    button
        .raw_event(br#"{"event_id":"nul-1","type":"x\u0000","ts":"2026-11-28T21:04:05Z"}"#.to_vec())
        .await;
    button
        .event("nul-2", "call.pressed", json!({"button": "a\u{0}b"}))
        .await;
    button.event("p-0", "call.pressed", json!({})).await;
    button.flushed().await;
    wait::until("six events stored", || async {
        (app.events("btn-1").await.len() == 6).then_some(())
    })
    .await;
    let open = app.wait_incidents("elder_id=e-1", 1).await;
    assert_eq!(open[0]["event_count"], 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steward_cannot_read_an_elder_without_an_incident() {
    let app = app(Broker::Embedded).await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    app.post(
        "/api/v1/stewards",
        json!({"id": "s-1", "name": "格桑", "phone": "13900000101", "grid": "grid-1", "skills": [], "languages": ["bo"]}),
    )
    .await;
    app.post(
        "/api/v1/users",
        json!({"username": "gesang", "password": "steward-pass-1", "role": "steward", "steward_id": "s-1"}),
    )
    .await;
    let token = app.login("gesang", "steward-pass-1").await;
    let (status, body) = app
        .call(Some(&token), Method::GET, "/api/v1/elders/e-1", None)
        .await;
    assert!(
        status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
        "{status} {body}"
    );
    assert!(body["error"]["code"].is_string(), "{body}");
    let (status, _) = app
        .call(Some(&token), Method::GET, "/api/v1/events", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.call(None, Method::GET, "/api/v1/elders", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
