//! A steward walks today's round in the steward app on a 360 px phone in
//! a real browser: checks in at the first door by the phone's location,
//! writes the note, and the next stop is there. The server's clock is the
//! test's (a Monday morning), so the visits are due whatever the hour.

use chrono::{DateTime, Utc};
use eldercare_tests::app::{Options, TestApp, elder_body};
use eldercare_tests::browser::Browser;
use serde_json::json;

/// Monday 2026-12-07, 10:00 in Lhasa.
fn monday_10am() -> DateTime<Utc> {
    "2026-12-07T02:00:00Z".parse().unwrap()
}

/// About 40 m from the home in `elder_body`.
const AT_THE_DOOR: (f64, f64) = (29.6601, 91.1378);

async fn app() -> TestApp {
    TestApp::spawn(Options {
        clock: Some(monday_10am()),
        env: vec![("ELDERCARE__CARE__PLAN_VISITS".into(), "true".into())],
        ..Options::default()
    })
    .await
}

async fn elder_at(app: &TestApp, id: &str, name: &str, lat: f64) {
    let mut body = elder_body(id, json!({}));
    body["name"] = json!(name);
    body["lat"] = json!(lat);
    body["care"] = json!({"visit_every_days": 1});
    app.post("/api/v1/elders", body).await;
}

async fn steward(app: &TestApp) {
    app.post(
        "/api/v1/stewards",
        json!({"id": "s-1", "name": "Dawa", "phone": "13900000101", "grid": "grid-1"}),
    )
    .await;
    app.post(
        "/api/v1/users",
        json!({"username": "s-1", "password": "s-1-password", "role": "steward", "steward_id": "s-1"}),
    )
    .await;
}

async fn phone_at_the_door(app: &TestApp, lang: &str) -> Browser {
    let browser = Browser::start_sized(360, 740, lang).await.unwrap();
    browser.goto(&format!("{}/login", app.base)).await.unwrap();
    browser
        .cdp(
            "Browser.grantPermissions",
            json!({"origin": app.base, "permissions": ["geolocation"]}),
        )
        .await
        .unwrap();
    browser
        .cdp(
            "Emulation.setGeolocationOverride",
            json!({"latitude": AT_THE_DOOR.0, "longitude": AT_THE_DOOR.1, "accuracy": 12}),
        )
        .await
        .unwrap();
    browser
        .log_in(&app.base, "s-1", "s-1-password")
        .await
        .unwrap();
    browser.wait_path("/app/").await.unwrap();
    browser
}

