//! The stewards' daily work under the store's clock: daily check-ins,
//! visits planned, walked, noted and gone overdue, the notebook. Real
//! broker, real HTTP, real database; days pass in milliseconds.

use chrono::{DateTime, Duration, Utc};
use eldercare_tests::app::{Db, Options, TestApp, elder_body};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Monday 2026-12-07, 08:00 in Lhasa (UTC+8).
fn monday_8am() -> DateTime<Utc> {
    "2026-12-07T00:00:00Z".parse().unwrap()
}

/// `hh:mm` in Lhasa on Monday plus `day` days.
fn lhasa(day: i64, hh: u32, mm: u32) -> DateTime<Utc> {
    monday_8am()
        + Duration::days(day)
        + Duration::hours(i64::from(hh) - 8)
        + Duration::minutes(i64::from(mm))
}

async fn app_on(db: Db) -> TestApp {
    TestApp::spawn(Options {
        clock: Some(monday_8am()),
        db,
        env: vec![
            ("ELDERCARE__CARE__PLAN_VISITS".into(), "true".into()),
            // Days pass: logins and the stewards' last locations last.
            ("ELDERCARE__AUTH__SESSION_HOURS".into(), "720".into()),
            (
                "ELDERCARE__DISPATCH__LOCATION_MAX_AGE_S".into(),
                "2592000".into(),
            ),
        ],
        ..Options::default()
    })
    .await
}

/// The home in `elder_body`, and a spot about 40 m from it.
const HOME: (f64, f64) = (29.6598, 91.1377);
const AT_THE_DOOR: (f64, f64) = (29.6601, 91.1378);
/// About 1.1 km north.
const ACROSS_TOWN: (f64, f64) = (29.6698, 91.1377);

async fn elder(app: &TestApp, id: &str, device: &str, care: Value, lives_alone: bool) {
    let mut body = elder_body(id, json!({}));
    body["care"] = care;
    body["lives_alone"] = json!(lives_alone);
    app.post("/api/v1/elders", body).await;
    app.register_device(
        json!({"id": device, "elder_id": id, "kind": "call_button", "heartbeat_s": 60}),
    )
    .await;
}

/// Moves the clock and waits until every worker (the planner included)
/// has looked at the new time twice: the planner's deadline is then
/// fired by the timers' next pass.
async fn at(app: &TestApp, to: DateTime<Utc>) {
    app.clock.set(to);
    app.settle().await;
    app.settle().await;
}

async fn as_user(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    app.call(Some(token), method, path, body).await
}

