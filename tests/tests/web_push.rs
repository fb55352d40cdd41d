//! Alerts on a locked phone, in a real browser: the steward app installs
//! its service worker, subscribes to Web Push, and the real dispatcher
//! pushes an offer (VAPID, RFC 8291) to a push service of the test's own
//! (`push_service.rs`: Google's cannot be reached from here). The test
//! hands what arrived to the worker as the browser would
//! (`ServiceWorker.deliverPushMessage`), checks the notification, answers
//! it as a tap on Accept would, and finally opens the app with the
//! dispatcher stopped.
//!
//! The browser's own `PushManager.subscribe` would ask Google for an
//! endpoint; the test replaces it in the page (before any script runs)
//! with one that returns the local push service's subscription, with
//! real keys.
//!
//! Beside that journey: the worker with payloads made up here (a late
//! offer, a close, a refused answer) and logging out; the manifest and
//! icons an install needs; an SMS link on a logged-out phone; and the
//! board's view of who can be reached and how each offer was tried.

use std::time::Duration;

use dispatcher::notify::token::Purpose;
use eldercare_tests::app::{Options, TestApp, elder_body};
use eldercare_tests::browser::Browser;
use eldercare_tests::cdp::Cdp;
use eldercare_tests::push_service::PushService;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The home (see `elder_body`) and a steward about 100 m north of it.
const NEAR: (f64, f64) = (29.6607, 91.1377);
const NAME: &str = "次仁卓玛 Tsering Drolma";

async fn push_app() -> TestApp {
    TestApp::spawn(Options {
        env: vec![("ELDERCARE__NOTIFY__PUSH__ALLOW_HTTP".into(), "true".into())],
        ..Options::default()
    })
    .await
}

/// Elder `e-1` named [`NAME`] with call button `btn-1`.
async fn elder(app: &TestApp) {
    let mut body = elder_body("e-1", json!({}));
    body["name"] = json!(NAME);
    app.post("/api/v1/elders", body).await;
    app.post(
        "/api/v1/devices",
        json!({"id": "btn-1", "elder_id": "e-1", "kind": "call_button", "heartbeat_s": 60}),
    )
    .await;
}

/// A press of `btn-1`; returns the incident id once it is offered.
async fn press(app: &TestApp) -> String {
    let mut device = app.device("btn-1").await;
    device
        .event(&uuid::Uuid::new_v4().to_string(), "call.pressed", json!({}))
        .await;
    device.flushed().await;
    let open = app
        .wait_incidents("elder_id=e-1&status=dispatching", 1)
        .await;
    open[0]["id"].as_str().unwrap().to_owned()
}

/// A 360×740 phone that knows where it is and has not been asked about
/// notifications yet, as a new phone (headless Chromium would refuse them).
async fn phone(origin: &str) -> (Browser, Cdp) {
    let browser = Browser::start_sized(360, 740, "en-US").await.unwrap();
    let cdp = Cdp::connect(&browser).await.unwrap();
    cdp.grant_permissions(origin, &["geolocation"])
        .await
        .unwrap();
    cdp.send(
        None,
        "Browser.setPermission",
        json!({"origin": origin, "permission": {"name": "notifications"}, "setting": "prompt"}),
    )
    .await
    .unwrap();
    browser
        .cdp(
            "Emulation.setGeolocationOverride",
            json!({"latitude": NEAR.0, "longitude": NEAR.1, "accuracy": 12}),
        )
        .await
        .unwrap();
    (browser, cdp)
}

