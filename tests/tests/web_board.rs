//! The supervisor dashboard (`/board/`) in a real browser (headless
//! Chromium) against the real server and its real (embedded) broker: a
//! press published over MQTT appears on the board live, the board follows
//! the steward without a reload, the response-time page counts the
//! incident once it is resolved, the language switch changes the text,
//! and the first load stays under 300 KB.
//!
//! The ignored `screenshots_…` writes `docs/screenshots/board-en.png`
//! and `board-zh.png` (1080p, a site with incidents and stewards).

use std::time::Duration;

use eldercare_tests::app::{Options, TestApp, elder_body};
use eldercare_tests::browser::Browser;
use eldercare_tests::device::TestDevice;
use eldercare_tests::wait;
use fantoccini::key::Key;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SUPERVISOR: &str = "sup";
const SUPERVISOR_PASSWORD: &str = "supervisor-password";

/// A site with one elder (`e-1`, button `btn-1`), one steward on duty
/// nearby (`s-1`, whose token is returned) and a supervisor login.
async fn site() -> (TestApp, String) {
    site_with(Options::default()).await
}

async fn site_with(options: Options) -> (TestApp, String) {
    let app = TestApp::spawn(options).await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    let steward = app.steward("s-1", "grid-1", 29.6603, 91.1381).await;
    app.post(
        "/api/v1/users",
        json!({"username": SUPERVISOR, "password": SUPERVISOR_PASSWORD, "role": "supervisor"}),
    )
    .await;
    (app, steward)
}

/// Logs the supervisor in and waits for the board's stream to be live.
async fn open_board(app: &TestApp, browser: &Browser) {
    browser
        .log_in(&app.base, SUPERVISOR, SUPERVISOR_PASSWORD)
        .await
        .unwrap();
    browser.wait_path("/board/").await.unwrap();
    browser
        .wait_text("#stream-state", |t| t == "Live")
        .await
        .unwrap();
}

/// Publishes an event over MQTT from `button` and returns the incident's
/// id. Keep the device connected: when it goes, its last will says
/// "offline" and that opens a technical incident of its own.
async fn press(app: &TestApp, button: &mut TestDevice, kind: &str) -> String {
    let data = if kind == "fall.detected" {
        json!({"confidence": 0.9})
    } else {
        json!({})
    };
    button
        .event(&uuid::Uuid::new_v4().to_string(), kind, data)
        .await;
    button.flushed().await;
    let elder = app.get(&format!("/api/v1/devices/{}", button.id)).await["elder_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let open = app
        .wait_incidents(
            &format!("elder_id={elder}&status=dispatching&kind={}", kind_of(kind)),
            1,
        )
        .await;
    open[0]["id"].as_str().unwrap().to_owned()
}

/// The incident kind an event opens.
fn kind_of(event: &str) -> &'static str {
    match event {
        "fall.detected" => "fall",
        _ => "call",
    }
}