fn ids(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|i| i["elder_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_check_in_opens_one_welfare_check_that_is_dispatched_and_a_check_in_prevents_it() {
    let app = app_on(Db::Sqlite).await;
    let checkin = json!({"checkin": {"by": "10:00"}, "visit_every_days": 0});
    elder(&app, "e-1", "btn-1", checkin.clone(), true).await;
    elder(&app, "e-2", "btn-2", checkin, true).await;
    app.steward("s-1", "grid-1", AT_THE_DOOR.0, AT_THE_DOOR.1)
        .await;
    at(&app, lhasa(0, 8, 30)).await;

    // e-1 presses "I am well" at 08:30; e-2 does nothing.
    let mut btn = app.device("btn-1").await;
    btn.event("ok-mon", "checkin.pressed", json!({})).await;
    btn.flushed().await;
    at(&app, lhasa(0, 9, 59)).await;
    assert!(
        app.incidents("kind=checkin.missed").await.is_empty(),
        "nothing before 10:00"
    );

    at(&app, lhasa(0, 10, 1)).await;
    let missed = app.incidents("kind=checkin.missed").await;
    assert_eq!(ids(&missed), ["e-2"], "{missed:?}");
    assert_eq!(missed[0]["priority"], "urgent");
    // Dispatched like any other: the steward is offered it.
    let id = missed[0]["id"].as_str().unwrap().to_owned();
    let detail = app
        .wait_incident(&id, "an offer to s-1", |d| {
            d["offers"]
                .as_array()
                .is_some_and(|o| o.iter().any(|o| o["steward_id"] == "s-1"))
        })
        .await;
    assert_eq!(detail["status"], "dispatching");

    // Later passes raise nothing more.
    at(&app, lhasa(0, 10, 30)).await;
    assert_eq!(app.incidents("kind=checkin.missed").await.len(), 1);

    // e-2 checks in late: the welfare check nobody has reached closes.
    let mut late = app.device("btn-2").await;
    late.event("ok-late", "checkin.pressed", json!({})).await;
    late.flushed().await;
    let closed = app
        .wait_incident(&id, "cancelled by the late check-in", |d| {
            d["status"] == "cancelled"
        })
        .await;
    assert_eq!(closed["status"], "cancelled");

    // Tuesday: e-2's morning bed exit counts as the day's sign of life;
    // e-1 shows none and is missed, once.
    at(&app, lhasa(1, 7, 0)).await;
    late.event("bed-tue", "bed.exit", json!({})).await;
    late.flushed().await;
    at(&app, lhasa(1, 10, 1)).await;
    let tuesday: Vec<Value> = app
        .incidents("kind=checkin.missed&status=dispatching")
        .await;
    assert_eq!(ids(&tuesday), ["e-1"], "{tuesday:?}");

    // Resolved after the welfare check: a follow-up call, in the notebook.
    let welfare = tuesday[0]["id"].as_str().unwrap();
    app.post(
        &format!("/api/v1/incidents/{welfare}/resolve"),
        json!({"outcome": "assisted", "notes": "asleep, phone off"}),
    )
    .await;
    let book = app.get("/api/v1/elders/e-1/notebook").await;
    let follow_ups: Vec<&Value> = book["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["entry"] == "follow_up")
        .collect();
    assert_eq!(follow_ups.len(), 1, "{book}");
    assert_eq!(follow_ups[0]["follow_up"]["kind"], "call");
    assert_eq!(follow_ups[0]["follow_up"]["incident_id"], welfare);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_in_plan_that_changes_or_ends_moves_or_drops_its_deadline() {
    let app = app_on(Db::Sqlite).await;
    elder(
        &app,
        "e-1",
        "btn-1",
        json!({"checkin": {"by": "10:00"}, "visit_every_days": 0}),
        true,
    )
    .await;
    app.steward("s-1", "grid-1", AT_THE_DOOR.0, AT_THE_DOOR.1)
        .await;
    at(&app, lhasa(0, 8, 0)).await;
    // Later: 11:00. At 10:30 nothing is missed yet.
    let (s, b) = app
        .call(
            Some(&app.admin),
            Method::PATCH,
            "/api/v1/elders/e-1",
            Some(json!({"care": {"checkin": {"by": "11:00"}}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // (The planner moves the deadline within a pass of the change.)
    at(&app, lhasa(0, 8, 1)).await;
    at(&app, lhasa(0, 10, 30)).await;
    assert!(app.incidents("kind=checkin.missed").await.is_empty());
    at(&app, lhasa(0, 11, 1)).await;
    assert_eq!(app.incidents("kind=checkin.missed").await.len(), 1);

    // Off check-in: Tuesday passes without a welfare check.
    let (s, b) = app
        .call(
            Some(&app.admin),
            Method::PATCH,
            "/api/v1/elders/e-1",
            Some(json!({"care": {"checkin": null}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    at(&app, lhasa(1, 8, 0)).await;
    at(&app, lhasa(1, 12, 0)).await;
    assert_eq!(app.incidents("kind=checkin.missed").await.len(), 1);

    // A plan that cannot be kept is refused and changes nothing.
    for (care, field) in [
        (json!({"checkin": {"by": "7am"}}), "care"),
        (
            json!({"checkin": {"from": "11:00", "by": "10:00"}}),
            "care.checkin",
        ),
        (json!({"visit_every_days": 400}), "care.visit_every_days"),
        (json!({"nonsense": true}), "care"),
    ] {
        let (s, b) = app
            .call(
                Some(&app.admin),
                Method::PATCH,
                "/api/v1/elders/e-1",
                Some(json!({"care": care})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{care}: {b}");
        assert!(
            b["error"]["message"].as_str().unwrap().contains(field),
            "{b}"
        );
    }
    let e = app.get("/api/v1/elders/e-1").await;
    assert_eq!(
        e["care"],
        json!({"visit_every_days": 0, "on_watch": false}),
        "{e}"
    );
    app.stop().await.unwrap();
}

async fn overdue_visit_and_the_round(db: Db) {
    let app = app_on(db).await;
    elder(&app, "e-1", "btn-1", json!({"visit_every_days": 1}), true).await;
    let s1 = app
        .steward("s-1", "grid-1", AT_THE_DOOR.0, AT_THE_DOOR.1)
        .await;
    let s2 = app
        .steward("s-2", "grid-2", ACROSS_TOWN.0, ACROSS_TOWN.1)
        .await;
    at(&app, lhasa(0, 8, 0)).await;

    // Today's round: the one visit, due today, not yet overdue.
    let (s, round) = as_user(&app, &s1, Method::GET, "/api/v1/rounds/today", None).await;
    assert_eq!(s, StatusCode::OK, "{round}");
    let stops = round["stops"].as_array().unwrap();
    assert_eq!(stops.len(), 1, "{round}");
    assert_eq!(stops[0]["visit"]["due_on"], "2026-12-07");
    assert_eq!(stops[0]["overdue"], false);
    assert_eq!(
        stops[0]["elder"]["medications"],
        json!(["nifedipine SR 20 mg twice daily"])
    );
    let visit = stops[0]["visit"]["id"].as_str().unwrap().to_owned();
    // Another grid's steward sees none of it.
    let (s, _) = as_user(&app, &s2, Method::GET, "/api/v1/rounds/today", None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = as_user(
        &app,
        &s2,
        Method::POST,
        &format!("/api/v1/visits/{visit}/start"),
        Some(json!({"lat": HOME.0, "lon": HOME.1})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");

    // 17:01: the window passed unvisited. One routine incident, offered.
    at(&app, lhasa(0, 17, 1)).await;
    let overdue = app.incidents("kind=visit.overdue").await;
    assert_eq!(ids(&overdue), ["e-1"], "{overdue:?}");
    assert_eq!(overdue[0]["priority"], "routine");
    let incident = overdue[0]["id"].as_str().unwrap().to_owned();
    app.wait_incident(&incident, "an offer", |d| {
        !d["offers"].as_array().unwrap().is_empty()
    })
    .await;
    at(&app, lhasa(0, 18, 0)).await;
    assert_eq!(
        app.incidents("kind=visit.overdue").await.len(),
        1,
        "raised once"
    );

    // Checking in from across town is refused and changes nothing.
    let (s, b) = as_user(
        &app,
        &s1,
        Method::POST,
        &format!("/api/v1/visits/{visit}/start"),
        Some(json!({"lat": ACROSS_TOWN.0, "lon": ACROSS_TOWN.1, "accuracy_m": 20})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("from"),
        "{b}"
    );
    let v = app.get(&format!("/api/v1/visits/{visit}")).await;
    assert_eq!(v["status"], "planned");

    // At the door: the visit begins and the overdue incident clears.
    let (s, v) = as_user(
        &app,
        &s1,
        Method::POST,
        &format!("/api/v1/visits/{visit}/start"),
        Some(json!({"lat": AT_THE_DOOR.0, "lon": AT_THE_DOOR.1, "accuracy_m": 10})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "in_progress");
    assert_eq!(v["started_how"], "location");
    let cleared = app
        .wait_incident(&incident, "cleared by the visit", |d| {
            d["status"] == "resolved"
        })
        .await;
    assert_eq!(cleared["outcome"], "cleared");
    let (s, b) = as_user(
        &app,
        &s1,
        Method::POST,
        &format!("/api/v1/visits/{visit}/start"),
        Some(json!({"lat": HOME.0, "lon": HOME.1})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("visit_not_planned"))
    );

    // A bad note changes nothing.
    for bad in [
        json!({"wellbeing": "splendid"}),
        json!({"wellbeing": "well", "medication_changes": {"add": [""]}}),
        json!({"text": "no wellbeing"}),
    ] {
        let (s, b) = as_user(
            &app,
            &s1,
            Method::POST,
            &format!("/api/v1/visits/{visit}/finish"),
            Some(bad.clone()),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {b}");
    }
    // The note: a medicine changed, a need, a follow-up wanted.
    let note = json!({
        "wellbeing": "fair",
        "medication_changes": {"add": ["aspirin 100 mg daily"], "remove": ["NIFEDIPINE SR 20 mg twice daily"]},
        "condition_changes": {"add": ["cataract"]},
        "needs": ["meals"],
        "follow_up": true,
        "text": "knee pain; asked for meal delivery",
    });
    let (s, done) = as_user(
        &app,
        &s1,
        Method::POST,
        &format!("/api/v1/visits/{visit}/finish"),
        Some(note),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "done");
    assert_eq!(done["done_by"], "s-1");
    let e = app.get("/api/v1/elders/e-1").await;
    assert_eq!(e["medications"], json!(["aspirin 100 mg daily"]));
    assert_eq!(e["conditions"], json!(["hypertension", "cataract"]));
    // The follow-up wanted: one call for the steward who visited, due
    // within the site's call time, that follows the visit, not an incident.
    let done_at: DateTime<Utc> = done["ended_at"].as_str().unwrap().parse().unwrap();
    let (s, mine) = as_user(&app, &s1, Method::GET, "/api/v1/follow-ups", None).await;
    assert_eq!(s, StatusCode::OK, "{mine}");
    let mine = mine.as_array().unwrap();
    assert_eq!(mine.len(), 1, "{mine:?}");
    let call = &mine[0];
    assert_eq!(call["kind"], "call");
    assert_eq!(call["visit_id"], visit.as_str());
    assert_eq!(call["incident_id"], Value::Null);
    assert_eq!(call["steward_id"], "s-1");
    let due: DateTime<Utc> = call["due_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(due - done_at, Duration::hours(24));
    // Nobody answers: the visit that follows follows the same visit.
    let (s, completed) = as_user(
        &app,
        &s1,
        Method::POST,
        &format!(
            "/api/v1/follow-ups/{}/complete",
            call["id"].as_str().unwrap()
        ),
        Some(json!({"outcome": "unreachable", "note": "no answer twice"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{completed}");
    assert_eq!(completed["next"]["kind"], "visit");
    assert_eq!(completed["next"]["visit_id"], visit.as_str());
    assert_eq!(completed["next"]["incident_id"], Value::Null);
    assert_eq!(completed["next"]["follows_id"], call["id"]);
    let (s, b) = as_user(
        &app,
        &s1,
        Method::POST,
        &format!("/api/v1/visits/{visit}/finish"),
        Some(json!({"wellbeing": "well"})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("visit_not_in_progress"))
    );

    // The notebook: the visit with its note, both changes with who, the
    // incident; newest first.
    let (s, book) = as_user(&app, &s1, Method::GET, "/api/v1/elders/e-1/notebook", None).await;
    assert_eq!(s, StatusCode::OK, "{book}");
    let entries = book["entries"].as_array().unwrap();
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["entry"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"visit") && kinds.contains(&"incident"),
        "{kinds:?}"
    );
    let changes: Vec<&Value> = entries.iter().filter(|e| e["entry"] == "change").collect();
    assert_eq!(changes.len(), 2, "{entries:?}");
    let follow_ups: Vec<&Value> = entries
        .iter()
        .filter(|e| e["entry"] == "follow_up")
        .collect();
    assert_eq!(
        follow_ups.len(),
        2,
        "the call and the visit after it: {entries:?}"
    );
    assert!(
        follow_ups
            .iter()
            .all(|f| f["follow_up"]["visit_id"] == visit.as_str())
    );
    assert!(
        changes
            .iter()
            .all(|c| c["change"]["actor"] == "s-1" && c["change"]["visit_id"] == visit.as_str())
    );
    // (Tomorrow's planned visit may already be listed above it.)
    let noted = entries
        .iter()
        .find(|e| e["entry"] == "visit" && e["visit"]["status"] == "done")
        .unwrap();
    assert_eq!(noted["visit"]["note"]["needs"], json!(["meals"]));
    assert_eq!(book["devices"][0]["id"], "btn-1");
    let (s, _) = as_user(&app, &s2, Method::GET, "/api/v1/elders/e-1/notebook", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Tomorrow's visit is planned (daily), and the board counts the day.
    at(&app, lhasa(1, 8, 0)).await;
    let (_, round) = as_user(&app, &s1, Method::GET, "/api/v1/rounds/today", None).await;
    assert_eq!(
        round["stops"][0]["visit"]["due_on"], "2026-12-08",
        "{round}"
    );
    assert_eq!(round["stops"][0]["last_note"]["wellbeing"], "fair");
    let monday = app.get("/api/v1/visits/summary?date=2026-12-07").await;
    assert_eq!(
        monday["grids"],
        json!([{"grid": "grid-1", "due": 1, "in_progress": 0, "done": 1, "overdue": 0}])
    );
    let (s, _) = as_user(&app, &s1, Method::GET, "/api/v1/visits/summary", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "supervisors only");
    let (s, _) = as_user(&app, &s1, Method::GET, "/api/v1/visits/v-nothing", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overdue_visit_raises_one_routine_incident_and_the_visit_at_the_door_clears_it() {
    overdue_visit_and_the_round(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overdue_visit_raises_one_routine_incident_on_postgres_too() {
    overdue_visit_and_the_round(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bed_button_pressed_twice_begins_the_visit() {
    let app = app_on(Db::Sqlite).await;
    elder(&app, "e-1", "btn-1", json!({"visit_every_days": 1}), true).await;
    let s1 = app
        .steward("s-1", "grid-1", AT_THE_DOOR.0, AT_THE_DOOR.1)
        .await;
    at(&app, lhasa(0, 10, 0)).await;
    let (_, round) = as_user(&app, &s1, Method::GET, "/api/v1/rounds/today", None).await;
    let visit = round["stops"][0]["visit"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut btn = app.device("btn-1").await;
    btn.event("here-1", "steward.here", json!({})).await;
    btn.flushed().await;
    let v = app.get(&format!("/api/v1/visits/{visit}")).await;
    assert_eq!(
        (v["status"].clone(), v["started_how"].clone()),
        (json!("in_progress"), json!("button")),
        "{v}"
    );
    // It opened no incident (the silent button's own offline one aside).
    let opened = app.incidents("elder_id=e-1").await;
    assert!(
        opened.iter().all(|i| i["kind"] == "device.offline"),
        "{opened:?}"
    );
    app.stop().await.unwrap();
}

/// A week of the demo's kinds of plan, walked every day by the grid's
/// steward: each elder is on exactly the rounds their cadence promises.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_week_of_visit_plans_makes_the_rounds_their_cadences_promise() {
    let app = app_on(Db::Sqlite).await;
    elder(&app, "e-watch", "d-1", json!({"on_watch": true}), false).await;
    elder(
        &app,
        "e-every2",
        "d-2",
        json!({"visit_every_days": 2}),
        false,
    )
    .await;
    elder(&app, "e-alone", "d-3", json!({}), true).await;
    elder(&app, "e-other", "d-4", json!({}), false).await;
    elder(&app, "e-none", "d-5", json!({"visit_every_days": 0}), true).await;
    let s1 = app
        .steward("s-1", "grid-1", AT_THE_DOOR.0, AT_THE_DOOR.1)
        .await;
    let mut visited: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for day in 0..7 {
        at(&app, lhasa(day, 9, 30)).await;
        let (s, round) = as_user(&app, &s1, Method::GET, "/api/v1/rounds/today", None).await;
        assert_eq!(s, StatusCode::OK, "{round}");
        for stop in round["stops"].as_array().unwrap() {
            assert_eq!(stop["overdue"], false, "day {day}: {stop}");
            let visit = stop["visit"]["id"].as_str().unwrap();
            let (s, b) = as_user(
                &app,
                &s1,
                Method::POST,
                &format!("/api/v1/visits/{visit}/start"),
                Some(json!({"lat": AT_THE_DOOR.0, "lon": AT_THE_DOOR.1})),
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{b}");
            let (s, b) = as_user(
                &app,
                &s1,
                Method::POST,
                &format!("/api/v1/visits/{visit}/finish"),
                Some(json!({"wellbeing": "well"})),
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{b}");
            visited
                .entry(stop["elder"]["id"].as_str().unwrap().to_owned())
                .or_default()
                .push(day);
        }
    }
    let days = |e: &str| visited.get(e).cloned().unwrap_or_default();
    assert_eq!(
        days("e-watch"),
        (0..7).collect::<Vec<_>>(),
        "on watch: daily"
    );
    let every2 = days("e-every2");
    assert!(
        every2[0] < 2 && every2.windows(2).all(|w| w[1] - w[0] == 2),
        "every 2 days: {every2:?}"
    );
    assert_eq!(
        days("e-alone").len(),
        1,
        "living alone: weekly, {visited:?}"
    );
    assert!(days("e-other").len() <= 1, "fortnightly: {visited:?}");
    assert!(days("e-none").is_empty(), "opted out: {visited:?}");
    assert!(app.incidents("kind=visit.overdue").await.is_empty());
    app.stop().await.unwrap();
}

/// A week of the demo site's visit plans (its 38 elders, their grids,
/// stewards and pairing; check-ins left out, whose misses would count as
/// recent incidents and are tested on their own): every day a supervisor
/// reads each steward's round and records each visit on it. Each elder is
/// on the round of the steward the plan promises (the paired one, else the
/// grid's first by id) and on no other; the days follow the cadence the
/// site file asks for; nothing goes overdue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_week_of_the_demo_sites_visit_plans_makes_the_rounds_it_promises() {
    use dispatcher::import::SiteFile;
    use std::collections::BTreeMap;

    let app = app_on(Db::Sqlite).await;
    let mut site = SiteFile::from_toml(include_str!("../../config/demo-site.toml"))
        .expect("the demo site reads");
    for e in &mut site.elders {
        e.care.checkin = None;
    }
    site.import(app.state.store.as_ref(), 60)
        .await
        .expect("the demo site imports");

    // What the site file promises: who visits each elder, how often.
    let grid_steward = |grid: &str| {
        site.stewards
            .iter()
            .filter(|s| s.grid == grid && !grid.is_empty())
            .map(|s| s.id.as_str().to_owned())
            .min()
    };
    let mut promised: BTreeMap<String, (Option<String>, u16)> = BTreeMap::new();
    for e in &site.elders {
        let steward = match &e.care.steward_id {
            Some(s) => Some(s.as_str().to_owned()),
            None => grid_steward(&e.grid),
        };
        let every = if e.care.on_watch {
            1
        } else {
            e.care
                .visit_every_days
                .unwrap_or(if e.lives_alone { 7 } else { 14 })
        };
        promised.insert(e.id.as_str().to_owned(), (steward, every));
    }
    assert!(
        promised.values().any(|(s, _)| s.as_deref() == Some("s-03")),
        "the demo's pairing is in the week"
    );
    let stewards: Vec<String> = site
        .stewards
        .iter()
        .map(|s| s.id.as_str().to_owned())
        .collect();

    let mut visited: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for day in 0..7 {
        at(&app, lhasa(day, 9, 30)).await;
        for steward in &stewards {
            let round = app
                .get(&format!("/api/v1/rounds/today?steward_id={steward}"))
                .await;
            for stop in round["stops"].as_array().unwrap() {
                let elder = stop["elder"]["id"].as_str().unwrap().to_owned();
                assert_eq!(
                    promised[&elder].0.as_deref(),
                    Some(steward.as_str()),
                    "day {day}: {elder} on {steward}'s round"
                );
                assert_eq!(stop["overdue"], false, "day {day}: {stop}");
                let visit = stop["visit"]["id"].as_str().unwrap();
                let (s, b) = app
                    .call(
                        Some(&app.admin),
                        Method::POST,
                        &format!("/api/v1/visits/{visit}/start"),
                        Some(json!({})),
                    )
                    .await;
                assert_eq!(s, StatusCode::OK, "{b}");
                let (s, b) = app
                    .call(
                        Some(&app.admin),
                        Method::POST,
                        &format!("/api/v1/visits/{visit}/finish"),
                        Some(json!({"wellbeing": "well"})),
                    )
                    .await;
                assert_eq!(s, StatusCode::OK, "{b}");
                visited.entry(elder).or_default().push(day);
            }
        }
    }
    for (elder, (steward, every)) in &promised {
        let days = visited.get(elder).cloned().unwrap_or_default();
        let every = i64::from(*every);
        if steward.is_none() || every == 0 {
            assert!(days.is_empty(), "{elder}: nobody's, or opted out: {days:?}");
            continue;
        }
        assert!(
            days.first().is_some_and(|d| *d < every) || (every > 7 && days.is_empty()),
            "{elder}: first visit within the first {every} days: {days:?}"
        );
        assert!(
            days.windows(2).all(|w| w[1] - w[0] == every),
            "{elder}: every {every} days: {days:?}"
        );
        if every <= 7 {
            assert_eq!(
                days.len() as i64,
                (7 - days[0] + every - 1) / every,
                "{elder}: {days:?}"
            );
        }
    }
    assert!(app.incidents("kind=visit.overdue").await.is_empty());
    let on_watch = promised.values().filter(|(_, e)| *e == 1).count();
    assert!(on_watch >= 1, "the demo has an elder on watch");
    app.stop().await.unwrap();
}

/// A new plan replans the visit not yet begun: an elder due in up to a
/// fortnight, put on watch, is on today's round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn putting_an_elder_on_watch_brings_their_visit_to_today() {
    let app = app_on(Db::Sqlite).await;
    elder(
        &app,
        "e-1",
        "btn-1",
        json!({"visit_every_days": 365}),
        false,
    )
    .await;
    let s1 = app
        .steward("s-1", "grid-1", AT_THE_DOOR.0, AT_THE_DOOR.1)
        .await;
    at(&app, lhasa(0, 9, 0)).await;
    let (_, round) = as_user(&app, &s1, Method::GET, "/api/v1/rounds/today", None).await;
    let planned = round["stops"].as_array().unwrap().len();
    assert_eq!(planned, 0, "a yearly plan is not due today: {round}");
    let (s, b) = app
        .call(
            Some(&app.admin),
            Method::PATCH,
            "/api/v1/elders/e-1",
            Some(json!({"care": {"on_watch": true}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    at(&app, lhasa(0, 9, 1)).await;
    let (_, round) = as_user(&app, &s1, Method::GET, "/api/v1/rounds/today", None).await;
    let stops = round["stops"].as_array().unwrap();
    assert_eq!(
        stops.len(),
        1,
        "on watch: due today (before: {planned} stops) {round}"
    );
    assert_eq!(stops[0]["visit"]["due_on"], "2026-12-07");
    app.stop().await.unwrap();
}

/// An elder paired with a steward of another grid (结对帮扶): their
/// visits are planned for that steward, whose round and notebook have
/// them; the grid's steward does not get them; pairing with nobody is
/// a 422 that changes nothing; unpaired, the grid's steward has them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paired_steward_gets_the_elders_visits_and_notebook() {
    let app = app_on(Db::Sqlite).await;
    let s1 = app
        .steward("s-1", "grid-1", AT_THE_DOOR.0, AT_THE_DOOR.1)
        .await;
    let s9 = app
        .steward("s-9", "grid-2", ACROSS_TOWN.0, ACROSS_TOWN.1)
        .await;
    let mut body = elder_body("e-1", json!({}));
    body["care"] = json!({"on_watch": true, "steward_id": "s-nobody"});
    let (s, b) = app
        .call(Some(&app.admin), Method::POST, "/api/v1/elders", Some(body))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("care.steward_id"),
        "{b}"
    );
    elder(
        &app,
        "e-1",
        "btn-1",
        json!({"on_watch": true, "steward_id": "s-9"}),
        false,
    )
    .await;
    // Stored beside the plan, not in it: a release that does not know
    // pairing (its plan refuses unknown fields) still reads the elder.
    let options: sqlx::sqlite::SqliteConnectOptions =
        app.state.settings.database.url.parse().unwrap();
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let (care, paired): (String, Option<String>) =
        sqlx::query_as("SELECT care, steward_id FROM elders WHERE id = 'e-1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!care.contains("steward_id"), "{care}");
    assert_eq!(paired.as_deref(), Some("s-9"));
    pool.close().await;
    at(&app, lhasa(0, 9, 0)).await;

    let (_, round) = as_user(&app, &s9, Method::GET, "/api/v1/rounds/today", None).await;
    let stops = round["stops"].as_array().unwrap();
    assert_eq!(stops.len(), 1, "{round}");
    assert_eq!(stops[0]["visit"]["steward_id"], "s-9");
    assert_eq!(stops[0]["elder"]["id"], "e-1");
    let (_, round) = as_user(&app, &s1, Method::GET, "/api/v1/rounds/today", None).await;
    assert_eq!(round["stops"], json!([]), "not the grid's steward's");
    let (s, book) = as_user(&app, &s9, Method::GET, "/api/v1/elders/e-1/notebook", None).await;
    assert_eq!(s, StatusCode::OK, "{book}");

    let (s, b) = app
        .call(
            Some(&app.admin),
            Method::PATCH,
            "/api/v1/elders/e-1",
            Some(json!({"care": {"steward_id": "s-nobody"}})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(
        app.get("/api/v1/elders/e-1").await["care"]["steward_id"],
        "s-9"
    );

    // Unpaired: the visit not yet begun is replanned for the grid's steward.
    let (s, b) = app
        .call(
            Some(&app.admin),
            Method::PATCH,
            "/api/v1/elders/e-1",
            Some(json!({"care": {"steward_id": null}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["care"].get("steward_id"), None, "{b}");
    at(&app, lhasa(0, 9, 1)).await;
    let (_, round) = as_user(&app, &s1, Method::GET, "/api/v1/rounds/today", None).await;
    let stops = round["stops"].as_array().unwrap();
    assert_eq!(stops.len(), 1, "{round}");
    assert_eq!(stops[0]["visit"]["steward_id"], "s-1");
    let (_, round) = as_user(&app, &s9, Method::GET, "/api/v1/rounds/today", None).await;
    assert_eq!(round["stops"], json!([]));
    let (s, _) = as_user(&app, &s9, Method::GET, "/api/v1/elders/e-1/notebook", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "no longer theirs");
    app.stop().await.unwrap();
}

/// The release before visit follow-ups kept each follow-up of an
/// incident; upgrading (SQLite rebuilds both tables) keeps them, their
/// chain and who they passed through, and the rebuilt references still
/// hold: a follow-up that follows nothing is refused, and removing the
/// incident still removes its follow-ups and their history.
async fn upgrade_keeps_follow_ups(url: &str, dir: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let migrator = sqlx::migrate::Migrator::new(path).await.unwrap();
    let before = migrator
        .iter()
        .filter(|m| m.description.contains("visit follow ups"))
        .map(|m| m.version)
        .next()
        .expect("the visit follow-ups migration")
        - 1;
    let rows = [
        "INSERT INTO stewards (id, name, phone, grid) VALUES ('s-1', 'Li', '+8613800000001', 'grid-1')",
        "INSERT INTO incidents (id, dedup_key, elder_id, kind, priority, status, created_at, updated_at,
                                resolved_at, last_event_at, summary)
         VALUES ('inc-1', 'k', 'e-1', 'call.button', 'urgent', 'resolved', '2026-12-01T01:00:00Z',
                 '2026-12-01T02:00:00Z', '2026-12-01T02:00:00Z', '2026-12-01T01:00:00Z', '')",
        "INSERT INTO follow_ups (id, incident_id, follows_id, elder_id, steward_id, kind, created_at,
                                 due_at, status, outcome, note, done_at, done_by)
         VALUES ('fu-1', 'inc-1', NULL, 'e-1', 's-1', 'call', '2026-12-01T02:00:00Z',
                 '2026-12-02T02:00:00Z', 'done', 'unreachable', 'no answer',
                 '2026-12-01T09:00:00Z', 'steward:s-1'),
                ('fu-2', 'inc-1', 'fu-1', 'e-1', NULL, 'visit', '2026-12-01T09:00:00Z',
                 '2026-12-04T09:00:00Z', 'open', NULL, '', NULL, NULL)",
        "INSERT INTO follow_up_reassignments (follow_up_id, at, by_actor, from_steward, to_steward, reason)
         VALUES ('fu-2', '2026-12-01T10:00:00Z', 'steward:s-1', 's-1', NULL, 'away this week')",
    ];
    if url.starts_with("sqlite:") {
        let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
        let pool = sqlx::SqlitePool::connect_with(options.create_if_missing(true))
            .await
            .unwrap();
        migrator.run_to(before, &pool).await.unwrap();
        for r in rows {
            sqlx::query(r).execute(&pool).await.unwrap();
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        migrator.run_to(before, &pool).await.unwrap();
        for r in rows {
            sqlx::query(r).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
    let store = dispatcher::store::connect(url).await.expect("upgraded");
    let fid = |s: &str| dispatcher::domain::FollowUpId::parse(s).unwrap();
    let second = store.follow_up(&fid("fu-2")).await.unwrap().expect("fu-2");
    assert_eq!(
        second.follow_up.incident_id.as_ref().map(|i| i.as_str()),
        Some("inc-1")
    );
    assert_eq!(second.follow_up.visit_id, None);
    assert_eq!(
        second.follow_up.follows_id.as_ref().map(|i| i.as_str()),
        Some("fu-1")
    );
    assert_eq!(second.reassignments.len(), 1);
    assert_eq!(second.reassignments[0].reason, "away this week");
    let first = store.follow_up(&fid("fu-1")).await.unwrap().expect("fu-1");
    assert_eq!(first.follow_up.note, "no answer");

    let raw = |sql: &'static str| async move {
        if url.starts_with("sqlite:") {
            let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
            let pool = sqlx::SqlitePool::connect_with(options.foreign_keys(true))
                .await
                .unwrap();
            sqlx::query(sql)
                .execute(&pool)
                .await
                .map(|r| r.rows_affected())
        } else {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query(sql)
                .execute(&pool)
                .await
                .map(|r| r.rows_affected())
        }
    };
    raw(
        "INSERT INTO follow_ups (id, elder_id, kind, created_at, due_at)
         VALUES ('fu-x', 'e-1', 'call', '2026-12-01T02:00:00Z', '2026-12-02T02:00:00Z')",
    )
    .await
    .expect_err("a follow-up must follow something");
    assert_eq!(
        raw("DELETE FROM incidents WHERE id = 'inc-1'")
            .await
            .unwrap(),
        1
    );
    assert!(store.follow_up(&fid("fu-2")).await.unwrap().is_none());
    let history = raw("DELETE FROM follow_up_reassignments").await.unwrap();
    assert_eq!(history, 0, "the history went with its follow-up");
}

#[tokio::test]
async fn sqlite_upgrade_keeps_follow_ups_and_who_they_passed_through() {
    use eldercare_tests::db::TestDb;
    let db = eldercare_tests::db::fresh_sqlite();
    std::fs::create_dir_all(db.dir().join("data")).unwrap();
    upgrade_keeps_follow_ups(db.url(), "../migrations/sqlite").await;
}

#[tokio::test]
async fn postgres_upgrade_keeps_follow_ups_and_who_they_passed_through() {
    use eldercare_tests::db::TestDb;
    let db = eldercare_tests::db::fresh_postgres()
        .await
        .expect("test database");
    upgrade_keeps_follow_ups(db.url(), "../migrations/postgres").await;
}
