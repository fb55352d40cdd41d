//! The steward app (`/app/`) in a real browser on a phone-sized window,
//! against the real server and the real (embedded) broker: a press
//! published over MQTT rings on the steward's phone, and what they tap
//! changes the incident in the API.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eldercare_tests::app::{Options, TestApp, elder_body};
use eldercare_tests::browser::Browser;
use serde_json::{Value, json};

/// The home (see `elder_body`) and a steward about 100 m north of it
/// (130 m of travel, with the detour factor).
const HOME: (f64, f64) = (29.6598, 91.1377);
const NEAR: (f64, f64) = (29.6607, 91.1377);

/// An elder with a Tibetan and Chinese name, as the screenshots show.
const NAME: &str = "ཚེ་རིང་སྒྲོལ་མ 次仁卓玛";

async fn app_with(env: &[(&str, &str)]) -> TestApp {
    TestApp::spawn(Options {
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Options::default()
    })
    .await
}

/// Elder `id` (named [`NAME`]) with a call button `button`.
async fn elder(app: &TestApp, id: &str, button: &str) {
    elder_with(app, id, button, json!({})).await;
}

/// The same, with per-elder limits (priority overrides).
async fn elder_with(app: &TestApp, id: &str, button: &str, limits: Value) {
    let mut body = elder_body(id, limits);
    body["name"] = json!(NAME);
    body["notes"] = json!("Key under the flowerpot; dog is friendly.");
    body["contacts"] = json!([{"name": "扎西 Tashi", "relation": "son", "phone": "138 0000 1234"}]);
    app.post("/api/v1/elders", body).await;
    app.post(
        "/api/v1/devices",
        json!({"id": button, "elder_id": id, "kind": "call_button", "heartbeat_s": 60}),
    )
    .await;
}

/// A steward with a login, off duty and nowhere: the app does the rest.
async fn steward_login(app: &TestApp, id: &str) -> String {
    app.post(
        "/api/v1/stewards",
        json!({"id": id, "name": format!("Steward {id}"), "phone": "13900000101",
               "grid": "grid-1", "skills": ["first_aid"], "languages": ["bo", "zh"]}),
    )
    .await;
    let password = format!("{id}-password");
    app.post(
        "/api/v1/users",
        json!({"username": id, "password": password, "role": "steward", "steward_id": id}),
    )
    .await;
    password
}

/// A press of `button`; returns the incident id once it is offered.
async fn press(app: &TestApp, button: &str, elder: &str) -> String {
    let mut device = app.device(button).await;
    device
        .event(&uuid::Uuid::new_v4().to_string(), "call.pressed", json!({}))
        .await;
    device.flushed().await;
    let open = app
        .wait_incidents(&format!("elder_id={elder}&status=dispatching"), 1)
        .await;
    open[0]["id"].as_str().unwrap().to_owned()
}

/// The phone's GPS says the steward is at `at`, and the site may ask.
async fn allow_location(browser: &Browser, origin: &str, at: (f64, f64)) {
    browser
        .cdp(
            "Browser.grantPermissions",
            json!({"origin": origin, "permissions": ["geolocation"]}),
        )
        .await
        .unwrap();
    browser
        .cdp(
            "Emulation.setGeolocationOverride",
            json!({"latitude": at.0, "longitude": at.1, "accuracy": 12}),
        )
        .await
        .unwrap();
}

/// A 360×740 phone (the harness emulates widths desktop Chromium refuses).
async fn phone(lang: &str) -> Browser {
    Browser::start_sized(360, 740, lang).await.unwrap()
}

/// A phone in `lang` whose GPS puts steward s-1 near the elders, signed
/// in at `origin` and showing the app.
async fn signed_in_phone(lang: &str, origin: &str) -> Browser {
    let browser = phone(lang).await;
    browser.goto(&format!("{origin}/login")).await.unwrap();
    allow_location(&browser, origin, NEAR).await;
    browser.log_in(origin, "s-1", "s-1-password").await.unwrap();
    browser.wait_path("/app/").await.unwrap();
    browser
}

