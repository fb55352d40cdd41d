//! `/api/v1/sim` as a client sees it, without a broker: who may use it,
//! what it says when it is off, and what a bad start request gets. (The
//! scenarios themselves run against a real broker in
//! `tests/tests/scenarios.rs`.)
//!
//! Every response is checked on the way: never a 500, and every 4xx has
//! the `{"error": {"code", "message"}}` body.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use eldercare_dispatcher::api::{self, AppState};
use eldercare_dispatcher::clock::Clock;
use eldercare_dispatcher::metrics::Metrics;
use eldercare_dispatcher::rules::RuleBook;
use eldercare_dispatcher::settings::{Secret, Settings};
use eldercare_dispatcher::sim::SimTarget;
use eldercare_dispatcher::store;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const ADMIN_PASSWORD: &str = "admin-password";

struct App {
    router: Router,
    state: AppState,
    admin: String,
    _dir: tempfile_dir::Dir,
}

/// A temporary directory removed on drop (std only).
mod tempfile_dir {
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

async fn app(sim_enabled: bool) -> App {
    let dir = std::env::temp_dir().join(format!(
        "eldercare-sim-api-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}", dir.join("t.db").display());
    let store = store::connect(&url).await.expect("store");
    let mut settings = Settings::default();
    settings.auth.admin_password = Some(Secret::new(ADMIN_PASSWORD));
    settings.sim.enabled = sim_enabled;
    api::bootstrap_admin(store.as_ref(), &settings)
        .await
        .expect("bootstrap");
    let state = AppState::new(
        store,
        Arc::new(settings.clone()),
        Clock::System,
        Arc::new(Metrics::default()),
        Arc::new(RuleBook::new(settings.rules.clone())),
        Arc::new(AtomicBool::new(true)),
    );
    let mut app = App {
        router: api::router(state.clone(), eldercare_dispatcher::web::router()),
        state,
        admin: String::new(),
        _dir: tempfile_dir::Dir(dir),
    };
    app.admin = app.login("admin", ADMIN_PASSWORD).await;
    app
}

impl App {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b)),
            None => req.body(Body::empty()),
        }
        .expect("request");
        let res = self.router.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        let body: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        // 503 `unavailable` is the one server error a client may see: the
        // broker is not there yet, try again.
        assert!(
            !status.is_server_error()
                || (status == StatusCode::SERVICE_UNAVAILABLE
                    && body["error"]["code"] == "unavailable"),
            "{method} {path} gave {status}: {body}"
        );
        if status.is_client_error() {
            assert!(
                body["error"]["code"].is_string() && body["error"]["message"].is_string(),
                "{method} {path} gave {status} without the error shape: {body}"
            );
        }
        (status, body)
    }

    async fn login(&self, username: &str, password: &str) -> String {
        let (s, b) = self
            .call(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(json!({"username": username, "password": password}).to_string()),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b["token"].as_str().expect("token").to_owned()
    }

    async fn as_admin(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(method, path, Some(&self.admin), body.map(|b| b.to_string()))
            .await
    }

    async fn start(&self, body: Value) -> (StatusCode, Value) {
        self.as_admin("POST", "/api/v1/sim/start", Some(body)).await
    }
}