/// Replaces `PushManager.prototype.subscribe` and `getSubscription` in
/// every page from now on: a subscription to the local push service,
/// kept (like the browser's) across reloads until unsubscribed.
async fn fake_push_manager(browser: &Browser, subscription: &Value) {
    let source = format!(
        r#"(() => {{
  const sub = {subscription};
  const KEY = 'test.push.subscribed';
  const bytes = (s) => Uint8Array.from(
    atob(s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4)),
    (c) => c.charCodeAt(0)).buffer;
  const fake = () => ({{
    endpoint: sub.endpoint,
    expirationTime: sub.expirationTime ?? null,
    options: {{ userVisibleOnly: true, applicationServerKey: null }},
    getKey: (name) => bytes(sub.keys[name]),
    toJSON: () => JSON.parse(JSON.stringify(sub)),
    unsubscribe: async () => {{ localStorage.removeItem(KEY); return true; }},
  }});
  PushManager.prototype.subscribe = async function (options) {{
    const key = new Uint8Array(options.applicationServerKey);
    localStorage.setItem('test.push.key', btoa(String.fromCharCode(...key))
      .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''));
    localStorage.setItem(KEY, '1');
    return fake();
  }};
  PushManager.prototype.getSubscription = async function () {{
    return localStorage.getItem(KEY) ? fake() : null;
  }};
}})();"#
    );
    browser
        .cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": source }),
        )
        .await
        .unwrap();
}

/// The worker's notifications with `tag` ('' for all), as plain objects.
fn notifications(tag: &str) -> String {
    format!(
        "self.registration.getNotifications({{tag: {tag}}}).then(ns => ns.map(n => ({{
            title: n.title, body: n.body, tag: n.tag, requireInteraction: n.requireInteraction,
            silent: n.silent, actions: n.actions.map(a => a.action), data: n.data }})))",
        tag = json!(tag)
    )
}

/// The page and its service worker, as the DevTools protocol reaches them.
struct Worker<'a> {
    cdp: &'a Cdp,
    page: String,
    registration: String,
    origin: String,
}

impl<'a> Worker<'a> {
    async fn of(cdp: &'a Cdp, origin: &str) -> Self {
        let page = cdp.attach("page", &format!("{origin}/app/")).await.unwrap();
        let registration = cdp
            .service_worker(&page, &format!("{origin}/app/"))
            .await
            .unwrap();
        Self {
            cdp,
            page,
            registration,
            origin: origin.to_owned(),
        }
    }

    async fn eval(&self, expression: &str) -> Value {
        self.cdp
            .evaluate_in_worker(
                &self.page,
                &format!("{}/app/", self.origin),
                &format!("{}/app/sw.js", self.origin),
                expression,
            )
            .await
            .unwrap()
    }

    async fn push(&self, payload: &Value) {
        self.cdp
            .deliver_push(
                &self.page,
                &self.origin,
                &self.registration,
                &payload.to_string(),
            )
            .await
            .unwrap();
    }