/// Waits for a live offer of `id` to `steward`, then accepts it as them.
async fn accept(app: &TestApp, id: &str, steward: &str, token: &str) {
    app.wait_incident(id, "an offer to the steward", |d| {
        d["offers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["steward_id"] == steward && o["response"].is_null())
    })
    .await;
    lifecycle(app, token, id, "accept", None).await;
}

async fn lifecycle(app: &TestApp, token: &str, id: &str, what: &str, body: Option<Value>) {
    let (s, b) = app
        .call(
            Some(token),
            Method::POST,
            &format!("/api/v1/incidents/{id}/{what}"),
            body,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{what}: {b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_press_appears_live_the_board_follows_the_steward_and_the_report_counts_it() {
    let (app, steward) = site().await;
    let browser = Browser::start().await.unwrap();
    open_board(&app, &browser).await;
    browser
        .wait_text("#incidents", |t| t == "No open incidents.")
        .await
        .unwrap();

    // Nothing resolved yet: the report is empty.
    browser.click("nav a[data-view=reports]").await.unwrap();
    browser
        .wait_text("#rep-total", |t| t == "Incidents in range: 0")
        .await
        .unwrap();
    browser.click("nav a[data-view=board]").await.unwrap();

    // A marker that a reload would wipe out.
    browser
        .eval("window.stillTheSamePage = true;")
        .await
        .unwrap();

    let mut button = app.device("btn-1").await;
    let id = press(&app, &mut button, "call.pressed").await;
    let row = format!("#incidents li.incident[data-id='{id}']");
    let text = browser
        .wait_text(&row, |t| t.contains("Elder e-1"))
        .await
        .unwrap();
    assert!(text.contains("Urgent"), "{text}");
    assert!(text.contains("Call button"), "{text}");
    browser
        .wait_text(&format!("{row} .state"), |t| t == "Finding a steward")
        .await
        .unwrap();
    // The timer runs.
    let first = browser
        .wait_text(&format!("{row} .elapsed"), |t| t.contains(':'))
        .await
        .unwrap();
    browser
        .wait_text(&format!("{row} .elapsed"), |t| t != first)
        .await
        .unwrap();

    accept(&app, &id, "s-1", &steward).await;
    browser
        .wait_text(&format!("{row} .state"), |t| t == "Steward on the way")
        .await
        .unwrap();
    browser
        .wait_text(&format!("{row} .steward"), |t| t == "Steward s-1")
        .await
        .unwrap();
    browser
        .wait_text("#roster", |t| {
            t.contains("Steward s-1") && t.contains("Busy")
        })
        .await
        .unwrap();

    lifecycle(&app, &steward, &id, "arrive", None).await;
    browser
        .wait_text(&format!("{row} .state"), |t| t == "Steward on site")
        .await
        .unwrap();
    lifecycle(
        &app,
        &steward,
        &id,
        "resolve",
        Some(json!({"outcome": "assisted", "notes": "helped up"})),
    )
    .await;
    browser
        .wait_text("#incidents", |t| t == "No open incidents.")
        .await
        .unwrap();
    assert_eq!(
        browser
            .eval("return window.stillTheSamePage === true;")
            .await
            .unwrap(),
        json!(true),
        "the board reloaded"
    );

    // The response-time page now counts it.
    browser.click("nav a[data-view=reports]").await.unwrap();
    browser
        .wait_text("#rep-total", |t| t == "Incidents in range: 1")
        .await
        .unwrap();
    let urgent = browser
        .wait_text("#rep-table tbody tr", |t| t.starts_with("Urgent"))
        .await
        .unwrap();
    assert!(urgent.contains("100%"), "within target: {urgent}");
    browser.assert_no_console_errors().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incident_page_shows_the_elder_and_the_supervisor_assigns_by_keyboard() {
    let (app, _steward) = site().await;
    let browser = Browser::start().await.unwrap();
    open_board(&app, &browser).await;
    let mut button = app.device("btn-1").await;
    let id = press(&app, &mut button, "call.pressed").await;

    let link = format!("#incidents li.incident[data-id='{id}'] a");
    browser
        .find(&link)
        .await
        .unwrap()
        .send_keys(&Key::Enter)
        .await
        .unwrap();
    let page = browser
        .wait_text("#view-incident", |t| t.contains("hypertension"))
        .await
        .unwrap();
    for essential in [
        "Elder e-1",
        "nifedipine",
        "Fall risk",
        "Tashi",
        "13800001234",
    ] {
        assert!(page.contains(essential), "{essential} missing: {page}");
    }
    browser
        .wait_text("#view-incident", |t| t.contains("Candidates"))
        .await
        .unwrap();

    // Assign by hand (the steward may hold the offer already).
    let select = browser.find("#assign-steward").await.unwrap();
    select.select_by_value("s-1").await.unwrap();
    browser
        .click("#assign-steward ~ button[type=submit]")
        .await
        .unwrap();
    browser
        .wait_text("#view-incident .incident-head .state", |t| {
            t == "Steward on the way"
        })
        .await
        .unwrap();
    let detail = app.incident(&id).await;
    assert_eq!(detail["steward_id"], "s-1", "{detail}");
    browser.assert_no_console_errors().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_critical_incident_raises_an_alert_that_stays_until_seen() {
    // A one-second target, so the board shows it passing.
    let (app, _) = site_with(Options {
        env: vec![("ELDERCARE__NOTIFY__TARGET_ACK_S".into(), "1".into())],
        ..Options::default()
    })
    .await;
    let browser = Browser::start().await.unwrap();
    open_board(&app, &browser).await;
    // Sound is off until the supervisor turns it on (a click allows audio).
    assert_eq!(
        browser
            .find("#sound")
            .await
            .unwrap()
            .attr("aria-pressed")
            .await
            .unwrap(),
        Some("false".into())
    );
    browser.click("#sound").await.unwrap();
    assert_eq!(
        browser
            .find("#sound")
            .await
            .unwrap()
            .attr("aria-pressed")
            .await
            .unwrap(),
        Some("true".into())
    );

    let mut button = app.device("btn-1").await;
    let id = press(&app, &mut button, "fall.detected").await;
    let alert = browser
        .wait_text(&format!("#alerts .alert[data-id='{id}']"), |t| {
            t.contains("New critical incident")
        })
        .await
        .unwrap();
    assert!(
        alert.contains("Elder e-1") && alert.contains("Fall"),
        "{alert}"
    );
    browser
        .wait_text(&format!("#incidents li.incident[data-id='{id}']"), |t| {
            t.contains("Critical")
        })
        .await
        .unwrap();
    browser
        .wait_text(
            &format!("#incidents li.incident.past-target[data-id='{id}'] .late"),
            |t| t.contains("Past target"),
        )
        .await
        .unwrap();
    browser
        .click(&format!("#alerts .alert[data-id='{id}'] button"))
        .await
        .unwrap();
    browser
        .wait_text("#alerts", |t| t.is_empty())
        .await
        .unwrap();
    browser.assert_no_console_errors().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_manage_and_simulator_pages_work() {
    let (app, _) = site().await;
    let browser = Browser::start().await.unwrap();
    open_board(&app, &browser).await;

    browser.click("nav a[data-view=devices]").await.unwrap();
    let summary = browser
        .wait_text("#dev-summary", |t| t.ends_with("of 1"))
        .await
        .unwrap();
    assert!(summary.starts_with("1 offline"), "{summary}");
    browser
        .wait_text("#devices tbody", |t| {
            t.contains("btn-1") && t.contains("Offline")
        })
        .await
        .unwrap();

    // Create a steward with the form, then edit their phone.
    browser
        .goto(&format!("{}/board/#manage/stewards", app.base))
        .await
        .unwrap();
    browser
        .wait_text("#manage-list", |t| t.contains("Steward s-1"))
        .await
        .unwrap();
    browser.click("#manage-new").await.unwrap();
    fill(
        &browser,
        &[
            ("#mf-id", "s-9"),
            ("#mf-name", "卓玛"),
            ("#mf-phone", "13900000999"),
        ],
    )
    .await;
    save_form(&browser, "卓玛").await;
    assert_eq!(
        app.get("/api/v1/stewards/s-9").await["phone"],
        "13900000999"
    );
    browser
        .click("#manage-list tbody tr:last-child button")
        .await
        .unwrap();
    let phone = browser.find("#mf-phone").await.unwrap();
    phone.clear().await.unwrap();
    phone.send_keys("13900000888").await.unwrap();
    save_form(&browser, "13900000888").await;
    assert_eq!(
        app.get("/api/v1/stewards/s-9").await["phone"],
        "13900000888"
    );

    // An elder, with lists and contacts typed one a line.
    browser
        .click(".subnav a[href='#manage/elders']")
        .await
        .unwrap();
    browser
        .wait_text("#manage-list", |t| t.contains("Elder e-1"))
        .await
        .unwrap();
    browser.click("#manage-new").await.unwrap();
    fill(
        &browser,
        &[
            ("#mf-id", "e-9"),
            ("#mf-name", "次仁央金"),
            ("#mf-birth_year", "1941"),
            ("#mf-address", "塔玛社区 3组 2号"),
            ("#mf-lat", "29.6601"),
            ("#mf-lon", "91.1390"),
            ("#mf-conditions", "diabetes\nCOPD"),
            ("#mf-contacts", "Pasang, daughter, 13800009999"),
            // The care plan: a daily check-in, a paired steward.
            ("#mf-care-checkin-by", "09:30"),
            ("#mf-care-steward_id", "s-1"),
        ],
    )
    .await;
    browser.click("#mf-risks-fall").await.unwrap();
    browser.click("#mf-care-on_watch").await.unwrap();
    save_form(&browser, "次仁央金").await;
    let elder = app.get("/api/v1/elders/e-9").await;
    assert_eq!(elder["conditions"], json!(["diabetes", "COPD"]), "{elder}");
    assert_eq!(elder["contacts"][0]["relation"], "daughter", "{elder}");
    assert_eq!(elder["risks"]["fall"], true, "{elder}");
    assert_eq!(
        elder["care"],
        json!({"checkin": {"from": "05:00", "by": "09:30"}, "on_watch": true, "steward_id": "s-1"}),
        "{elder}"
    );
    // Edited: the check-in time blanked takes the elder off check-in.
    browser
        .click("#manage-list tbody tr:last-child button")
        .await
        .unwrap();
    browser
        .wait_text("#manage-form h3", |t| t.contains("e-9"))
        .await
        .unwrap();
    browser
        .eval("document.getElementById('mf-care-checkin-by').value = '';")
        .await
        .unwrap();
    browser
        .click("#manage-form button[type=submit]")
        .await
        .unwrap();
    let mut care = Value::Null;
    for _ in 0..100 {
        care = app.get("/api/v1/elders/e-9").await["care"].clone();
        if care.get("checkin").is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(care, json!({"on_watch": true, "steward_id": "s-1"}));

    // The simulator is admin-only (or not built in): the page says so.
    browser.click("nav a[data-view=sim]").await.unwrap();
    browser
        .wait_text("#view-sim", |t| {
            t.contains("not available") || t.contains("Start")
        })
        .await
        .unwrap();
    // The browser logs the 403/404 of `/api/v1/sim` itself; nothing else.
    browser.assert_no_console_errors_but(&["/api/v1/sim"]).await;
}

/// Types each value into its field.
async fn fill(browser: &Browser, fields: &[(&str, &str)]) {
    for (field, value) in fields {
        browser
            .find(field)
            .await
            .unwrap()
            .send_keys(value)
            .await
            .unwrap();
    }
}

/// Submits the manage form and waits for the list to show `shows`.
async fn save_form(browser: &Browser, shows: &str) {
    browser
        .click("#manage-form button[type=submit]")
        .await
        .unwrap();
    browser
        .wait_text("#manage-list", |t| t.contains(shows))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_board_says_plainly_when_the_stream_is_offline() {
    let (app, _) = site().await;
    let browser = Browser::start().await.unwrap();
    open_board(&app, &browser).await;
    let banner = browser.find("#offline").await.unwrap();
    assert!(!banner.is_displayed().await.unwrap(), "offline while live");
    tokio::time::timeout(Duration::from_secs(20), app.stop())
        .await
        .expect("the dispatcher stops")
        .unwrap();
    browser
        .wait_text("#offline", |t| t.starts_with("Offline: reconnecting"))
        .await
        .unwrap();
    browser
        .wait_text("#stream-state", |t| t == "Offline")
        .await
        .unwrap();
}

#[tokio::test]
async fn the_language_switch_changes_the_text() {
    let (app, _) = site().await;
    let browser = Browser::start().await.unwrap();
    open_board(&app, &browser).await;
    assert_eq!(
        browser
            .find("nav a[data-view=board]")
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "Board"
    );
    browser.click("#lang").await.unwrap();
    browser
        .wait_text("nav a[data-view=board]", |t| t == "看板")
        .await
        .unwrap();
    browser
        .wait_text("#incidents", |t| t == "没有未结事件。")
        .await
        .unwrap();
    browser
        .wait_text("#stream-state", |t| t == "实时")
        .await
        .unwrap();
    assert_eq!(
        browser
            .eval("return document.documentElement.lang;")
            .await
            .unwrap(),
        json!("zh-CN")
    );
    browser.click("#lang").await.unwrap();
    browser
        .wait_text("nav a[data-view=board]", |t| t == "Board")
        .await
        .unwrap();
    browser.assert_no_console_errors().await;
}

#[tokio::test]
async fn an_unauthenticated_visit_goes_to_login_and_back_after_it() {
    let (app, _) = site().await;
    let browser = Browser::start().await.unwrap();
    browser
        .goto(&format!("{}/board/#reports", app.base))
        .await
        .unwrap();
    browser.wait_path("/login").await.unwrap();
    browser
        .find("#username")
        .await
        .unwrap()
        .send_keys(SUPERVISOR)
        .await
        .unwrap();
    browser
        .find("#password")
        .await
        .unwrap()
        .send_keys(SUPERVISOR_PASSWORD)
        .await
        .unwrap();
    browser
        .click("#login-form button[type=submit]")
        .await
        .unwrap();
    browser.wait_path("/board/").await.unwrap();
    browser
        .wait_text("#rep-total", |t| t.starts_with("Incidents in range"))
        .await
        .unwrap();
    browser.assert_no_console_errors().await;
}

/// Sums what the page downloaded: resource timing's transferSize, and the
/// compressed body sizes too so a warm cache cannot hide a heavy page.
const BYTES_LOADED: &str = "
    const all = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
    return {
        transfer: all.reduce((n, e) => n + e.transferSize, 0),
        encoded: all.reduce((n, e) => n + e.encodedBodySize, 0),
        files: all.length,
    };";

#[tokio::test]
async fn the_first_load_is_under_300_kb_and_fits_a_360_px_phone() {
    let (app, _) = site().await;
    let browser = Browser::start_sized(360, 740, "en-US").await.unwrap();
    open_board(&app, &browser).await;
    // A fresh load of the board: the map library and every module.
    browser.goto(&format!("{}/board/", app.base)).await.unwrap();
    browser
        .wait_text("#stream-state", |t| t == "Live")
        .await
        .unwrap();
    browser.find(".leaflet-control-scale").await.unwrap();
    let loaded = browser.eval(BYTES_LOADED).await.unwrap();
    let transfer = loaded["transfer"].as_f64().unwrap();
    let encoded = loaded["encoded"].as_f64().unwrap();
    assert!(transfer < 300_000.0, "{loaded}");
    assert!(encoded < 300_000.0, "{loaded}");
    assert!(loaded["files"].as_u64().unwrap() > 10, "{loaded}");

    // Nothing wider than the phone.
    let width = browser
        .eval("return document.documentElement.scrollWidth;")
        .await
        .unwrap();
    assert!(width.as_u64().unwrap() <= 360, "page is {width} px wide");
    browser.assert_no_console_errors().await;
}

/// Elders with Tibetan and Chinese names around Tama community, Lhasa.
const ELDERS: &[(&str, &str, f64, f64)] = &[
    ("e-1", "次仁卓玛", 29.6598, 91.1377),
    ("e-2", "བཀྲ་ཤིས་དབང་ཕྱུག", 29.6621, 91.1402),
    ("e-3", "王秀英", 29.6577, 91.1351),
    ("e-4", "Dawa Lhamo", 29.6640, 91.1330),
    ("e-5", "李建国", 29.6560, 91.1420),
    ("e-6", "ཚེ་རིང་ཆོས་སྒྲོན", 29.6612, 91.1445),
];

/// Writes `docs/screenshots/board-{en,zh}.png`; not a test of anything,
/// so not in the test run: `cargo test -p eldercare-tests --test
/// web_board -- --ignored screenshots`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes docs/screenshots; run with --ignored"]
async fn screenshots_of_the_board_in_both_languages() {
    let app = TestApp::spawn(Options::default()).await;
    for (id, name, lat, lon) in ELDERS {
        let mut body = elder_body(id, json!({}));
        body["name"] = json!(name);
        body["lat"] = json!(lat);
        body["lon"] = json!(lon);
        app.post("/api/v1/elders", body).await;
        app.post(
            "/api/v1/devices",
            // A long heartbeat: a slow run must not turn them "offline".
            json!({"id": format!("btn-{id}"), "elder_id": id, "kind": "call_button", "heartbeat_s": 86400}),
        )
        .await;
    }
    app.post(
        "/api/v1/users",
        json!({"username": SUPERVISOR, "password": SUPERVISOR_PASSWORD, "role": "supervisor"}),
    )
    .await;
    let s1 = app.steward("s-1", "grid-1", 29.6600, 91.1380).await;
    let s2 = app.steward("s-2", "grid-1", 29.6630, 91.1410).await;
    let s3 = app.steward("s-3", "grid-2", 29.6570, 91.1440).await;
    app.steward("s-4", "grid-2", 29.6585, 91.1330).await;
    for (id, name) in STEWARDS {
        let (s, b) = app
            .call(
                Some(&app.admin),
                Method::PATCH,
                &format!("/api/v1/stewards/{id}"),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }

    let mut buttons = Vec::new();
    for (id, ..) in ELDERS {
        buttons.push(app.device(&format!("btn-{id}")).await);
    }
    // One incident already over, for the response-time page.
    let done = press(&app, &mut buttons[5], "call.pressed").await;
    app.post(
        &format!("/api/v1/incidents/{done}/assign"),
        json!({"steward_id": "s-3"}),
    )
    .await;
    lifecycle(&app, &s3, &done, "arrive", None).await;
    lifecycle(
        &app,
        &s3,
        &done,
        "resolve",
        Some(json!({"outcome": "assisted", "notes": ""})),
    )
    .await;
    let a = press(&app, &mut buttons[0], "call.pressed").await;
    accept(&app, &a, "s-1", &s1).await;
    let b = press(&app, &mut buttons[1], "call.pressed").await;
    accept(&app, &b, "s-2", &s2).await;
    lifecycle(&app, &s2, &b, "arrive", None).await;
    let fall = press(&app, &mut buttons[2], "fall.detected").await;
    press(&app, &mut buttons[3], "call.pressed").await;

    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    std::fs::create_dir_all(&out).unwrap();
    for lang in ["en", "zh"] {
        let browser =
            Browser::start_sized(1920, 1080, if lang == "zh" { "zh-CN" } else { "en-US" })
                .await
                .unwrap();
        // The window's size includes what is not page: make the page 1080 high.
        let inner = browser.eval("return window.innerHeight;").await.unwrap();
        let inner = inner.as_u64().unwrap() as u32;
        browser
            .client
            .set_window_size(1920, 1080 + 1080 - inner)
            .await
            .unwrap();
        browser
            .log_in(&app.base, SUPERVISOR, SUPERVISOR_PASSWORD)
            .await
            .unwrap();
        browser.wait_path("/board/").await.unwrap();
        browser
            .wait_text("#stream-state", |t| t == "Live" || t == "实时")
            .await
            .unwrap();
        browser.find("#incidents li.incident").await.unwrap();
        // Timers past a few seconds, the map fitted.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let shoot = |name: String| {
            let out = out.clone();
            let browser = &browser;
            async move {
                let png = browser.screenshot().await.unwrap();
                std::fs::write(out.join(name), png).unwrap();
            }
        };
        shoot(format!("board-{lang}.png")).await;
        if lang == "en" {
            browser
                .goto(&format!("{}/board/#incident/{fall}", app.base))
                .await
                .unwrap();
            browser
                .wait_text("#view-incident", |t| t.contains("Candidates"))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
            shoot("board-incident-en.png".into()).await;
            browser
                .goto(&format!("{}/board/#reports", app.base))
                .await
                .unwrap();
            browser.find("#rep-table").await.unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
            shoot("board-reports-en.png".into()).await;
        }
        browser.assert_no_console_errors().await;
    }
    // A phone.
    let browser = Browser::start_sized(360, 800, "zh-CN").await.unwrap();
    open_board_as_any(&app, &browser).await;
    browser.find("#incidents li.incident").await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let png = browser.screenshot().await.unwrap();
    std::fs::write(out.join("board-360-zh.png"), png).unwrap();
}

/// Stewards' names on the screenshots.
const STEWARDS: &[(&str, &str)] = &[
    ("s-1", "格桑次仁"),
    ("s-2", "Pema Yangzom"),
    ("s-3", "张伟"),
    ("s-4", "ནོར་བུ་"),
];

async fn open_board_as_any(app: &TestApp, browser: &Browser) {
    browser
        .log_in(&app.base, SUPERVISOR, SUPERVISOR_PASSWORD)
        .await
        .unwrap();
    browser.wait_path("/board/").await.unwrap();
}

/// An admin starts a scenario from the board's simulator page and stops it
/// again; the API agrees at each step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_starts_and_stops_a_scenario_from_the_board() {
    let app = TestApp::spawn(Options {
        env: vec![("ELDERCARE__SIM__ENABLED".into(), "true".into())],
        ..Options::default()
    })
    .await;
    let site = dispatcher::import::SiteFile::from_toml(include_str!("../../config/demo-site.toml"))
        .expect("the demo site reads");
    site.import(app.state.store.as_ref(), 60)
        .await
        .expect("the demo site imports");
    let browser = Browser::start().await.unwrap();
    browser
        .log_in(&app.base, "admin", eldercare_tests::app::ADMIN_PASSWORD)
        .await
        .unwrap();
    browser.wait_path("/board/").await.unwrap();
    browser.click("nav a[data-view=sim]").await.unwrap();
    browser
        .wait_text("#sim-status", |t| t == "Not running.")
        .await
        .unwrap();
    browser
        .eval("document.getElementById('sim-scenario').value = 'stuck-button'; null")
        .await
        .unwrap();
    browser
        .click("#view-sim form button[type=submit]")
        .await
        .unwrap();
    browser
        .wait_text("#sim-status", |t| t == "Running: stuck-button")
        .await
        .unwrap();
    let (s, status) = app
        .call(Some(&app.admin), Method::GET, "/api/v1/sim", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(status["running"], true, "{status}");
    assert_eq!(status["scenario"], "stuck-button", "{status}");

    browser
        .click("#view-sim form button[type=button]")
        .await
        .unwrap();
    browser
        .wait_text("#sim-status", |t| t == "Not running.")
        .await
        .unwrap();
    let (_, status) = app
        .call(Some(&app.admin), Method::GET, "/api/v1/sim", None)
        .await;
    assert_eq!(status["running"], false, "{status}");
    browser.assert_no_console_errors().await;
}

/// An installer registers a device on the board and reads its secret
/// there, once: the device connects with it and is heard. A new secret
/// issued from the board replaces it; the old one no longer gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_registered_on_the_board_shows_its_secret_once_and_connects_with_it() {
    let (app, _) = site().await;
    let browser = Browser::start().await.unwrap();
    open_board(&app, &browser).await;
    browser
        .goto(&format!("{}/board/#manage/devices", app.base))
        .await
        .unwrap();
    browser
        .wait_text("#manage-list", |t| t.contains("btn-1"))
        .await
        .unwrap();
    browser.click("#manage-new").await.unwrap();
    fill(&browser, &[("#mf-id", "bed-9"), ("#mf-elder_id", "e-1")]).await;
    save_form(&browser, "bed-9").await;
    let secret = browser
        .wait_text("#device-secret", |t| t.len() == 64)
        .await
        .unwrap();
    let panel = browser
        .find(".secret-panel")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(panel.contains("Shown this once"), "{panel}");

    app.remember_secret("bed-9", &secret);
    let mut bed = app.device("bed-9").await;
    bed.event("b-1", "bed.exit", json!({})).await;
    bed.flushed().await;
    assert_eq!(
        app.events("bed-9").await.len(),
        1,
        "heard with the board's secret"
    );

    // A new secret from the device's form, after a confirmation.
    browser
        .eval(
            "[...document.querySelectorAll('#manage-list tbody tr')]
               .find((r) => r.querySelector('th').textContent === 'bed-9')
               .querySelector('button').click();
             window.confirm = () => true;
             return null;",
        )
        .await
        .unwrap();
    browser
        .wait_text("#manage-form h3", |t| t.contains("bed-9"))
        .await
        .unwrap();
    browser.click("#device-rotate").await.unwrap();
    let fresh = browser
        .wait_text("#device-secret", |t| t.len() == 64 && t != secret)
        .await
        .unwrap();
    // The connection with the old secret is closed, and the device's
    // attempts to come back with it are refused.
    wait::until("the old secret refused", || async {
        (app.metric("dispatcher_broker_refused_total{reason=\"bad_credentials\"}")
            .await
            > 0.0)
            .then_some(())
    })
    .await;
    drop(bed);
    app.remember_secret("bed-9", &fresh);
    let mut bed = app.device("bed-9").await;
    bed.event("b-2", "bed.exit", json!({})).await;
    bed.flushed().await;
    assert_eq!(
        app.events("bed-9").await.len(),
        2,
        "heard with the new secret"
    );
    browser.assert_no_console_errors().await;
}

/// Names and notes are the users' text, shown as text: markup in an
/// elder's name, a steward's name or a note does not become markup on
/// the board, the incident page or the manage lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_in_names_and_notes_is_shown_as_text_everywhere_on_the_board() {
    const HOSTILE: &str =
        r#"<img src=x onerror="window.__pwned=1">"</td><script>window.__pwned=2</script>"#;
    let app = TestApp::spawn(Options::default()).await;
    let mut elder = elder_body("e-x", json!({}));
    elder["name"] = json!(format!("王{HOSTILE}"));
    elder["notes"] = json!(HOSTILE);
    elder["conditions"] = json!([HOSTILE]);
    app.post("/api/v1/elders", elder).await;
    app.register_device(json!({"id": "btn-x", "elder_id": "e-x", "kind": "call_button"}))
        .await;
    app.post(
        "/api/v1/stewards",
        json!({"id": "s-x", "name": format!("李{HOSTILE}"), "phone": "13900000101", "grid": "grid-1"}),
    )
    .await;
    app.post(
        "/api/v1/users",
        json!({"username": SUPERVISOR, "password": SUPERVISOR_PASSWORD, "role": "supervisor"}),
    )
    .await;
    let browser = Browser::start().await.unwrap();
    open_board(&app, &browser).await;
    let mut button = app.device("btn-x").await;
    let id = press(&app, &mut button, "call.pressed").await;

    let shown = browser
        .wait_text("#incidents", |t| t.contains("王<img"))
        .await
        .unwrap();
    assert!(shown.contains(HOSTILE), "{shown}");
    browser
        .goto(&format!("{}/board/#incident/{id}", app.base))
        .await
        .unwrap();
    browser
        .wait_text("#view-incident", |t| t.contains("王<img"))
        .await
        .unwrap();
    for (page, name) in [("elders", "王<img"), ("stewards", "李<img")] {
        browser
            .goto(&format!("{}/board/#manage/{page}", app.base))
            .await
            .unwrap();
        browser
            .wait_text("#manage-list", |t| t.contains(name))
            .await
            .unwrap();
    }
    let injected = browser
        .eval("return [window.__pwned ?? null, document.querySelectorAll('main img[src=x], main script').length];")
        .await
        .unwrap();
    assert_eq!(
        injected,
        json!([null, 0]),
        "markup from data ran or was parsed"
    );
    drop(button);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_shows_follow_ups_overdue_and_unassigned_and_the_supervisor_sends_someone() {
    let (app, steward) = site_with(Options {
        clock: Some(chrono::Utc::now()),
        ..Options::default()
    })
    .await;
    app.elder_with_device("e-2", "btn-2", "call_button", json!({}))
        .await;
    // s-1 goes and resolves e-1's call: their follow-up call.
    let mut one = app.device("btn-1").await;
    let first = press(&app, &mut one, "call.pressed").await;
    accept(&app, &first, "s-1", &steward).await;
    lifecycle(&app, &steward, &first, "arrive", None).await;
    lifecycle(
        &app,
        &steward,
        &first,
        "resolve",
        Some(json!({"outcome": "assisted"})),
    )
    .await;
    // e-2's is resolved by the admin before anyone took it: nobody holds
    // its follow-up.
    let mut two = app.device("btn-2").await;
    let second = press(&app, &mut two, "call.pressed").await;
    app.post(
        &format!("/api/v1/incidents/{second}/resolve"),
        json!({"outcome": "other", "notes": "the son called back"}),
    )
    .await;

    // A day and a minute later both are overdue (sessions end after 12 h:
    // log in after).
    app.clock
        .advance(chrono::Duration::hours(24) + chrono::Duration::minutes(1));
    app.settle().await;
    let browser = Browser::start().await.unwrap();
    open_board(&app, &browser).await;
    browser
        .wait_text("#followups .count", |t| {
            t == "2 open, 2 overdue, 1 need someone"
        })
        .await
        .unwrap();
    let nobody = browser
        .wait_text("#followups .follow-up.unassigned.overdue", |t| {
            t.contains("Needs someone") && t.contains("Overdue")
        })
        .await
        .unwrap();
    assert!(nobody.contains("Call"), "{nobody}");

    // Send s-1, with a reason.
    let row = "#followups .follow-up.unassigned";
    browser
        .eval(&format!(
            "const s = document.querySelector({}); s.value = 's-1'; return s.value",
            json!(format!("{row} select"))
        ))
        .await
        .unwrap();
    browser
        .find(&format!("{row} .fu-reason"))
        .await
        .unwrap()
        .send_keys("lives next door")
        .await
        .unwrap();
    browser.click(&format!("{row} button")).await.unwrap();
    browser
        .wait_text("#followups .count", |t| {
            t == "2 open, 2 overdue, 0 need someone"
        })
        .await
        .unwrap();
    let admin = app
        .login("admin", eldercare_tests::app::ADMIN_PASSWORD)
        .await;
    let (s, list) = app
        .call(
            Some(&admin),
            Method::GET,
            "/api/v1/follow-ups?elder_id=e-2",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list[0]["steward_id"], "s-1");
    let id = list[0]["id"].as_str().unwrap();
    let (_, detail) = app
        .call(
            Some(&admin),
            Method::GET,
            &format!("/api/v1/follow-ups/{id}"),
            None,
        )
        .await;
    assert_eq!(detail["reassignments"][0]["to_steward"], "s-1");
    assert_eq!(detail["reassignments"][0]["by"], "user:sup");
    assert_eq!(detail["reassignments"][0]["reason"], "lives next door");
    browser.assert_no_console_errors().await;
}

/// Sites larger than one community: a supervisor of one community sees
/// nothing of another. Two communities each have an elder with a pressed
/// button and a steward on duty; the east supervisor's board lists, maps
/// and counts only the east's, and a later press in the west does not
/// appear; the header says whose board it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_of_one_community_sees_nothing_of_another() {
    let app = TestApp::spawn(Options::default()).await;
    let (s, b) = app
        .call(
            Some(&app.admin),
            Method::PUT,
            "/api/v1/areas",
            Some(json!([
                {"grid": "east-1", "community": "east", "district": "d1"},
                {"grid": "west-1", "community": "west", "district": "d1"},
            ])),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for (elder, grid, lat, lon) in [
        ("e-east", "east-1", 29.6598, 91.1377),
        ("e-west", "west-1", 29.6502, 91.1201),
    ] {
        let mut body = elder_body(elder, json!({}));
        body["grid"] = json!(grid);
        body["lat"] = json!(lat);
        body["lon"] = json!(lon);
        app.post("/api/v1/elders", body).await;
        app.register_device(
            json!({"id": format!("btn-{elder}"), "elder_id": elder, "kind": "call_button"}),
        )
        .await;
    }
    app.steward("s-east", "east-1", 29.6603, 91.1381).await;
    app.steward("s-west", "west-1", 29.6507, 91.1205).await;
    app.post(
        "/api/v1/users",
        json!({"username": SUPERVISOR, "password": SUPERVISOR_PASSWORD, "role": "supervisor",
               "scope": "community:east"}),
    )
    .await;
    let mut east_button = app.device("btn-e-east").await;
    let mut west_button = app.device("btn-e-west").await;
    let east = press(&app, &mut east_button, "call.pressed").await;
    let west = press(&app, &mut west_button, "call.pressed").await;

    let browser = Browser::start().await.unwrap();
    open_board(&app, &browser).await;
    browser
        .wait_text("#scope", |t| t == "Community: east")
        .await
        .unwrap();
    // The list: the east's incident, and it alone.
    browser
        .wait_text(&format!("#incidents li.incident[data-id='{east}']"), |t| {
            t.contains("Elder e-east")
        })
        .await
        .unwrap();
    browser
        .wait_text("#roster", |t| t.contains("Steward s-east"))
        .await
        .unwrap();
    let board = board_seen(&browser).await;
    assert_eq!(board["incidents"], json!([east]), "{board}");
    let text = board["text"].as_str().unwrap();
    assert!(
        !text.contains("e-west") && !text.contains("s-west"),
        "{text}"
    );
    // The map: one home, one steward, one incident.
    wait::until("the map to draw the east only", || async {
        let b = board_seen(&browser).await;
        (b["map"] == json!(["1", "1", "1"])).then_some(())
    })
    .await;

    // A new press in the west, and a change of its incident: nothing
    // reaches this board (the site's list has both).
    let (s, b) = app
        .call(
            Some(&app.admin),
            Method::POST,
            &format!("/api/v1/incidents/{west}/cancel"),
            Some(json!({"reason": "tested by phone"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let again = press(&app, &mut west_button, "call.pressed").await;
    assert_eq!(app.incidents("status=dispatching").await.len(), 2);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let board = board_seen(&browser).await;
    assert_eq!(board["incidents"], json!([east]), "{board}");
    assert!(!board["text"].as_str().unwrap().contains("e-west"));
    assert_eq!(board["map"], json!(["1", "1", "1"]), "{board}");

    // The devices page: the east's button only.
    browser.click("nav a[data-view=devices]").await.unwrap();
    browser
        .wait_text("#view-devices", |t| t.contains("btn-e-east"))
        .await
        .unwrap();
    let devices = browser
        .eval("return document.getElementById('view-devices').innerText;")
        .await
        .unwrap();
    assert!(
        !devices.as_str().unwrap().contains("btn-e-west"),
        "{devices}"
    );
    // The west's incident by its address: not found.
    browser
        .goto(&format!("{}/board/#incident/{again}", app.base))
        .await
        .unwrap();
    browser
        .wait_text("#view-incident", |t| !t.is_empty())
        .await
        .unwrap();
    let page = browser
        .eval("return document.getElementById('view-incident').innerText;")
        .await
        .unwrap();
    assert!(!page.as_str().unwrap().contains("e-west"), "{page}");
    browser.assert_no_console_errors_but(&["404"]).await;
}

/// What the board shows: the incidents listed, the page's text, and what
/// the map drew (homes, stewards, incidents).
async fn board_seen(browser: &Browser) -> Value {
    browser
        .eval(
            "const m = document.getElementById('map').dataset;
             return {
               incidents: [...document.querySelectorAll('#incidents li.incident')].map(li => li.dataset.id),
               text: document.querySelector('main').innerText,
               map: [m.homes, m.stewards, m.incidents],
             };",
        )
        .await
        .unwrap()
}

/// An admin places a grid in a community from the board's areas page; a
/// supervisor of that community then sees the grid's elder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_places_a_grid_in_a_community_on_the_areas_page() {
    let (app, _) = site().await;
    let browser = Browser::start().await.unwrap();
    browser
        .log_in(&app.base, "admin", eldercare_tests::app::ADMIN_PASSWORD)
        .await
        .unwrap();
    browser.wait_path("/board/").await.unwrap();
    browser
        .wait_text("#scope", |t| t == "Whole site")
        .await
        .unwrap();
    browser
        .goto(&format!("{}/board/#manage/areas", app.base))
        .await
        .unwrap();
    browser.click("#manage-new").await.unwrap();
    fill(
        &browser,
        &[
            ("#mf-grid", "grid-1"),
            ("#mf-community", "Tama"),
            ("#mf-district", "Chengguan"),
        ],
    )
    .await;
    save_form(&browser, "Tama").await;
    assert_eq!(
        app.get("/api/v1/areas").await,
        json!([{"grid": "grid-1", "community": "Tama", "district": "Chengguan"}])
    );
    app.post(
        "/api/v1/users",
        json!({"username": "tama", "password": SUPERVISOR_PASSWORD, "role": "supervisor",
               "scope": "community:Tama"}),
    )
    .await;
    let token = app.login("tama", SUPERVISOR_PASSWORD).await;
    let (s, elders) = app
        .call(Some(&token), Method::GET, "/api/v1/elders", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(elders[0]["id"], "e-1", "{elders}");
    browser.assert_no_console_errors().await;
}
