//! Notify end to end, on a whole dispatcher: the live stream (a phone
//! that drops its connection misses nothing), signed webhooks that are
//! retried until delivered, and the command that tells a device its call
//! was received.

use dispatcher::dispatch::Lifecycle;
use std::time::Duration;

use axum::http::StatusCode;
use chrono::Utc;
use dispatcher::domain::{DedupKey, ElderId, IncidentId, IncidentKind, StewardId};
use dispatcher::rules::Effect;
use dispatcher::store::dispatch::{Actor, Audience};
use eldercare_tests::app::{Db, Options, TestApp, elder_body};
use eldercare_tests::recorder::Recorder;
use eldercare_tests::sse::Stream;
use eldercare_tests::wait;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

// --- the scene ---

async fn steward(app: &TestApp, id: &str) -> String {
    app.post(
        "/api/v1/stewards",
        json!({"id": id, "name": format!("Steward {id}"), "phone": "13900000000", "grid": "grid-1"}),
    )
    .await;
    let (status, body) = app
        .call(
            Some(&app.admin),
            Method::PUT,
            &format!("/api/v1/stewards/{id}/duty"),
            Some(json!({"on_duty": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let username = format!("user-{id}");
    app.post(
        "/api/v1/users",
        json!({"username": username, "password": "password-1", "role": "steward", "steward_id": id}),
    )
    .await;
    app.login(&username, "password-1").await
}

/// Opens an incident for `elder` through the store, as ingest would.
async fn raise(app: &TestApp, elder: &str, kind: IncidentKind) -> IncidentId {
    let elder_id = ElderId::parse(elder).unwrap();
    let applied = app
        .state
        .store
        .apply(
            &[Effect::Raise {
                key: DedupKey::for_elder(&elder_id, kind).to_string(),
                elder_id: Some(elder_id),
                device_id: None,
                kind,
                priority: app.state.rules.priority(kind, None),
                summary: format!("{kind} for the test"),
            }],
            &dispatcher::domain::Actor::System,
            app.clock.now(),
            &app.state.rules,
        )
        .await
        .expect("raise");
    app.state.hub.nudge();
    applied[0].incident.clone().expect("an incident").id
}

/// What the store holds for supervisors after `after`: what a client
/// that saw `after` missed.
async fn stored_after(app: &TestApp, after: i64) -> Vec<(i64, String)> {
    app.state
        .store
        .stream_after(after, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.audience == Audience::Supervisors)
        .map(|e| (e.seq, e.event.to_string()))
        .collect()
}

#[tokio::test]
async fn a_supervisor_gets_a_snapshot_then_live_events_and_after_a_reconnect_exactly_what_it_missed()
 {
    supervisor_reconnects(Db::Sqlite).await;
}

#[tokio::test]
async fn a_supervisors_stream_replays_exactly_on_postgresql_too() {
    supervisor_reconnects(Db::Postgres).await;
}

async fn supervisor_reconnects(db: Db) {
    let app = TestApp::spawn(Options {
        db,
        env: vec![no_dispatch()],
        ..Options::default()
    })
    .await;
    app.post("/api/v1/elders", elder_body("e-1", json!({})))
        .await;
    app.post("/api/v1/elders", elder_body("e-2", json!({})))
        .await;
    let first = raise(&app, "e-1", IncidentKind::Call).await;

    let mut s = Stream::open(&app, &app.admin, None).await;
    let snap = s.next().await;
    assert_eq!(snap.event, "snapshot");
    let open: Vec<&str> = snap.data["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(open, [first.as_str()]);
    assert!(snap.data["stewards"].is_array());

    // Live: the next change arrives with an id after the snapshot's.
    let second = raise(&app, "e-2", IncidentKind::Fall).await;
    let live = s.until("incident").await;
    assert_eq!(live.data["id"], second.as_str());
    assert!(live.id > snap.id);
    let seen = live.id;
    drop(s);

    // Away: things happen.
    let third = raise(&app, "e-1", IncidentKind::Smoke).await;
    let (status, body) = app
        .call(
            Some(&app.admin),
            Method::POST,
            &format!("/api/v1/incidents/{first}/cancel"),
            Some(json!({"reason": "false alarm, confirmed by phone"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let missed = stored_after(&app, seen).await;
    assert!(missed.len() >= 2, "{missed:?}");

    // Back: a snapshot of now, then exactly the missed events, in order.
    let mut s = Stream::open(&app, &app.admin, Some(seen)).await;
    let snap = s.next().await;
    assert_eq!(snap.event, "snapshot");
    let open: Vec<&str> = snap.data["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert!(open.contains(&third.as_str()) && !open.contains(&first.as_str()));
    let mut got = Vec::new();
    while got.len() < missed.len() {
        let f = s.next().await;
        got.push((f.id, f.event));
    }
    assert_eq!(got, missed);
    // Nothing twice: the next event is the next change.
    let fourth = raise(&app, "e-2", IncidentKind::Smoke).await;
    let f = s.next().await;
    assert_eq!(f.event, "incident");
    assert_eq!(f.data["id"], fourth.as_str());
    assert!(f.id > missed.last().unwrap().0);

    // The same through the query parameters an EventSource can send.
    let last = f.id;
    let resp = app
        .http
        .get(format!(
            "{}/api/v1/stream?access_token={}&last_event_id={}",
            app.base, app.admin, seen
        ))
        .send()
        .await
        .unwrap();
    let mut s = Stream::from_response(resp);
    assert_eq!(s.next().await.event, "snapshot");
    let mut ids = Vec::new();
    while ids.last() != Some(&last) {
        ids.push(s.next().await.id);
    }
    let want: Vec<i64> = stored_after(&app, seen)
        .await
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(ids, want);
}

#[tokio::test]
async fn a_stewards_stream_carries_only_their_own_events() {
    // The real engine offers here: s-1 is near and has a location, s-2 gets
    // one only when the second incident comes.
    let app = TestApp::spawn(Options::default()).await;
    app.post("/api/v1/elders", elder_body("e-1", json!({})))
        .await;
    app.post("/api/v1/elders", elder_body("e-2", json!({})))
        .await;
    let tok1 = steward(&app, "s-1").await;
    let tok2 = steward(&app, "s-2").await;
    locate(&app, "s-1").await;

    let mut one = Stream::open(&app, &tok1, None).await;
    let mut two = Stream::open(&app, &tok2, None).await;
    let snap = one.next().await;
    assert_eq!(snap.event, "snapshot");
    assert_eq!(snap.data["steward"]["id"], "s-1");
    assert_eq!(snap.data["offers"], json!([]));
    assert_eq!(two.next().await.event, "snapshot");

    let i1 = raise(&app, "e-1", IncidentKind::Call).await;
    let f = one.next().await;
    assert_eq!(f.event, "offer");
    assert_eq!(f.data["incident"]["id"], i1.as_str());
    assert_eq!(f.data["elder"]["id"], "e-1");
    assert!(f.data["distance_m"].as_f64().unwrap() > 0.0);

    let _ = app
        .state
        .store
        .accept(
            &i1,
            &StewardId::parse("s-1").unwrap(),
            app.clock.now(),
            &app.state.rules,
        )
        .await
        .unwrap();
    app.state.hub.nudge();
    let f = one.until("incident").await;
    assert_eq!(f.data["id"], i1.as_str());
    assert_eq!(f.data["status"], "acknowledged");

    // Steward 2 heard none of that: the first thing they hear is theirs.
    locate(&app, "s-2").await;
    let i2 = raise(&app, "e-2", IncidentKind::Call).await;
    let f = two.next().await;
    assert_eq!(f.event, "offer");
    assert_eq!(f.data["incident"]["id"], i2.as_str());
    assert!(one.next_within(Duration::from_millis(700)).await.is_none());

    // Reconnecting, each finds their state in the snapshot.
    drop(one);
    let mut one = Stream::open(&app, &tok1, None).await;
    let snap = one.next().await;
    assert_eq!(snap.data["offers"], json!([]));
    assert_eq!(snap.data["incidents"][0]["id"], i1.as_str());
    drop(two);
    let mut two = Stream::open(&app, &tok2, None).await;
    let snap = two.next().await;
    assert_eq!(snap.data["offers"][0]["incident"]["id"], i2.as_str());
    assert_eq!(snap.data["offers"][0]["elder"]["id"], "e-2");
    assert_eq!(snap.data["incidents"], json!([]));

    // Neither may read the supervisors' reports; nobody streams unauthenticated.
    let (status, _) = app
        .call(
            Some(&tok1),
            Method::GET,
            "/api/v1/reports/response-times",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let resp = app
        .http
        .get(format!("{}/api/v1/stream", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

// --- webhooks ---

fn verifies(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex) = header.strip_prefix("sha256=") else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    want == hex
}

fn webhooks_env(targets: &[(&str, &str, &str)]) -> (String, String) {
    let list: Vec<String> = targets
        .iter()
        .map(|(name, url, secret)| {
            format!(
                "{{name = \"{name}\", url = \"{url}\", secret = \"{secret}\", audience = \"supervisors\", max_attempts = 5}}"
            )
        })
        .collect();
    (
        "ELDERCARE__NOTIFY__WEBHOOKS".into(),
        format!("[{}]", list.join(", ")),
    )
}

#[tokio::test]
async fn webhooks_are_signed_and_a_failing_one_is_retried_until_delivered() {
    let (ok_base, ok) = Recorder::start(vec![]).await;
    let ok_url = format!("{ok_base}/hook");
    let (flaky_base, flaky) = Recorder::start(vec![500, 500]).await;
    let flaky_url = format!("{flaky_base}/hook");
    let app = TestApp::spawn(Options {
        clock: Some(Utc::now()),
        env: vec![
            webhooks_env(&[
                ("ops", &ok_url, "ops-secret"),
                ("sms", &flaky_url, "sms-secret"),
            ]),
            no_dispatch(),
        ],
        ..Options::default()
    })
    .await;
    app.post("/api/v1/elders", elder_body("e-1", json!({})))
        .await;
    let incident = raise(&app, "e-1", IncidentKind::Call).await;

    // The healthy receiver gets it at once.
    wait::until("the ops webhook", || async {
        (!ok.got().is_empty()).then_some(())
    })
    .await;
    // The flaky one fails twice; time moves past each backoff.
    wait::until("three attempts at the sms webhook", || async {
        if flaky.got().len() >= 3 {
            return Some(());
        }
        app.clock.advance(chrono::Duration::seconds(3));
        tokio::time::sleep(Duration::from_millis(50)).await;
        None
    })
    .await;

    for (receiver, secret) in [(&ok, "ops-secret"), (&flaky, "sms-secret")] {
        for got in receiver.got() {
            let (headers, body) = (got.headers, got.body);
            assert_eq!(headers["content-type"], "application/json");
            assert_eq!(headers["x-eldercare-event"], "incident.opened");
            let sig = headers["x-eldercare-signature"].to_str().unwrap();
            assert!(
                verifies(secret, &body, sig),
                "signature {sig} does not verify"
            );
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["incident"]["id"], incident.as_str());
        }
    }
    let ids: Vec<_> = flaky
        .got()
        .iter()
        .map(|g| g.headers["x-eldercare-delivery"].clone())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "one delivery, retried"
    );

    // The incident shows how each delivery went.
    let delivery = wait::until("the sms delivery recorded as delivered", || async {
        let detail = app.get(&format!("/api/v1/incidents/{incident}")).await;
        detail["deliveries"]
            .as_array()?
            .iter()
            .find(|d| d["target"] == "sms" && d["state"] == "delivered")
            .cloned()
    })
    .await;
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["channel"], "webhook");
    let detail = app.get(&format!("/api/v1/incidents/{incident}")).await;
    let ops = detail["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["target"] == "ops")
        .cloned()
        .unwrap();
    assert_eq!(
        (&ops["state"], &ops["attempts"]),
        (&json!("delivered"), &json!(1))
    );
}

// --- device commands ---

#[tokio::test]
async fn a_device_hears_that_its_call_was_received() {
    let app = TestApp::spawn(Options::default()).await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    // The device's side: subscribed to its commands topic, on the
    // connection it presses on.
    let mut device = app.device("btn-1").await;
    let mut commands = device.commands().await;
    device
        .event(
            "8d3c0f6e-0a53-4d6e-9d0e-1f1d2c3b4a59",
            "call.pressed",
            json!({"button": "bedside"}),
        )
        .await;
    let command = commands.next().await;
    assert_eq!(command["type"], "incident.update");
    assert_eq!(command["state"], "received");
    let incidents = app.wait_incidents("status=dispatching", 1).await;
    assert_eq!(command["incident_id"], incidents[0]["id"]);
}

// --- reports ---

#[tokio::test]
async fn response_times_are_measured_from_creation_as_json_and_csv() {
    let app = TestApp::spawn(Options {
        clock: Some(Utc::now()),
        ..Options::default()
    })
    .await;
    app.post("/api/v1/elders", elder_body("e-1", json!({})))
        .await;
    let _tok = steward(&app, "s-1").await;
    let from = app.clock.now() - chrono::Duration::minutes(1);
    let incident = raise(&app, "e-1", IncidentKind::Call).await;
    app.clock.advance(chrono::Duration::seconds(40));
    // A supervisor sends s-1 (the engine found nobody: s-1 has no location).
    let s1 = StewardId::parse("s-1").unwrap();
    let store = &app.state.store;
    let _ = store
        .assign(
            &incident,
            &s1,
            &Actor::User("admin".into()),
            app.clock.now(),
            &app.state.rules,
        )
        .await
        .unwrap();
    app.clock.advance(chrono::Duration::seconds(600));
    let _ = store
        .arrive(&incident, &s1, app.clock.now(), &app.state.rules)
        .await
        .unwrap();
    // A second incident, cancelled before anyone came.
    let cancelled = raise(&app, "e-1", IncidentKind::Fall).await;
    let (status, _) = app
        .call(
            Some(&app.admin),
            Method::POST,
            &format!("/api/v1/incidents/{cancelled}/cancel"),
            Some(json!({"reason": "pressed by mistake"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let to = app.clock.now() + chrono::Duration::minutes(1);
    let range = format!(
        "from={}&to={}",
        from.format("%Y-%m-%dT%H:%M:%SZ"),
        to.format("%Y-%m-%dT%H:%M:%SZ")
    );

    let report = app
        .get(&format!(
            "/api/v1/reports/response-times?{range}&group_by=steward"
        ))
        .await;
    let groups = report["groups"].as_array().unwrap();
    let s1_row = groups.iter().find(|g| g["group"] == "s-1").unwrap();
    assert_eq!(s1_row["count"], 1);
    assert_eq!(s1_row["ack_s"]["p50"], 40.0);
    assert_eq!(s1_row["arrive_s"]["max"], 640.0);
    assert_eq!(s1_row["ack_within_target_pct"], 100.0);
    assert_eq!(s1_row["arrive_within_target_pct"], 100.0);
    let unassigned = groups.iter().find(|g| g["group"] == "unassigned").unwrap();
    assert_eq!(unassigned["count"], 1);
    assert!(unassigned["ack_s"]["p50"].is_null());

    let csv = app
        .http
        .get(format!(
            "{}/api/v1/reports/response-times?{range}",
            app.base
        ))
        .bearer_auth(&app.admin)
        .header("Accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("group,count,"), "{text}");
    // Critical (the fall) first, then urgent (the call).
    assert!(lines[1].starts_with("critical,1,0,"), "{text}");
    assert!(lines[2].starts_with("urgent,1,1,40,"), "{text}");
}

/// These tests watch the notification plumbing alone: with dispatch off,
/// no offers or escalations interleave with the events they count.
fn no_dispatch() -> (String, String) {
    ("ELDERCARE__DISPATCH__PRIORITIES".into(), "[]".into())
}

/// Puts a steward about 100 m from the test elders' home.
async fn locate(app: &TestApp, id: &str) {
    let (status, body) = app
        .call(
            Some(&app.admin),
            Method::PUT,
            &format!("/api/v1/stewards/{id}/location"),
            Some(json!({"lat": 29.6607, "lon": 91.1377})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