    /// Waits until the notifications with `tag` satisfy `ok`.
    async fn wait_notifications(&self, tag: &str, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + eldercare_tests::browser::PAGE_PATIENCE;
        loop {
            let shown = self.eval(&notifications(tag)).await;
            let shown = shown.as_array().cloned().unwrap_or_default();
            if ok(&shown) {
                return shown;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "notifications for {tag:?}: {shown:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_pushed_to_a_locked_phone_rings_is_accepted_from_the_notification_and_the_app_opens_offline()
 {
    let push = PushService::start().await;
    // This phone's subscription on the local push service, with real keys.
    let subscription = push.subscription();
    let app = push_app().await;
    elder(&app).await;
    app.steward("s-1", "grid-1", NEAR.0, NEAR.1).await;
    let (browser, cdp) = phone(&app.base).await;
    fake_push_manager(&browser, &subscription).await;

    browser
        .log_in(&app.base, "s-1", "s-1-password")
        .await
        .unwrap();
    browser.wait_path("/app/").await.unwrap();
    browser
        .wait_text("#empty", |t| t.contains("enable alerts below"))
        .await
        .unwrap();

    // Alerts need a tap (the browser asks for the permission only from
    // one); the steward says yes to the browser's question.
    browser
        .wait_text("#push .push-state", |t| t.contains("Alerts are off"))
        .await
        .unwrap();
    cdp.grant_permissions(&app.base, &["geolocation", "notifications"])
        .await
        .unwrap();
    browser.click("#push .push-enable").await.unwrap();
    browser
        .wait_text("#push .push-state", |t| {
            t.contains("Alerts are on") && t.contains("locked")
        })
        .await
        .unwrap();
    browser
        .wait_text("#empty", |t| t.contains("even when it is locked"))
        .await
        .unwrap();
    // Subscribed with the server's key, and the server has this phone.
    let key = app.get("/api/v1/push/key").await["public_key"].clone();
    assert_eq!(
        browser
            .eval("return localStorage.getItem('test.push.key')")
            .await
            .unwrap(),
        key
    );
    let steward = app.login("s-1", "s-1-password").await;
    let (status, list) = app
        .call(
            Some(&steward),
            Method::GET,
            "/api/v1/push/subscriptions",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["endpoint"], subscription["endpoint"]);
    assert_eq!(list[0]["lang"], "en");
    // Lock-screen texts follow the app's language: switching tells the server.
    for lang in ["zh", "en"] {
        browser.click("#lang").await.unwrap();
        eldercare_tests::wait::until(&format!("the subscription in {lang}"), || async {
            let (_, list) = app
                .call(
                    Some(&steward),
                    Method::GET,
                    "/api/v1/push/subscriptions",
                    None,
                )
                .await;
            (list[0]["lang"] == lang).then_some(())
        })
        .await;
    }

    let worker = Worker::of(&cdp, &app.base).await;

    // A press: the dispatcher pushes the offer, without the elder's health details.
    let id = press(&app).await;
    let tag = format!("incident-{id}");
    let pushed = push
        .wait_for("the offer", |r| {
            r.payload["type"] == "offer" && r.payload["incident_id"] == id.as_str()
        })
        .await;
    assert_eq!(
        pushed.vapid_key,
        key.as_str().unwrap(),
        "signed with the key the app subscribed with"
    );
    assert_eq!(pushed.urgency.as_deref(), Some("high"));
    let offer = pushed.payload;
    let text = offer.to_string();
    for private in ["hypertension", "nifedipine", "13800001234"] {
        assert!(!text.contains(private), "{private} in {text}");
    }
    assert_eq!(offer["tag"], tag.as_str());

    // Handed to the worker as the browser would: a ringing notification
    // with Accept and Decline.
    worker.push(&offer).await;
    let shown = worker.wait_notifications(&tag, |n| n.len() == 1).await;
    assert_eq!(shown[0]["title"], offer["title"], "{shown:?}");
    assert_eq!(shown[0]["body"], offer["body"], "{shown:?}");
    assert_eq!(
        shown[0]["actions"],
        json!(["accept", "decline"]),
        "{shown:?}"
    );
    assert_eq!(shown[0]["requireInteraction"], true, "{shown:?}");

    // Accept, as a tap on the notification's button: the server agrees,
    // and the open app goes to the incident.
    let answer = worker
        .eval(&format!(
            "self.registration.getNotifications({{tag: {}}}).then(([n]) => handleNotificationClick(n, 'accept'))",
            json!(tag)
        ))
        .await;
    assert_eq!(answer["ok"], true, "{answer}");
    let d = app
        .wait_incident(&id, "acknowledged by s-1", |d| {
            d["status"] == "acknowledged" && d["steward_id"] == "s-1"
        })
        .await;
    assert_eq!(d["offers"][0]["response"], "accepted", "{d}");
    browser
        .find(&format!("#incidents .card.target[data-incident='{id}']"))
        .await
        .unwrap();

    // The offer ended; the server says so to every phone of the steward.
    // This one answered it itself: nothing more to show.
    let close = push
        .wait_for("the offer's close", |r| {
            r.payload["type"] == "close" && r.payload["incident_id"] == id.as_str()
        })
        .await
        .payload;
    assert_eq!(close["tag"], tag.as_str());
    worker.push(&close).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker.wait_notifications(&tag, <[Value]>::is_empty).await;

    // The test alert reaches the push service.
    browser.click("#push .push-test").await.unwrap();
    browser
        .wait_text("#push .push-result", |t| {
            t.contains("Test alert sent to 1 phone")
        })
        .await
        .unwrap();
    let test = push
        .wait_for("the test alert", |r| r.payload["type"] == "test")
        .await
        .payload;
    assert!(
        test["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{test}"
    );

    // The push service replaced the subscription (Chromium never says so
    // by itself): the worker hands the server the new one, vouched for
    // by the old one's auth secret.
    let renewed = push.subscription();
    worker
        .eval(&format!(
            "renewSubscription({{toJSON: () => ({subscription})}}, {{toJSON: () => ({renewed})}}).then(() => true)"
        ))
        .await;
    let (_, list) = app
        .call(
            Some(&steward),
            Method::GET,
            "/api/v1/push/subscriptions",
            None,
        )
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["endpoint"], renewed["endpoint"], "{list}");

    // With the dispatcher gone, the app still opens, from the worker's
    // cache, with what it last knew and the offline banner.
    browser
        .wait_text("#incidents .incident", |t| t.contains(NAME))
        .await
        .unwrap();
    app.stop().await.unwrap();
    // Two offers in what the phone saved: one still live for a few
    // seconds, one already past its time.
    browser
        .eval(
            "const s = JSON.parse(localStorage.getItem('eldercare.app.saved'));
             const inc = s.incidents[0];
             const offer = (id, ms) => ({ incident: { ...inc, id, status: 'dispatching', steward_id: null },
               elder: s.elders[0], distance_m: 130, expires_at: new Date(Date.now() + ms).toISOString() });
             s.offers = [offer('x-live', 10000), offer('x-past', -1000)];
             localStorage.setItem('eldercare.app.saved', JSON.stringify(s));",
        )
        .await
        .unwrap();
    browser.client.refresh().await.unwrap();
    browser
        .wait_text("#offline", |t| t.contains("Offline"))
        .await
        .unwrap();
    let card = browser
        .wait_text("#incidents .incident", |t| {
            t.contains(NAME) && t.contains("I have arrived") && t.contains("hypertension")
        })
        .await
        .unwrap();
    assert!(card.contains("On your way"), "{card}");
    browser
        .wait_text("#saved-at", |t| t.contains("last knew"))
        .await
        .unwrap();
    // The saved offer shows while its time lasts, then goes; the one past
    // its time never shows: neither can be taken as if live.
    browser
        .find("#offers [data-incident='x-live'] .accept")
        .await
        .unwrap();
    let past = browser
        .eval("return document.querySelectorAll(\"#offers [data-incident='x-past']\").length")
        .await
        .unwrap();
    assert_eq!(past, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while browser
        .eval("return document.querySelectorAll(\"#offers [data-incident='x-live']\").length")
        .await
        .unwrap()
        != 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a saved offer outlived its time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The requests the stopped server refused; nothing else.
    browser.assert_no_console_errors_but(&["net::ERR_"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_rings_only_for_a_live_offer_says_why_one_closed_and_logging_out_unsubscribes() {
    let push = PushService::start().await;
    let subscription = push.subscription();
    let app = push_app().await;
    let steward = app.steward("s-1", "grid-1", NEAR.0, NEAR.1).await;
    let (browser, cdp) = phone(&app.base).await;
    fake_push_manager(&browser, &subscription).await;
    browser
        .log_in(&app.base, "s-1", "s-1-password")
        .await
        .unwrap();
    browser.wait_path("/app/").await.unwrap();
    browser
        .wait_text("#push .push-state", |t| t.contains("Alerts are off"))
        .await
        .unwrap();
    cdp.grant_permissions(&app.base, &["geolocation", "notifications"])
        .await
        .unwrap();
    browser.click("#push .push-enable").await.unwrap();
    browser
        .wait_text("#push .push-state", |t| t.contains("Alerts are on"))
        .await
        .unwrap();
    let worker = Worker::of(&cdp, &app.base).await;

    let offer = |tag: &str, expires: chrono::DateTime<chrono::Utc>| {
        json!({"v": 1, "type": "offer", "incident_id": tag, "offer_id": format!("o-{tag}"),
               "tag": format!("incident-{tag}"), "title": "Urgent: call button",
               "body": "Elder e-9, 130 m away", "lang": "en", "priority": "urgent",
               "kind": "call", "elder_name": "Elder e-9", "distance_m": 130.0,
               "expires_at": expires.to_rfc3339(), "repeat": 0, "token": "t",
               "url": format!("/app/#incident={tag}"),
               "actions": [{"action": "accept", "title": "Accept"}, {"action": "decline", "title": "Decline"}]})
    };
    let now = chrono::Utc::now();

    // Late: past its time it arrives quietly, saying so, with nothing to answer.
    worker
        .push(&offer("late", now - chrono::Duration::seconds(5)))
        .await;
    let late = worker
        .wait_notifications("incident-late", |n| n.len() == 1)
        .await;
    assert_eq!(late[0]["requireInteraction"], false, "{late:?}");
    assert_eq!(late[0]["actions"], json!([]), "{late:?}");
    assert!(
        late[0]["body"].as_str().unwrap().contains("expired"),
        "{late:?}"
    );

    // Live, then taken by someone else: the ringing one goes and a quiet
    // one says why.
    worker
        .push(&offer("live", now + chrono::Duration::seconds(60)))
        .await;
    worker
        .wait_notifications("incident-live", |n| {
            n.len() == 1 && n[0]["requireInteraction"] == true
        })
        .await;
    worker
        .push(
            &json!({"v": 1, "type": "close", "incident_id": "live", "offer_id": "o-live",
                      "tag": "incident-live", "reason": "taken", "title": "Offer withdrawn",
                      "body": "Another steward took it."}),
        )
        .await;
    let closed = worker
        .wait_notifications("incident-live", |n| {
            n.len() == 1 && n[0]["title"] == "Offer withdrawn"
        })
        .await;
    assert_eq!(closed[0]["requireInteraction"], false, "{closed:?}");
    assert_eq!(closed[0]["silent"], true, "{closed:?}");
    assert_eq!(closed[0]["body"], "Another steward took it.", "{closed:?}");

    // A tap on Accept for an offer the server no longer knows: said plainly.
    worker
        .push(&offer("gone", now + chrono::Duration::seconds(60)))
        .await;
    worker
        .wait_notifications("incident-gone", |n| n.len() == 1)
        .await;
    let answer = worker
        .eval(
            "self.registration.getNotifications({tag: 'incident-gone'}).then(([n]) => handleNotificationClick(n, 'accept'))",
        )
        .await;
    assert_eq!(answer["ok"], false, "{answer}");
    let refused = worker
        .wait_notifications("incident-gone", |n| n.len() == 1)
        .await;
    assert_eq!(
        refused[0]["title"], "Your answer was not recorded",
        "{refused:?}"
    );

    // Logging out: this phone no longer rings for s-1.
    browser.click("#logout").await.unwrap();
    browser.wait_path("/login").await.unwrap();
    let (status, list) = app
        .call(
            Some(&steward),
            Method::GET,
            "/api/v1/push/subscriptions",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list, json!([]), "still registered after logout");
    assert_eq!(
        browser
            .eval("return localStorage.getItem('test.push.subscribed')")
            .await
            .unwrap(),
        Value::Null,
        "the browser's subscription was not dropped"
    );
    assert_eq!(
        browser
            .eval("return localStorage.getItem('eldercare.app.saved')")
            .await
            .unwrap(),
        Value::Null,
        "elders' details left on the phone"
    );
    browser.assert_no_console_errors().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_is_installable_its_manifest_parses_and_its_icons_load() {
    let app = push_app().await;
    let get = |path: &str| app.http.get(format!("{}{path}", app.base)).send();

    let r = get("/app/manifest.webmanifest").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/manifest+json");
    let manifest: Value = r.json().await.unwrap();
    assert_eq!(manifest["start_url"], "/app/");
    assert_eq!(manifest["scope"], "/app/");
    assert_eq!(manifest["display"], "standalone");
    for field in ["name", "short_name", "theme_color", "background_color"] {
        assert!(
            manifest[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field}: {manifest}"
        );
    }
    let icons = manifest["icons"].as_array().unwrap();
    let mut sizes = Vec::new();
    for icon in icons {
        let r = get(icon["src"].as_str().unwrap()).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{icon}");
        assert_eq!(r.headers()["content-type"], "image/png", "{icon}");
        let png = r.bytes().await.unwrap();
        assert_eq!(&png[1..4], b"PNG", "{icon}");
        // IHDR: width and height, big-endian, at bytes 16 and 20.
        let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert_eq!(format!("{w}x{h}"), icon["sizes"], "{icon}");
        sizes.push((w, icon["purpose"].as_str().unwrap_or("any").to_owned()));
    }
    for want in [(192, "any"), (512, "any"), (512, "maskable")] {
        assert!(
            sizes.iter().any(|(w, p)| *w == want.0 && p == want.1),
            "{want:?} missing: {sizes:?}"
        );
    }

    // The worker: a script, never cached by HTTP (a phone must see a new release).
    let r = get("/app/sw.js").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let script = r.text().await.unwrap();
    assert!(!script.contains("__ELDERCARE_ASSETS_VERSION__"));

    // Chromium reads the manifest from the page without complaint, and
    // the worker's cache holds everything the page loaded.
    app.steward("s-1", "grid-1", NEAR.0, NEAR.1).await;
    let (browser, cdp) = phone(&app.base).await;
    browser
        .log_in(&app.base, "s-1", "s-1-password")
        .await
        .unwrap();
    browser.wait_path("/app/").await.unwrap();
    browser
        .wait_text("#duty-state", |t| t.contains("On duty"))
        .await
        .unwrap();
    let parsed = browser.cdp("Page.getAppManifest", json!({})).await.unwrap();
    assert_eq!(parsed["errors"], json!([]), "{parsed}");
    assert!(
        parsed["url"]
            .as_str()
            .unwrap()
            .ends_with("/app/manifest.webmanifest"),
        "{parsed}"
    );
    let link = browser
        .eval("return document.querySelector('link[rel=apple-touch-icon]').href")
        .await
        .unwrap();
    assert!(
        get(&link.as_str().unwrap().replace(&app.base, ""))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    Worker::of(&cdp, &app.base).await;
    let missing = browser
        .client
        .execute_async(
            "const done = arguments[0];
             (async () => {
               const loaded = performance.getEntriesByType('resource').map((e) => new URL(e.name))
                 .filter((u) => u.origin === location.origin && !u.pathname.startsWith('/api/'))
                 .map((u) => u.pathname);
               const names = await caches.keys();
               const cache = await caches.open(names.find((n) => n.startsWith('eldercare-app-')));
               const missing = [];
               for (const p of ['/app/', ...loaded]) if (!(await cache.match(p))) missing.push(p);
               return missing;
             })().then(done, (e) => done(String(e)));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(missing, json!([]), "loaded by the page but not precached");
    browser.assert_no_console_errors().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_marks_a_steward_no_alert_can_reach_and_shows_how_each_offer_was_tried() {
    let push = PushService::start().await;
    let app = push_app().await;
    elder(&app).await;
    // s-1 nearby with a phone registered for alerts; s-2 farther, with none.
    let near = app.steward("s-1", "grid-1", NEAR.0, NEAR.1).await;
    app.steward("s-2", "grid-1", 29.6700, 91.1377).await;
    let mut registered = push.subscription();
    registered["lang"] = json!("en");
    let (status, body) = app
        .call(
            Some(&near),
            Method::POST,
            "/api/v1/push/subscriptions",
            Some(registered),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.post(
        "/api/v1/users",
        json!({"username": "sup", "password": "supervisor-password", "role": "supervisor"}),
    )
    .await;

    let browser = Browser::start().await.unwrap();
    browser
        .log_in(&app.base, "sup", "supervisor-password")
        .await
        .unwrap();
    browser.wait_path("/board/").await.unwrap();
    let row = browser
        .wait_text("#roster tr[data-id='s-2']", |t| {
            t.contains("No phone registered for alerts")
        })
        .await
        .unwrap();
    assert!(row.contains('⚠'), "{row}");
    browser
        .wait_text("#roster tr[data-id='s-1']", |t| t.contains("Steward s-1"))
        .await
        .unwrap();
    assert_eq!(
        browser
            .eval("return document.querySelectorAll(\"#roster tr[data-id='s-1'] .reach-problem\").length")
            .await
            .unwrap(),
        0
    );

    // The offer goes to s-1 as a push; the incident page shows it under the offer.
    let id = press(&app).await;
    push.wait_for("the offer", |r| {
        r.payload["type"] == "offer" && r.payload["incident_id"] == id.as_str()
    })
    .await;
    app.wait_incident(&id, "the push delivered", |d| {
        d["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["channel"] == "push" && x["event"] == "offer" && x["state"] == "delivered")
    })
    .await;
    browser
        .goto(&format!("{}/board/#incident/{id}", app.base))
        .await
        .unwrap();
    let tried = browser
        .wait_text(".attempts-row", |t| t.contains("Push alert"))
        .await
        .unwrap();
    assert!(tried.contains("Delivered"), "{tried}");
    browser.assert_no_console_errors().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_link_opens_the_offer_on_a_logged_out_phone_once() {
    let app = push_app().await;
    elder(&app).await;
    app.steward("s-1", "grid-1", NEAR.0, NEAR.1).await;
    let id = press(&app).await;
    let offer = app.incident(&id).await["offers"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The link an SMS of the ladder would carry for this offer.
    let link = app
        .state
        .reach
        .keys()
        .await
        .unwrap()
        .tokens
        .token(Purpose::Link, &offer);

    // A phone with nobody logged in: the link is the login, and the app
    // opens at the offer.
    let (browser, _cdp) = phone(&app.base).await;
    browser
        .goto(&format!("{}/app/#link={link}", app.base))
        .await
        .unwrap();
    browser
        .find(&format!("#offers .card.target[data-incident='{id}']"))
        .await
        .unwrap();
    assert_eq!(browser.client.current_url().await.unwrap().path(), "/app/");
    let saved = browser
        .eval("return JSON.parse(localStorage.getItem('eldercare.session'))")
        .await
        .unwrap();
    assert_eq!(saved["steward_id"], "s-1", "{saved}");
    assert_eq!(
        browser.eval("return location.hash").await.unwrap(),
        "",
        "the spent token is not left in the address"
    );

    // Used once, it is spent: another logged-out phone is told so plainly.
    browser.eval("localStorage.clear()").await.unwrap();
    browser.goto("about:blank").await.unwrap();
    browser
        .goto(&format!("{}/app/#link={link}", app.base))
        .await
        .unwrap();
    browser
        .wait_text("#link-problem", |t| t.contains("This link has expired"))
        .await
        .unwrap();
    browser.click("main a.button-link").await.unwrap();
    browser.wait_path("/login").await.unwrap();
    // The browser logs the 410 it was answered; nothing else.
    browser.assert_no_console_errors_but(&["410 (Gone)"]).await;
}
