//! Long lists are paged (issue 13): every list that grows without bound
//! takes `limit` (with a maximum) and `offset`, and names a bad value.

use eldercare_tests::app::{Broker, Options, TestApp, elder_body};
use eldercare_tests::wait;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Walks `path` two at a time and returns the `key` of every row, in order.
async fn walk(app: &TestApp, path: &str, key: &str) -> Vec<String> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut seen = Vec::new();
    loop {
        let page = app
            .get(&format!("{path}{sep}limit=2&offset={}", seen.len()))
            .await;
        let rows = page.as_array().expect("a list").clone();
        assert!(rows.len() <= 2, "{path}: {page}");
        seen.extend(rows.iter().map(|r| r[key].as_str().unwrap().to_owned()));
        if rows.len() < 2 {
            return seen;
        }
    }
}

async fn status(app: &TestApp, path: &str) -> (StatusCode, Value) {
    app.call(Some(&app.admin), Method::GET, path, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_growing_list_pages_and_names_a_bad_page() {
    // Unknown devices reach only a broker that lets them in (the
    // embedded one refuses any device not registered).
    let app = TestApp::spawn(Options {
        broker: Broker::Mosquitto,
        ..Options::default()
    })
    .await;
    for i in 1..=5 {
        app.post("/api/v1/elders", elder_body(&format!("e-{i}"), json!({})))
            .await;
        app.post(
            "/api/v1/devices",
            json!({"id": format!("btn-{i}"), "elder_id": format!("e-{i}"), "kind": "call_button", "heartbeat_s": 60}),
        )
        .await;
        app.post(
            "/api/v1/stewards",
            json!({"id": format!("s-{i}"), "name": format!("Steward {i}"), "phone": "13900000101",
                   "grid": "grid-1", "skills": [], "languages": []}),
        )
        .await;
    }
    // Five homes nobody registered, and five presses of one elder.
    for i in 1..=5 {
        let mut d = app.device(&format!("stranger-{i}")).await;
        d.event("s", "bed.exit", json!({})).await;
        d.flushed().await;
    }
    let mut button = app.device("btn-1").await;
    for i in 1..=5 {
        button
            .event(&format!("p-{i}"), "call.cancelled", json!({}))
            .await;
    }
    button.flushed().await;
    wait::until("the unknown devices listed", || async {
        (app.get("/api/v1/unknown-devices").await.as_array()?.len() == 5).then_some(())
    })
    .await;
    wait::until("the presses stored", || async {
        (app.events("btn-1").await.len() == 5).then_some(())
    })
    .await;

    let ids = |prefix: &str| -> Vec<String> { (1..=5).map(|i| format!("{prefix}-{i}")).collect() };
    assert_eq!(walk(&app, "/api/v1/elders", "id").await, ids("e"));
    assert_eq!(walk(&app, "/api/v1/devices", "id").await, ids("btn"));
    assert_eq!(walk(&app, "/api/v1/stewards", "id").await, ids("s"));
    let mut unknown = walk(&app, "/api/v1/unknown-devices", "device_id").await;
    unknown.sort();
    assert_eq!(unknown, ids("stranger"));
    let events = walk(&app, "/api/v1/events?device_id=btn-1", "event_id").await;
    assert_eq!(events.len(), 5, "each event once: {events:?}");
    let users = walk(&app, "/api/v1/users", "username").await;
    assert_eq!(users, ["admin"]);

    // Unpaged, the registry lists still come whole (up to the maximum).
    assert_eq!(app.get("/api/v1/elders").await.as_array().unwrap().len(), 5);
    // A limit over the maximum is lowered to it; a bad one is named.
    let (s, _) = status(&app, "/api/v1/unknown-devices?limit=100000").await;
    assert_eq!(s, StatusCode::OK);
    for bad in [
        "/api/v1/unknown-devices?limit=0",
        "/api/v1/unknown-devices?offset=-1",
        "/api/v1/elders?offset=lots",
        "/api/v1/devices?limit=-2",
        "/api/v1/stewards?offset=99999999999",
        "/api/v1/users?limit=x",
        "/api/v1/events?offset=-5",
        "/api/v1/incidents?offset=z",
    ] {
        let (s, body) = status(&app, bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("limit") || message.contains("offset"),
            "{bad}: {body}"
        );
    }
}
