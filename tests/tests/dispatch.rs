//! Dispatch scenarios through the real broker and the real HTTP API, with
//! the clock in the test's hand: minutes of offers and escalations run in
//! milliseconds.

use chrono::{DateTime, Duration, Utc};
use eldercare_tests::app::{Options, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// 23:30 in Lhasa.
fn t0() -> DateTime<Utc> {
    "2026-11-28T15:30:00Z".parse().unwrap()
}

async fn app() -> TestApp {
    app_with(vec![]).await
}

async fn app_with(env: Vec<(&str, &str)>) -> TestApp {
    TestApp::spawn(Options {
        clock: Some(t0()),
        env: env
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ..Options::default()
    })
    .await
}

/// The elder lives at 29.6598 N, 91.1377 E (see `elder_body`); these are
/// about 100 m, 450 m and 900 m north of the home.
const NEAR: (f64, f64) = (29.6607, 91.1377);
const MID: (f64, f64) = (29.6638, 91.1377);
const FAR: (f64, f64) = (29.6679, 91.1377);

fn offers(detail: &Value) -> Vec<(String, Option<String>)> {
    detail["offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["steward_id"].as_str().unwrap().to_owned(),
                o["response"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn live_offer_to(detail: &Value, steward: &str) -> bool {
    offers(detail)
        .iter()
        .any(|(s, r)| s == steward && r.is_none())
}

/// A press by elder `e-1` on `btn-1`; returns the incident id.
async fn press(app: &TestApp, kind: &str) -> String {
    let mut button = app.device("btn-1").await;
    button
        .event(&uuid::Uuid::new_v4().to_string(), kind, json!({}))
        .await;
    button.flushed().await;
    let open = app
        .wait_incidents("elder_id=e-1&status=dispatching", 1)
        .await;
    open[0]["id"].as_str().unwrap().to_owned()
}

async fn post_as(
    app: &TestApp,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    app.call(Some(token), Method::POST, path, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nearest_available_steward_is_offered_not_a_busy_or_off_duty_nearer_one() {
    let app = app().await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    app.elder_with_device("e-2", "btn-2", "call_button", json!({}))
        .await;
    // The nearest is busy with another elder; the next is off duty.
    app.steward("s-busy", "grid-2", NEAR.0 - 0.0004, NEAR.1)
        .await;
    let off = app
        .steward("s-off", "grid-2", NEAR.0 - 0.0002, NEAR.1)
        .await;
    let (s, _) = app
        .call(
            Some(&off),
            Method::PUT,
            "/api/v1/stewards/s-off/duty",
            Some(json!({"on_duty": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    app.steward("s-near", "grid-2", NEAR.0, NEAR.1).await;
    app.steward("s-mid", "grid-2", MID.0, MID.1).await;
    app.steward("s-far", "grid-2", FAR.0, FAR.1).await;

    // Make s-busy busy: another elder's incident, assigned by hand.
    let mut other = app.device("btn-2").await;
    other.event("x", "call.pressed", json!({})).await;
    let theirs = app.wait_incidents("elder_id=e-2", 1).await;
    let theirs = theirs[0]["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/incidents/{theirs}/assign"),
        json!({"steward_id": "s-busy"}),
    )
    .await;

    let id = press(&app, "call.pressed").await;
    let detail = app
        .wait_incident(&id, "an offer", |d| {
            !d["offers"].as_array().unwrap().is_empty()
        })
        .await;
    assert_eq!(offers(&detail), [("s-near".to_owned(), None)], "{detail}");
    let reason = |who: &str| {
        detail["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["steward_id"] == who)
            .map(|n| n["reason"].as_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert!(
        reason("s-busy").contains("busy"),
        "{}",
        detail["candidates"]
    );
    assert!(
        reason("s-off").contains("off duty"),
        "{}",
        detail["candidates"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_elders_own_grid_steward_wins_when_the_preference_covers_the_distance() {
    let app = app().await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    app.steward("s-stranger", "grid-9", NEAR.0, NEAR.1).await;
    // ~360 m against ~100 m: 460 m against 130 m of travel, inside the 400 m preference.
    app.steward("s-own", "grid-1", 29.6630, 91.1377).await;
    let id = press(&app, "call.pressed").await;
    let detail = app
        .wait_incident(&id, "an offer", |d| {
            !d["offers"].as_array().unwrap().is_empty()
        })
        .await;
    assert_eq!(offers(&detail)[0].0, "s-own", "{}", detail["candidates"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_offer_times_out_to_the_next_and_two_declines_escalate() {
    let app = app().await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    let near = app.steward("s-near", "grid-2", NEAR.0, NEAR.1).await;
    let mid = app.steward("s-mid", "grid-2", MID.0, MID.1).await;
    app.steward("s-far", "grid-2", FAR.0, FAR.1).await;
    let id = press(&app, "call.pressed").await;
    app.wait_incident(&id, "offer to s-near", |d| live_offer_to(d, "s-near"))
        .await;

    // Nobody answers for 45 s (urgent): the offer expires, s-mid is next.
    app.clock.advance(Duration::seconds(44));
    app.settle().await;
    assert!(
        live_offer_to(&app.incident(&id).await, "s-near"),
        "not before its time"
    );
    app.clock.advance(Duration::seconds(2));
    let d = app
        .wait_incident(&id, "offer to s-mid", |d| live_offer_to(d, "s-mid"))
        .await;
    assert_eq!(
        offers(&d)[0],
        ("s-near".to_owned(), Some("expired".to_owned()))
    );
    assert_eq!(d["escalation_level"], 0);
    // s-near's late accept is refused.
    let (s, body) = post_as(&app, &near, &format!("/api/v1/incidents/{id}/accept"), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "offer_expired");

    // s-mid declines: the second failure escalates, s-far is offered at once.
    let (s, body) = post_as(&app, &mid, &format!("/api/v1/incidents/{id}/decline"), None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let d = app
        .wait_incident(&id, "offer to s-far", |d| live_offer_to(d, "s-far"))
        .await;
    assert_eq!(d["escalation_level"], 1, "{d}");
    let timeline: Vec<&str> = d["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["what"].as_str().unwrap())
        .collect();
    assert!(
        timeline.iter().any(|t| t.contains("escalat")),
        "{timeline:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_press_whose_first_offers_fail_is_stored_and_opened_all_the_same() {
    use sqlx::Connection;
    let app = app().await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    app.steward("s-1", "g-1", NEAR.0, NEAR.1).await;
    // The matcher still ranks s-1, but claiming them inside the press's
    // transaction fails on the damaged row.
    let mut db = sqlx::SqliteConnection::connect(app.db_url()).await.unwrap();
    sqlx::query("UPDATE stewards SET skills = 'not json' WHERE id = 's-1'")
        .execute(&mut db)
        .await
        .unwrap();
    let id = press(&app, "call.pressed").await;
    assert_eq!(app.events("btn-1").await.len(), 1);
    let detail = app.incident(&id).await;
    assert!(offers(&detail).is_empty(), "{detail}");
    assert_eq!(detail["timeline"].as_array().unwrap().len(), 1, "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_available_escalates_at_once() {
    let app = app().await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    let id = press(&app, "call.pressed").await;
    let d = app
        .wait_incident(&id, "an escalation", |d| {
            d["escalation_level"].as_i64() >= Some(1)
        })
        .await;
    assert!(d["offers"].as_array().unwrap().is_empty());
    assert_eq!(d["status"], "dispatching");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_critical_incident_offers_two_and_the_second_accept_gets_409() {
    let app = app().await;
    app.elder_with_device("e-1", "btn-1", "fall_radar", json!({}))
        .await;
    let near = app.steward("s-near", "grid-2", NEAR.0, NEAR.1).await;
    let mid = app.steward("s-mid", "grid-2", MID.0, MID.1).await;
    let id = press(&app, "fall.detected").await;
    app.wait_incident(&id, "two offers", |d| {
        live_offer_to(d, "s-near") && live_offer_to(d, "s-mid")
    })
    .await;
    let (s, body) = post_as(&app, &mid, &format!("/api/v1/incidents/{id}/accept"), None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "acknowledged");
    assert_eq!(body["steward_id"], "s-mid");
    let (s, body) = post_as(&app, &near, &format!("/api/v1/incidents/{id}/accept"), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "already_taken");
    let stewards = app.get("/api/v1/stewards").await;
    let status = |id: &str| {
        stewards
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status("s-mid"), "busy");
    assert_eq!(status("s-near"), "available");

    // Arrive and resolve: the steward is free again, the figures are set.
    let (s, body) = post_as(&app, &mid, &format!("/api/v1/incidents/{id}/arrive"), None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "on_site");
    let (s, body) = post_as(
        &app,
        &mid,
        &format!("/api/v1/incidents/{id}/resolve"),
        Some(json!({"outcome": "hospital", "notes": "120 called, daughter informed"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "resolved");
    assert!(body["acknowledged_at"].is_string() && body["on_site_at"].is_string());
    let me = app.get("/api/v1/stewards/s-mid").await;
    assert_eq!(me["status"], "available");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steward_going_off_duty_has_the_offer_withdrawn_and_re_offered() {
    let app = app().await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    let near = app.steward("s-near", "grid-2", NEAR.0, NEAR.1).await;
    app.steward("s-mid", "grid-2", MID.0, MID.1).await;
    let id = press(&app, "call.pressed").await;
    app.wait_incident(&id, "offer to s-near", |d| live_offer_to(d, "s-near"))
        .await;
    let (s, body) = app
        .call(
            Some(&near),
            Method::PUT,
            "/api/v1/stewards/s-near/duty",
            Some(json!({"on_duty": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "off_duty");
    let d = app
        .wait_incident(&id, "offer to s-mid", |d| live_offer_to(d, "s-mid"))
        .await;
    assert!(
        offers(&d).contains(&("s-near".to_owned(), Some("withdrawn".to_owned()))),
        "{}",
        d["offers"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_elders_device_hears_that_help_is_coming() {
    let app = app().await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    let near = app.steward("s-near", "grid-2", NEAR.0, NEAR.1).await;
    // The button hears commands on the connection it presses on.
    let mut button = app.device("btn-1").await;
    let mut commands = button.commands().await;
    button
        .event(&uuid::Uuid::new_v4().to_string(), "call.pressed", json!({}))
        .await;
    button.flushed().await;
    let open = app
        .wait_incidents("elder_id=e-1&status=dispatching", 1)
        .await;
    let id = open[0]["id"].as_str().unwrap().to_owned();
    let received = commands.next().await;
    assert_eq!(received["type"], "incident.update");
    assert_eq!(received["incident_id"], id.as_str());
    assert_eq!(received["state"], "received");
    app.wait_incident(&id, "offer to s-near", |d| live_offer_to(d, "s-near"))
        .await;
    let (s, _) = post_as(&app, &near, &format!("/api/v1/incidents/{id}/accept"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(commands.next().await["state"], "acknowledged");
    post_as(&app, &near, &format!("/api/v1/incidents/{id}/arrive"), None).await;
    assert_eq!(commands.next().await["state"], "on_site");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisors_see_stewards_move_and_change_duty_live() {
    let app = app().await;
    let token = app.steward("s-1", "grid-1", NEAR.0, NEAR.1).await;
    let mut board = eldercare_tests::sse::Stream::open(&app, &app.admin, None).await;
    assert_eq!(board.next().await.event, "snapshot");
    let (s, _) = app
        .call(
            Some(&token),
            Method::PUT,
            "/api/v1/stewards/s-1/location",
            Some(json!({"lat": MID.0, "lon": MID.1})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let moved = board.until("steward").await;
    assert_eq!(moved.data["id"], "s-1");
    assert_eq!(moved.data["lat"], MID.0);
    let (s, _) = app
        .call(
            Some(&token),
            Method::PUT,
            "/api/v1/stewards/s-1/duty",
            Some(json!({"on_duty": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let off = board.until("steward").await;
    assert_eq!(off.data["status"], "off_duty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_incident_is_offered_as_soon_as_a_steward_comes_on_duty() {
    let app = app().await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    // Nobody on duty: nobody can be offered, and the next try is 30 s off.
    let id = press(&app, "call.pressed").await;
    waits_for_someone(&app, &id).await;
    // A steward comes on duty: offered now, with no time passing.
    app.steward("s-near", "grid-2", NEAR.0, NEAR.1).await;
    app.wait_incident(&id, "offer to s-near at once", |d| {
        live_offer_to(d, "s-near")
    })
    .await;
}

/// An instance's matcher can lag the store: a change made on another
/// instance not yet heard, a notice lost. A turn that finds nobody asks the
/// store before it escalates "nobody available": the steward the store
/// has is offered, and nothing escalates.
#[tokio::test]
async fn a_turn_that_finds_nobody_asks_the_store_before_escalating() {
    let app = app().await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    app.steward("s-near", "grid-2", NEAR.0, NEAR.1).await;
    // This instance's matcher believes s-near went off duty; the store,
    // which decides, still has them available.
    let id = dispatcher::domain::StewardId::parse("s-near").unwrap();
    let mut stale = app.state.store.steward(&id).await.unwrap().unwrap();
    stale.on_duty = false;
    app.state.engine.matcher().upsert(&stale);

    let incident = press(&app, "call.pressed").await;
    app.wait_incident(&incident, "offer to s-near", |d| live_offer_to(d, "s-near"))
        .await;
    let detail = app.incident(&incident).await;
    assert_eq!(detail["escalation_level"], 0, "{detail:#}");
    let timeline = detail["timeline"].to_string();
    assert!(!timeline.contains("nobody available"), "{timeline}");
}

/// How many times the incident's turn found nobody to offer.
fn nobody_turns(detail: &Value) -> usize {
    detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            t["what"]
                .as_str()
                .unwrap_or("")
                .starts_with("nobody could be offered")
        })
        .count()
}

/// Waits until the incident's turn found nobody, and so waits for its retry.
async fn waits_for_someone(app: &TestApp, id: &str) -> Value {
    app.wait_incident(id, "nobody to offer", |d| nobody_turns(d) > 0)
        .await
}

/// About 30 km north of the elder's home: beyond reach until the
/// incident has escalated five times.
const FAR_AWAY: (f64, f64) = (29.9298, 91.1377);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steward_moving_into_range_is_offered_a_waiting_incident_at_once() {
    let app = app().await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    let token = app.steward("s-1", "grid-2", FAR_AWAY.0, FAR_AWAY.1).await;
    let id = press(&app, "call.pressed").await;
    waits_for_someone(&app, &id).await;
    // They drive towards the elder: offered as their location comes in,
    // with no time passing, not at the retry.
    let (s, b) = app
        .call(
            Some(&token),
            Method::PUT,
            "/api/v1/stewards/s-1/location",
            Some(json!({"lat": NEAR.0, "lon": NEAR.1})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    app.wait_incident(&id, "offer to s-1 at once", |d| live_offer_to(d, "s-1"))
        .await;
}

/// A steward who comes free brings forward only the waiting incidents they
/// could be offered: one out of their reach keeps its retry, and does not
/// escalate "nobody available" early.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steward_coming_free_out_of_reach_leaves_a_waiting_incident_to_its_retry() {
    let app = app().await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    let mut far_home = eldercare_tests::app::elder_body("e-2", json!({}));
    far_home["lat"] = json!(FAR_AWAY.0);
    app.post("/api/v1/elders", far_home).await;
    app.register_device(
        json!({"id": "btn-2", "elder_id": "e-2", "kind": "call_button", "heartbeat_s": 60}),
    )
    .await;
    let near = press(&app, "call.pressed").await;
    let before = waits_for_someone(&app, &near).await;
    let mut button = app.device("btn-2").await;
    button
        .event(&uuid::Uuid::new_v4().to_string(), "call.pressed", json!({}))
        .await;
    button.flushed().await;
    let far = app
        .wait_incidents("elder_id=e-2&status=dispatching", 1)
        .await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    waits_for_someone(&app, &far).await;

    // A steward comes on duty by the second elder: that incident is
    // offered at once; the first, 30 km away, is looked at in the same
    // pass and left alone.
    app.steward("s-1", "grid-2", FAR_AWAY.0, FAR_AWAY.1).await;
    app.wait_incident(&far, "offer to s-1", |d| live_offer_to(d, "s-1"))
        .await;
    app.clock.advance(Duration::seconds(1));
    app.settle().await;
    let after = app.incident(&near).await;
    assert_eq!(nobody_turns(&after), nobody_turns(&before), "{after:#}");
    assert_eq!(
        after["escalation_level"], before["escalation_level"],
        "{after:#}"
    );
}

/// A press, the nearest steward accepts, arrives and resolves; the
/// follow-up call is theirs, due in 24 h. A day later, with every worker
/// having looked at the new time, the board's overdue list shows it; the
/// steward completes it from the phone and it is gone from the list.
async fn follow_up_after_a_real_press(db: eldercare_tests::app::Db) {
    let app = TestApp::spawn(Options {
        clock: Some(t0()),
        db,
        ..Options::default()
    })
    .await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    let near = app.steward("s-near", "grid-2", NEAR.0, NEAR.1).await;
    let id = press(&app, "call.pressed").await;
    app.wait_incident(&id, "an offer to s-near", |d| live_offer_to(d, "s-near"))
        .await;
    for step in ["accept", "arrive"] {
        let (s, body) = post_as(&app, &near, &format!("/api/v1/incidents/{id}/{step}"), None).await;
        assert_eq!(s, StatusCode::OK, "{step}: {body}");
    }
    let (s, body) = post_as(
        &app,
        &near,
        &format!("/api/v1/incidents/{id}/resolve"),
        Some(json!({"outcome": "assisted", "notes": "helped back to bed"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");

    let list = app.get("/api/v1/follow-ups").await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let f = &list[0];
    assert_eq!(f["incident_id"], id.as_str());
    assert_eq!(f["steward_id"], "s-near");
    assert_eq!(f["kind"], "call");
    assert_eq!(f["due_at"], "2026-11-29T15:30:00Z");
    let fid = f["id"].as_str().unwrap().to_owned();

    // Not overdue a second before it is due; overdue a second after.
    app.clock
        .advance(Duration::hours(24) - Duration::seconds(1));
    app.settle().await;
    let admin = app
        .login("admin", eldercare_tests::app::ADMIN_PASSWORD)
        .await;
    let overdue = |token: String| {
        let app = &app;
        async move {
            let (s, body) = app
                .call(
                    Some(&token),
                    Method::GET,
                    "/api/v1/follow-ups?overdue=true",
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{body}");
            body.as_array().unwrap().clone()
        }
    };
    assert_eq!(overdue(admin.clone()).await, Vec::<Value>::new());
    app.clock.advance(Duration::seconds(2));
    app.settle().await;
    let late = overdue(admin.clone()).await;
    assert_eq!(late.len(), 1);
    assert_eq!(late[0]["id"], fid.as_str());
    assert_eq!(late[0]["overdue"], true);

    // The steward (logged in again: a session lasts 12 h) calls and
    // records it.
    let near = app.login("s-near", "s-near-password").await;
    let (s, body) = post_as(
        &app,
        &near,
        &format!("/api/v1/follow-ups/{fid}/complete"),
        Some(json!({"outcome": "well", "note": "sleeping well"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["done"]["done_at"], "2026-11-29T15:30:01Z");
    assert_eq!(overdue(admin).await, Vec::<Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_up_after_a_real_press_on_sqlite() {
    follow_up_after_a_real_press(eldercare_tests::app::Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_up_after_a_real_press_on_postgres() {
    follow_up_after_a_real_press(eldercare_tests::app::Db::Postgres).await;
}