async fn stops(browser: &Browser) -> usize {
    browser
        .eval("return document.querySelectorAll('#round .stop').length")
        .await
        .unwrap()
        .as_u64()
        .unwrap() as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steward_walks_a_round_on_a_360_px_phone_check_in_note_next() {
    let app = app().await;
    // Two homes: the one at the door first, the other about 1 km north.
    elder_at(&app, "e-1", "次仁卓玛 Tsering", 29.6598).await;
    elder_at(&app, "e-2", "Pasang", 29.6698).await;
    steward(&app).await;
    app.settle().await;

    let browser = phone_at_the_door(&app, "en").await;
    browser
        .wait_text("#round .round-title", |t| t.contains("2 to visit"))
        .await
        .unwrap();
    // The steward shared no location yet: find Tsering's card by name.
    let first = browser
        .eval(
            "return [...document.querySelectorAll('#round .stop')]
                .find((c) => c.querySelector('h3').textContent.includes('Tsering')).dataset.visit",
        )
        .await
        .unwrap();
    let first = first.as_str().unwrap().to_owned();
    let card = format!("#round .stop[data-visit='{first}']");
    // Check in at the door: the phone's location is near the home.
    browser.click(&format!("{card} .check-in")).await.unwrap();
    browser
        .wait_text(&format!("{card} .stop-status"), |t| t == "Visiting")
        .await
        .unwrap();
    // Nothing wider than the phone, note form open.
    let wide = browser
        .eval("return document.documentElement.scrollWidth")
        .await
        .unwrap();
    assert!(
        wide.as_u64().unwrap() <= 360,
        "the page scrolls sideways: {wide}"
    );

    // The note: fair, a medicine started, meals needed, a line of text.
    browser
        .click(&format!("{card} .visit-note input[value=fair]"))
        .await
        .unwrap();
    browser
        .click(&format!("{card} .visit-note input[value=meals]"))
        .await
        .unwrap();
    browser
        .find(&format!("{card} .visit-note .field input"))
        .await
        .unwrap()
        .send_keys("aspirin 100 mg")
        .await
        .unwrap();
    browser
        .find(&format!("{card} .visit-note textarea"))
        .await
        .unwrap()
        .send_keys("knee pain")
        .await
        .unwrap();
    // A follow-up wanted: a call on the steward's own list at once.
    browser
        .click(&format!("{card} .visit-note input.follow-up-wanted"))
        .await
        .unwrap();
    browser.click(&format!("{card} .finish")).await.unwrap();
    browser
        .wait_text("#followups .follow-up .card-head", |t| {
            t.contains("Follow-up call") && t.contains("after your visit")
        })
        .await
        .unwrap();

    // Next: one stop left, the other home, waiting for its check-in.
    browser
        .wait_text("#round .round-title", |t| t.contains("1 to visit"))
        .await
        .unwrap();
    assert_eq!(stops(&browser).await, 1);
    browser
        .wait_text("#round .stop h3", |t| t.contains("Pasang"))
        .await
        .unwrap();

    let done = app.get(&format!("/api/v1/visits/{first}")).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["started_how"], "location");
    assert_eq!(done["note"]["wellbeing"], "fair");
    assert_eq!(done["note"]["needs"], json!(["meals"]));
    assert_eq!(done["note"]["text"], "knee pain");
    assert_eq!(done["note"]["follow_up"], true);
    let e = app.get("/api/v1/elders/e-1").await;
    assert!(
        e["medications"]
            .as_array()
            .unwrap()
            .contains(&json!("aspirin 100 mg")),
        "{e}"
    );

    // The next elder's notebook opens under their card.
    browser.click("#round .stop .book-toggle").await.unwrap();
    browser
        .wait_text("#round .stop .notebook", |t| t.contains("To visit"))
        .await
        .unwrap();

    // Far from the second home, the check-in is refused in words.
    browser.click("#round .stop .check-in").await.unwrap();
    browser
        .wait_text("#round .round-error", |t| t.contains("from"))
        .await
        .unwrap();
    browser.assert_no_console_errors_but(&["422"]).await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_round_speaks_chinese() {
    let app = app().await;
    elder_at(&app, "e-1", "次仁卓玛", 29.6598).await;
    steward(&app).await;
    app.settle().await;
    let browser = phone_at_the_door(&app, "zh-CN").await;
    browser
        .wait_text("#round .round-title", |t| {
            t.contains("今日走访") && t.contains("待访 1 户")
        })
        .await
        .unwrap();
    browser
        .wait_text("#round .stop .check-in", |t| t == "到门口签到")
        .await
        .unwrap();
    browser.assert_no_console_errors().await;
    app.stop().await.unwrap();
}

/// The supervisor's side of the same day: the board counts the grid's
/// visits, and the elder's notebook shows the visit and its note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_counts_the_grids_visits_and_opens_the_elders_notebook() {
    let app = app().await;
    elder_at(&app, "e-1", "次仁卓玛 Tsering", 29.6598).await;
    elder_at(&app, "e-2", "Pasang", 29.6698).await;
    steward(&app).await;
    app.settle().await;
    let s1 = app.login("s-1", "s-1-password").await;
    let (_, round) = app
        .call(
            Some(&s1),
            reqwest::Method::GET,
            "/api/v1/rounds/today",
            None,
        )
        .await;
    let stop = round["stops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["elder"]["id"] == "e-1")
        .unwrap();
    let visit = stop["visit"]["id"].as_str().unwrap();
    for (path, body) in [
        (
            format!("/api/v1/visits/{visit}/start"),
            json!({"lat": AT_THE_DOOR.0, "lon": AT_THE_DOOR.1}),
        ),
        (
            format!("/api/v1/visits/{visit}/finish"),
            json!({"wellbeing": "poor", "needs": ["doctor"], "text": "cough for a week"}),
        ),
    ] {
        let (s, b) = app
            .call(Some(&s1), reqwest::Method::POST, &path, Some(body))
            .await;
        assert!(s.is_success(), "{path}: {b}");
    }

    let browser = Browser::start().await.unwrap();
    browser.goto(&format!("{}/login", app.base)).await.unwrap();
    browser
        .log_in(&app.base, "admin", eldercare_tests::app::ADMIN_PASSWORD)
        .await
        .unwrap();
    browser.wait_path("/board/").await.unwrap();
    browser
        .goto(&format!("{}/board/#care", app.base))
        .await
        .unwrap();
    let date = browser.find("#care-date").await.unwrap();
    browser
        .eval("document.getElementById('care-date').value = '2026-12-07'")
        .await
        .unwrap();
    drop(date);
    browser
        .click("#view-care form button[type=submit]")
        .await
        .unwrap();
    browser
        .wait_text("#care-grids tbody tr:first-child", |t| {
            t.contains("grid-1") && t.contains('2') && t.contains('1')
        })
        .await
        .unwrap();
    browser
        .goto(&format!("{}/board/#elder/e-1", app.base))
        .await
        .unwrap();
    browser
        .wait_text("#nb-entries .nb-visit-done", |t| {
            t.contains("Poor") && t.contains("Doctor") && t.contains("cough for a week")
        })
        .await
        .unwrap();
    browser.assert_no_console_errors().await;
    app.stop().await.unwrap();
}