#[track_caller]
fn error(resp: &(StatusCode, Value), status: u16, code: &str) -> String {
    assert_eq!(resp.0.as_u16(), status, "{}", resp.1);
    assert_eq!(resp.1["error"]["code"], code, "{}", resp.1);
    resp.1["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn only_admins_reach_the_simulator() {
    let app = app(true).await;
    for (method, path) in [
        ("GET", "/api/v1/sim"),
        ("POST", "/api/v1/sim/start"),
        ("POST", "/api/v1/sim/stop"),
    ] {
        let body = Some(json!({"scenario": "earthquake"}).to_string());
        error(
            &app.call(method, path, None, body.clone()).await,
            401,
            "unauthorized",
        );
        error(
            &app.call(method, path, Some("not-a-token"), body).await,
            401,
            "unauthorized",
        );
    }
    let (s, b) = app
        .as_admin(
            "POST",
            "/api/v1/users",
            Some(json!({"username": "sup", "password": "password-1", "role": "supervisor"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let sup = app.login("sup", "password-1").await;
    for (method, path) in [
        ("GET", "/api/v1/sim"),
        ("POST", "/api/v1/sim/start"),
        ("POST", "/api/v1/sim/stop"),
    ] {
        let body = Some(json!({"scenario": "earthquake"}).to_string());
        error(
            &app.call(method, path, Some(&sup), body).await,
            403,
            "forbidden",
        );
    }
}

#[tokio::test]
async fn off_by_default_and_the_error_names_the_setting() {
    let app = app(false).await;
    let (s, status) = app.as_admin("GET", "/api/v1/sim", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(status["enabled"], false);
    assert_eq!(status["running"], false);
    let names: Vec<&str> = status["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "ordinary-day",
            "flu-week",
            "earthquake",
            "power-cut",
            "stuck-button"
        ]
    );
    let message = error(
        &app.start(json!({"scenario": "earthquake"})).await,
        409,
        "sim_disabled",
    );
    assert!(
        message.contains("[sim] enabled = true") && message.contains("ELDERCARE__SIM__ENABLED"),
        "{message}"
    );
    // Stopping what is not running is no error (a second click on Stop).
    let (s, status) = app.as_admin("POST", "/api/v1/sim/stop", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(status["running"], false);
}

#[tokio::test]
async fn bad_start_requests_say_what_is_wrong() {
    let app = app(true).await;
    let message = error(
        &app.start(json!({"scenario": "tsunami"})).await,
        422,
        "unknown_scenario",
    );
    assert!(
        message.contains("tsunami")
            && message.contains("earthquake")
            && message.contains("power-cut"),
        "{message}"
    );
    for speed in [json!(0), json!(-1), json!(1e9), json!("fast")] {
        let message = error(
            &app.start(json!({"scenario": "earthquake", "speed": speed}))
                .await,
            422,
            "invalid_body",
        );
        assert!(message.contains("speed"), "{speed}: {message}");
    }
    for (body, field) in [
        (json!({}), "scenario"),
        (json!({"scenario": 7}), "scenario"),
        (json!({"scenario": "earthquake", "seed": -1}), "seed"),
        (json!({"scenario": "earthquake", "sped": 5}), "sped"),
    ] {
        let message = error(&app.start(body.clone()).await, 422, "invalid_body");
        assert!(message.contains(field), "{body}: {message}");
    }
    let (s, _) = app
        .call(
            "POST",
            "/api/v1/sim/start",
            Some(&app.admin),
            Some("{not json".into()),
        )
        .await;
    assert!(s.is_client_error());
    // Without the server's broker (this router runs without start-up).
    error(
        &app.start(json!({"scenario": "earthquake"})).await,
        503,
        "unavailable",
    );
}

#[tokio::test]
async fn one_run_at_a_time_and_its_logins_go_with_it() {
    let app = app(true).await;
    // Nowhere to connect: the run starts, its devices and stewards keep
    // retrying, which is all this test needs.
    app.state.sim.set_target(SimTarget {
        broker_host: "127.0.0.1".into(),
        broker_port: 9,
        topic_root: "test/eldercare/v1".into(),
        http_base: "http://127.0.0.1:9".into(),
    });
    let message = error(
        &app.start(json!({"scenario": "earthquake"})).await,
        409,
        "sim_no_devices",
    );
    assert!(message.contains("import"), "{message}");

    for (path, body) in [
        (
            "/api/v1/elders",
            json!({"id": "e-1", "name": "Tsering Dolma", "birth_year": 1941,
                   "address": "12 Lhalu Road, Lhasa", "lat": 29.66, "lon": 91.14, "grid": "g-1",
                   "conditions": [], "medications": [], "risks": {"fall": true, "wandering": false},
                   "lives_alone": true, "languages": ["bo"], "contacts": [], "notes": "", "limits": {}}),
        ),
        (
            "/api/v1/devices",
            json!({"id": "btn-1", "elder_id": "e-1", "kind": "call_button", "heartbeat_s": 60}),
        ),
        (
            "/api/v1/stewards",
            json!({"id": "s-1", "name": "Gesang", "phone": "13900000101", "grid": "g-1",
                   "skills": ["first_aid"], "languages": ["bo"]}),
        ),
    ] {
        let (s, b) = app.as_admin("POST", path, Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "{path}: {b}");
    }

    let (s, status) = app
        .start(json!({"scenario": "power-cut", "speed": 30, "seed": 5}))
        .await;
    assert_eq!(s, StatusCode::OK, "{status}");
    assert_eq!(status["running"], true);
    assert_eq!(status["scenario"], "power-cut");
    assert_eq!(status["speed"], 30.0);
    assert_eq!(status["seed"], 5);
    assert_eq!(status["devices"], 1);
    assert_eq!(status["stewards"], 1);
    assert_eq!(status["started_by"], "admin");

    let message = error(
        &app.start(json!({"scenario": "earthquake"})).await,
        409,
        "sim_running",
    );
    assert!(
        message.contains("power-cut") && message.contains("stop"),
        "{message}"
    );

    // The simulated steward's login exists while the run does, and not after.
    let users = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .filter_map(|u| u["username"].as_str().map(str::to_owned))
            .collect()
    };
    let (_, during) = app.as_admin("GET", "/api/v1/users", None).await;
    assert!(users(&during).contains(&"sim-s-1".to_owned()), "{during}");

    let (s, stopped) = app.as_admin("POST", "/api/v1/sim/stop", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(stopped["running"], false);
    assert_eq!(
        stopped["scenario"], "power-cut",
        "the last run's figures stay"
    );
    assert!(stopped["stopped_at"].is_string());
    let (_, after) = app.as_admin("GET", "/api/v1/users", None).await;
    assert!(!users(&after).contains(&"sim-s-1".to_owned()), "{after}");
}