/// Waits until no element matches `css`.
async fn wait_gone(browser: &Browser, css: &str) {
    let deadline = tokio::time::Instant::now() + eldercare_tests::browser::PAGE_PATIENCE;
    loop {
        let n = browser
            .eval(&format!(
                "return document.querySelectorAll({}).length",
                json!(css)
            ))
            .await
            .unwrap();
        if n == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{css} is still on the page"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steward_goes_on_duty_is_offered_a_press_live_accepts_arrives_and_resolves() {
    let app = app_with(&[]).await;
    elder(&app, "e-1", "btn-1").await;
    let password = steward_login(&app, "s-1").await;
    let browser = phone("en-US").await;

    browser.log_in(&app.base, "s-1", &password).await.unwrap();
    browser.wait_path("/app/").await.unwrap();
    allow_location(&browser, &app.base, NEAR).await;

    // Off duty until they say so; going on duty shares the phone's position.
    browser
        .wait_text("#duty-state", |t| t.contains("Off duty"))
        .await
        .unwrap();
    browser
        .wait_text("#duty", |t| t == "Go on duty")
        .await
        .unwrap();
    browser.click("#duty").await.unwrap();
    browser
        .wait_text("#duty-state", |t| t.contains("On duty"))
        .await
        .unwrap();
    eldercare_tests::wait::until("the phone's location on the server", || async {
        let s = app.get("/api/v1/stewards/s-1").await;
        (s["on_duty"] == true && (s["lat"].as_f64()? - NEAR.0).abs() < 1e-6).then_some(())
    })
    .await;
    browser
        .wait_text("#location", |t| t.contains("Location shared"))
        .await
        .unwrap();

    // A press over MQTT rings as a card with the elder's essentials.
    let id = press(&app, "btn-1", "e-1").await;
    let card = browser
        .wait_text("#offers .offer", |t| t.contains(NAME))
        .await
        .unwrap();
    for expected in [
        "Urgent",
        "Call button pressed",
        "left to answer",
        "130 m away",
        "hypertension",
        "nifedipine",
        "fall, wandering",
        "Lives alone",
        "Key under the flowerpot",
        "塔玛社区",
    ] {
        assert!(card.contains(expected), "{expected:?} not in {card:?}");
    }
    let links = browser
        .eval("return [...document.querySelectorAll('#offers a')].map(a => a.getAttribute('href'))")
        .await
        .unwrap();
    let links: Vec<&str> = links
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        links
            .iter()
            .any(|l| l.starts_with(&format!("geo:{},{}", HOME.0, HOME.1))),
        "{links:?}"
    );
    assert!(links.contains(&"tel:13800001234"), "{links:?}");

    // Accept: the card becomes the incident, acknowledged in the API.
    browser.click("#offers .offer .accept").await.unwrap();
    browser.find("#incidents .incident .arrive").await.unwrap();
    wait_gone(&browser, "#offers .offer").await;
    let d = app.incident(&id).await;
    assert_eq!(d["status"], "acknowledged", "{d}");
    assert_eq!(d["steward_id"], "s-1", "{d}");

    // A reload restores it from the stream's snapshot, elder and all.
    browser.client.refresh().await.unwrap();
    browser
        .wait_text("#incidents .incident", |t| {
            t.contains(NAME) && t.contains("I have arrived") && t.contains("hypertension")
        })
        .await
        .unwrap();

    browser.click("#incidents .incident .arrive").await.unwrap();
    browser
        .find("#incidents .incident[data-status=on_site]")
        .await
        .unwrap();
    app.wait_incident(&id, "on site", |d| d["status"] == "on_site")
        .await;

    // Resolving needs an outcome; with one and a note it closes.
    browser.click("#incidents .resolve-submit").await.unwrap();
    browser
        .wait_text(".outcome-error", |t| t.contains("Choose what happened"))
        .await
        .unwrap();
    browser
        .click("#incidents input[value=false_alarm]")
        .await
        .unwrap();
    browser
        .find("#incidents textarea")
        .await
        .unwrap()
        .send_keys("Pressed by mistake while cleaning")
        .await
        .unwrap();
    browser.click("#incidents .resolve-submit").await.unwrap();
    browser
        .wait_text("#notice-text", |t| t.contains("Incident closed"))
        .await
        .unwrap();
    wait_gone(&browser, "#incidents .incident").await;
    let d = app.incident(&id).await;
    assert_eq!(d["status"], "resolved", "{d}");
    assert_eq!(d["outcome"], "false_alarm", "{d}");
    assert_eq!(d["notes"], "Pressed by mistake while cleaning", "{d}");
    browser.assert_no_console_errors().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_offer_and_an_expired_one_leave_the_screen_and_a_blocked_location_is_explained()
{
    let app = app_with(&[("ELDERCARE__DISPATCH__OFFER_TIMEOUT_S__URGENT", "10")]).await;
    // e-1's call is routine (90 s to answer, time enough to decline on a
    // loaded machine); e-2's urgent call expires after 10 s.
    elder_with(
        &app,
        "e-1",
        "btn-1",
        json!({"priorities": {"call": "routine"}}),
    )
    .await;
    elder(&app, "e-2", "btn-2").await;
    // On duty with a known position, set before the phone is used.
    app.steward("s-1", "grid-1", NEAR.0, NEAR.1).await;
    let browser = phone("en-US").await;
    browser.goto(&format!("{}/login", app.base)).await.unwrap();
    browser
        .cdp(
            "Browser.setPermission",
            json!({"origin": app.base, "permission": {"name": "geolocation"}, "setting": "denied"}),
        )
        .await
        .unwrap();
    browser
        .log_in(&app.base, "s-1", "s-1-password")
        .await
        .unwrap();
    browser.wait_path("/app/").await.unwrap();
    browser
        .wait_text("#location", |t| t.contains("Location is blocked"))
        .await
        .unwrap();
    browser
        .wait_text("#empty", |t| t.contains("No offers now"))
        .await
        .unwrap();

    // Declined: the card goes, and the API has the decline.
    let first = press(&app, "btn-1", "e-1").await;
    // By keyboard: Enter on the focused button, as a phone's keyboard or a
    // switch would.
    browser
        .find("#offers .offer .decline")
        .await
        .unwrap()
        .send_keys("\u{E007}")
        .await
        .unwrap();
    wait_gone(&browser, "#offers .offer").await;
    let d = app.incident(&first).await;
    assert_eq!(d["offers"][0]["response"], "declined", "{d}");

    // Not answered: when the server lets it expire, the card goes with the reason.
    let second = press(&app, "btn-2", "e-2").await;
    browser
        .wait_text("#offers .offer", |t| t.contains("left to answer"))
        .await
        .unwrap();
    browser
        .wait_text("#notice-text", |t| t.contains("Offer expired"))
        .await
        .unwrap();
    wait_gone(&browser, "#offers .offer").await;
    let d = app.incident(&second).await;
    assert_eq!(d["offers"][0]["response"], "expired", "{d}");

    // Critical: offered to two stewards at once; the other one is first.
    // (The first two are closed, so nothing else is offered to them.)
    for id in [&first, &second] {
        app.post(
            &format!("/api/v1/incidents/{id}/cancel"),
            json!({"reason": "test"}),
        )
        .await;
    }
    let other = app.steward("s-2", "grid-1", NEAR.0, NEAR.1).await;
    elder_with(
        &app,
        "e-3",
        "btn-3",
        json!({"priorities": {"call": "critical"}}),
    )
    .await;
    let third = press(&app, "btn-3", "e-3").await;
    browser
        .wait_text("#offers .offer", |t| t.contains("Critical"))
        .await
        .unwrap();
    let (status, body) = app
        .call(
            Some(&other),
            reqwest::Method::POST,
            &format!("/api/v1/incidents/{third}/accept"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    browser
        .wait_text("#notice-text", |t| t.contains("another steward took it"))
        .await
        .unwrap();
    wait_gone(&browser, "#offers .offer").await;
    browser.assert_no_console_errors().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chinese_on_a_360_px_phone_nothing_overflows_the_language_switches_and_it_loads_light() {
    let app = app_with(&[]).await;
    elder(&app, "e-1", "btn-1").await;
    app.steward("s-1", "grid-1", NEAR.0, NEAR.1).await;
    let browser = signed_in_phone("zh-CN", &app.base).await;
    browser
        .wait_text("#duty-state", |t| t.contains("值班中"))
        .await
        .unwrap();

    // What the first load of the app cost, before anything else is fetched.
    let sizes = browser
        .eval(
            "const all = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
             return { transfer: all.reduce((n, e) => n + e.transferSize, 0),
                      decoded: all.reduce((n, e) => n + e.decodedBodySize, 0),
                      count: all.length };",
        )
        .await
        .unwrap();
    assert!(sizes["transfer"].as_f64().unwrap() < 300_000.0, "{sizes}");
    assert!(sizes["decoded"].as_f64().unwrap() < 300_000.0, "{sizes}");

    press(&app, "btn-1", "e-1").await;
    browser
        .wait_text("#offers .offer", |t| t.contains(NAME) && t.contains("紧急"))
        .await
        .unwrap();
    browser
        .wait_text("#offers .accept", |t| t == "接受")
        .await
        .unwrap();
    assert_eq!(browser.eval("return innerWidth").await.unwrap(), 360);
    let overflow = browser
        .eval("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        .await
        .unwrap();
    assert_eq!(overflow, 0, "the page is wider than the phone");
    let narrow = browser
        .eval(
            "return [...document.querySelectorAll('button, a')].filter(b => b.offsetParent && b.getBoundingClientRect().height < 44).map(b => b.outerHTML)",
        )
        .await
        .unwrap();
    assert_eq!(narrow, json!([]), "targets smaller than 44 px");

    browser.click("#lang").await.unwrap();
    browser
        .wait_text("#offers .accept", |t| t == "Accept")
        .await
        .unwrap();
    browser
        .wait_text("#duty-state", |t| t.contains("On duty"))
        .await
        .unwrap();
    assert_eq!(
        browser
            .eval("return document.documentElement.lang")
            .await
            .unwrap(),
        "en"
    );
    browser.assert_no_console_errors().await;
}

/// A TCP relay between the phone and the server whose line the test can
/// cut: every open connection dropped and new ones refused, as when a
/// phone loses its signal.
struct Line {
    addr: String,
    down: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Line {
    async fn to(server: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let down = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (d, o) = (down.clone(), open.clone());
        tokio::spawn(async move {
            while let Ok((mut phone, _)) = listener.accept().await {
                if d.load(Ordering::SeqCst) {
                    continue; // dropped: the phone sees a failed request
                }
                let relay = tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(server).await {
                        let _ = tokio::io::copy_bidirectional(&mut phone, &mut up).await;
                    }
                });
                o.lock().unwrap().push(relay.abort_handle());
            }
        });
        Self { addr, down, open }
    }

    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.drop_open();
    }

    /// Drops the open connections but lets new ones through.
    fn drop_open(&self) {
        for c in self.open.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_line_drops_the_app_says_so_and_back_online_it_rings_for_what_it_missed() {
    let app = app_with(&[]).await;
    elder(&app, "e-1", "btn-1").await;
    app.steward("s-1", "grid-1", NEAR.0, NEAR.1).await;
    let line = Line::to(app.addr()).await;
    let browser = signed_in_phone("en-US", &line.addr).await;
    browser
        .wait_text("#empty", |t| t.contains("No offers now"))
        .await
        .unwrap();

    line.cut();
    browser
        .wait_text("#offline", |t| t.contains("Offline"))
        .await
        .unwrap();
    // The press happens while the phone is cut off...
    press(&app, "btn-1", "e-1").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        browser
            .eval("return document.querySelectorAll('#offers .offer').length")
            .await
            .unwrap(),
        0,
        "nothing can arrive over a cut line"
    );
    // ...and rings once the stream reconnects by itself.
    line.restore();
    browser
        .wait_text("#offers .offer", |t| t.contains(NAME))
        .await
        .unwrap();
    browser
        .wait_text("#offline", |t| t.is_empty())
        .await
        .unwrap();
    // Requests the cut line failed are logged by the browser; they are
    // the outage, not the page.
    browser.assert_no_console_errors_but(&["net::ERR_"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_an_offer_that_expired_unseen_says_so_plainly_and_removes_the_card() {
    let app = app_with(&[("ELDERCARE__DISPATCH__OFFER_TIMEOUT_S__URGENT", "8")]).await;
    elder(&app, "e-1", "btn-1").await;
    app.steward("s-1", "grid-1", NEAR.0, NEAR.1).await;
    let line = Line::to(app.addr()).await;
    let browser = signed_in_phone("en-US", &line.addr).await;
    browser
        .wait_text("#empty", |t| t.contains("No offers now"))
        .await
        .unwrap();
    let id = press(&app, "btn-1", "e-1").await;
    browser.find("#offers .offer .accept").await.unwrap();

    // The stream stops (requests still go through), so the phone never
    // hears that the offer expired.
    browser.cdp("Network.enable", json!({})).await.unwrap();
    browser
        .cdp(
            "Network.setBlockedURLs",
            json!({"urls": ["*/api/v1/stream*"]}),
        )
        .await
        .unwrap();
    line.drop_open();
    app.wait_incident(&id, "the offer to expire", |d| {
        d["offers"][0]["response"] == "expired"
    })
    .await;

    browser.click("#offers .offer .accept").await.unwrap();
    browser
        .wait_text("#notice-text", |t| {
            t.contains("This offer expired before you answered")
        })
        .await
        .unwrap();
    wait_gone(&browser, "#offers .offer").await;
    // The browser logs the 409 and the blocked stream; nothing else.
    browser
        .assert_no_console_errors_but(&["net::ERR_", "409 (Conflict)"])
        .await;
}

/// An offer on a 360×740 phone in each language, written to
/// docs/screenshots/app-{en,zh}.png; not a test of anything, so not in
/// the test run: `cargo test -p eldercare-tests --test web_app --
/// --ignored screenshots`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes docs/screenshots; run with --ignored"]
async fn screenshots_of_an_offer_on_a_phone() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    for (lang, file) in [("en-US", "app-en.png"), ("zh-CN", "app-zh.png")] {
        let app = app_with(&[]).await;
        elder(&app, "e-1", "btn-1").await;
        app.steward("s-1", "grid-1", NEAR.0, NEAR.1).await;
        let browser = signed_in_phone(lang, &app.base).await;
        browser
            .wait_text("#location", |t| !t.is_empty())
            .await
            .unwrap();
        press(&app, "btn-1", "e-1").await;
        browser.find("#offers .offer").await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        std::fs::write(dir.join(file), browser.screenshot().await.unwrap()).unwrap();
    }
}

/// An incident of `elder` (pressed on `button`), assigned to s-1 and
/// resolved by the supervisor: s-1's follow-up call.
async fn resolved_for_s1(app: &TestApp, button: &str, elder: &str) -> String {
    let id = press(app, button, elder).await;
    app.post(
        &format!("/api/v1/incidents/{id}/assign"),
        json!({"steward_id": "s-1"}),
    )
    .await;
    app.post(
        &format!("/api/v1/incidents/{id}/resolve"),
        json!({"outcome": "assisted", "notes": "helped back to bed"}),
    )
    .await;
    let list = app
        .get(&format!("/api/v1/follow-ups?elder_id={elder}"))
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["steward_id"], "s-1");
    list[0]["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_360_px_phone_a_steward_completes_one_follow_up_and_hands_back_another() {
    let app = app_with(&[]).await;
    elder(&app, "e-1", "btn-1").await;
    elder(&app, "e-2", "btn-2").await;
    app.steward("s-1", "grid-1", NEAR.0, NEAR.1).await;
    let first = resolved_for_s1(&app, "btn-1", "e-1").await;
    let second = resolved_for_s1(&app, "btn-2", "e-2").await;

    let browser = signed_in_phone("en-US", &app.base).await;
    let card = browser
        .wait_text(&format!("[data-follow-up='{first}']"), |t| t.contains(NAME))
        .await
        .unwrap();
    for expected in [
        "Follow-up call",
        "Due by",
        "How is the elder?",
        "138 0000 1234",
    ] {
        assert!(card.contains(expected), "{expected:?} not in {card:?}");
    }
    browser
        .wait_text(".fu-title", |t| t.contains("My follow-ups (2)"))
        .await
        .unwrap();
    // Big targets, and nothing wider than the phone.
    assert_eq!(browser.eval("return innerWidth").await.unwrap(), 360);
    let overflow = browser
        .eval("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        .await
        .unwrap();
    assert_eq!(overflow, 0, "the page is wider than the phone");
    let small = browser
        .eval(
            "return [...document.querySelectorAll('#followups button')].filter(b => b.offsetParent && b.getBoundingClientRect().height < 48).map(b => b.outerHTML)",
        )
        .await
        .unwrap();
    assert_eq!(small, json!([]), "follow-up buttons lower than 48 px");

    // A note, then one tap on the outcome.
    let note = browser
        .find(&format!("[data-follow-up='{first}'] textarea"))
        .await
        .unwrap();
    note.send_keys("Eating again, daughter visiting")
        .await
        .unwrap();
    browser
        .click(&format!(
            "[data-follow-up='{first}'] .fu-outcome[data-outcome='well']"
        ))
        .await
        .unwrap();
    wait_gone(&browser, &format!("[data-follow-up='{first}']")).await;
    browser
        .wait_text("#notice-text", |t| t.contains("Follow-up recorded"))
        .await
        .unwrap();
    let done = app.get(&format!("/api/v1/follow-ups/{first}")).await;
    assert_eq!(done["follow_up"]["status"], "done");
    assert_eq!(done["follow_up"]["outcome"], "well");
    assert_eq!(done["follow_up"]["note"], "Eating again, daughter visiting");
    assert_eq!(done["follow_up"]["done_by"], "steward:s-1");

    // The other: "I cannot go", which asks why before it hands it back.
    let other = format!("[data-follow-up='{second}']");
    browser.click(&format!("{other} .fu-cannot")).await.unwrap();
    browser
        .click(&format!("{other} .fu-back-confirm"))
        .await
        .unwrap();
    browser
        .wait_text(&format!("{other} .error-text"), |t| t.contains("Say why"))
        .await
        .unwrap();
    let reason = browser
        .find(&format!("{other} .fu-back input"))
        .await
        .unwrap();
    reason.send_keys("At the clinic all day").await.unwrap();
    browser
        .click(&format!("{other} .fu-back-confirm"))
        .await
        .unwrap();
    wait_gone(&browser, &other).await;
    let back = app.get(&format!("/api/v1/follow-ups/{second}")).await;
    assert_eq!(back["follow_up"]["status"], "open");
    assert_eq!(back["follow_up"]["steward_id"], Value::Null);
    assert_eq!(back["reassignments"][0]["reason"], "At the clinic all day");
    browser.assert_no_console_errors().await;
}
