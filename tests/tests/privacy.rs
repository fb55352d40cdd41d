//! Least privilege for stewards, through the real API (issue 13): a
//! steward reads an elder's record only while an offer to them is live or
//! the open incident is theirs, and their view of an incident has no other
//! steward in it. Supervisors and admins still see everything.

use chrono::{DateTime, Utc};
use eldercare_tests::app::{Options, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// 23:30 in Lhasa.
fn t0() -> DateTime<Utc> {
    "2026-11-28T15:30:00Z".parse().unwrap()
}

/// About 100 m and 450 m from the elder's home (see `elder_body`).
const NEAR: (f64, f64) = (29.6607, 91.1377);
const MID: (f64, f64) = (29.6638, 91.1377);

async fn elder_status(app: &TestApp, token: &str) -> StatusCode {
    app.call(Some(token), Method::GET, "/api/v1/elders/e-1", None)
        .await
        .0
}

async fn incident_as(app: &TestApp, token: &str, id: &str) -> Value {
    let (s, body) = app
        .call(
            Some(token),
            Method::GET,
            &format!("/api/v1/incidents/{id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body
}

/// No other steward anywhere in what `me` was given.
fn names_no_other_steward(view: &Value, me: &str, other: &str) {
    let text = view.to_string();
    assert!(
        !text.contains(other) && !text.contains(&format!("Steward {other}")),
        "{me} sees {other}: {view:#}"
    );
    for o in view["offers"].as_array().unwrap() {
        assert_eq!(o["steward_id"], me, "{view:#}");
    }
}

async fn offer_to(app: &TestApp, id: &str, steward: &str) -> Value {
    app.wait_incident(id, &format!("a live offer to {steward}"), |d| {
        d["offers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["steward_id"] == steward && o["response"].is_null())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steward_reads_an_elder_only_while_it_is_theirs_and_sees_no_other_steward() {
    let app = TestApp::spawn(Options {
        clock: Some(t0()),
        ..Options::default()
    })
    .await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    let near = app.steward("s-near", "grid-2", NEAR.0, NEAR.1).await;
    let mid = app.steward("s-mid", "grid-2", MID.0, MID.1).await;
    assert_eq!(elder_status(&app, &near).await, StatusCode::FORBIDDEN);

    let mut button = app.device("btn-1").await;
    button.event("p-1", "call.pressed", json!({})).await;
    let id = app.wait_incidents("elder_id=e-1", 1).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Offered: the nearest may read the elder, the other not yet.
    offer_to(&app, &id, "s-near").await;
    assert_eq!(elder_status(&app, &near).await, StatusCode::OK);
    assert_eq!(elder_status(&app, &mid).await, StatusCode::FORBIDDEN);

    // Declined: no longer. The next steward is offered and may.
    let (s, b) = app
        .call(
            Some(&near),
            Method::POST,
            &format!("/api/v1/incidents/{id}/decline"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    offer_to(&app, &id, "s-mid").await;
    assert_eq!(elder_status(&app, &near).await, StatusCode::FORBIDDEN);
    assert_eq!(elder_status(&app, &mid).await, StatusCode::OK);
    let (_, list) = app
        .call(Some(&near), Method::GET, "/api/v1/elders", None)
        .await;
    assert_eq!(list, json!([]), "a steward's list follows the same rule");

    // Accepted: the incident is theirs.
    let (s, b) = app
        .call(
            Some(&mid),
            Method::POST,
            &format!("/api/v1/incidents/{id}/accept"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(elder_status(&app, &mid).await, StatusCode::OK);

    // Each steward's view of the incident names no other steward…
    let near_view = incident_as(&app, &near, &id).await;
    names_no_other_steward(&near_view, "s-near", "s-mid");
    assert!(near_view["steward_id"].is_null(), "{near_view:#}");
    assert_eq!(near_view["offers"].as_array().unwrap().len(), 1);
    assert_eq!(near_view["offers"][0]["response"], "declined");
    assert!(
        near_view["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["what"].as_str().unwrap().starts_with("opened")),
        "what happened to the elder stays: {near_view:#}"
    );
    let (_, near_list) = app
        .call(Some(&near), Method::GET, "/api/v1/incidents", None)
        .await;
    assert!(near_list[0]["steward_id"].is_null(), "{near_list}");
    let mid_view = incident_as(&app, &mid, &id).await;
    names_no_other_steward(&mid_view, "s-mid", "s-near");
    assert_eq!(mid_view["steward_id"], "s-mid");
    assert_eq!(mid_view["status"], "acknowledged");

    // …while a supervisor's and the admin's show both.
    app.post(
        "/api/v1/users",
        json!({"username": "sup", "password": "supervisor-pass-1", "role": "supervisor"}),
    )
    .await;
    let sup = app.login("sup", "supervisor-pass-1").await;
    for token in [&sup, &app.admin] {
        let full = incident_as(&app, token, &id).await;
        let mut stewards: Vec<&str> = full["offers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["steward_id"].as_str().unwrap())
            .collect();
        stewards.sort_unstable();
        assert_eq!(stewards, ["s-mid", "s-near"], "{full:#}");
        assert_eq!(full["steward_id"], "s-mid");
        let text = full["timeline"].to_string();
        assert!(text.contains("s-near") && text.contains("s-mid"), "{text}");
    }

    // Cancelled: the incident is over, and so is the steward's access.
    let (s, b) = app
        .call(
            Some(&sup),
            Method::POST,
            &format!("/api/v1/incidents/{id}/cancel"),
            Some(json!({"reason": "the family came"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(elder_status(&app, &mid).await, StatusCode::FORBIDDEN);
    // The incident itself stays readable to them, still without others.
    names_no_other_steward(&incident_as(&app, &mid, &id).await, "s-mid", "s-near");
    assert_eq!(elder_status(&app, &sup).await, StatusCode::OK);
}
