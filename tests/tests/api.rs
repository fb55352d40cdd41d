//! The HTTP API against a real store: every test builds the router over a
//! fresh SQLite file and a fresh PostgreSQL database (the shared harness's,
//! `eldercare_tests::db`: the server `ELDERCARE_TEST_PG_URL` names, by
//! default local with user `postgres`; unreachable, the PostgreSQL
//! variants fail) and drives it with `oneshot`, no sockets.
//!
//! Every response any test sees is checked on the way: never a 500, and
//! every 4xx has the `{"error": {"code", "message"}}` body.

use dispatcher::dispatch::Lifecycle;
use dispatcher::ingest::IngestBatch;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use chrono::{Duration, Utc};
use dispatcher::api::{self, AppState};
use dispatcher::clock::Clock;
use dispatcher::domain::{DedupKey, ElderId, Incident, IncidentKind, Priority};
use dispatcher::metrics::Metrics;
use dispatcher::rules::{Effect, RuleBook};
use dispatcher::settings::{Secret, Settings};
use dispatcher::store::{self, Store};
use eldercare_tests::db::TestDb;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const ADMIN_PASSWORD: &str = "admin-password";
const PASSWORD: &str = "password-1";

// --- the harness ---

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh database of the backend, from the shared test harness
/// (removed when dropped; PostgreSQL missing fails the test).
async fn fresh_db(backend: Backend) -> (Box<dyn TestDb>, String) {
    let db: Box<dyn TestDb> = match backend {
        Backend::Sqlite => Box::new(eldercare_tests::db::fresh_sqlite()),
        Backend::Postgres => Box::new(
            eldercare_tests::db::fresh_postgres()
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        ),
    };
    let url = db.url().to_owned();
    (db, url)
}

struct TestApp {
    router: Router,
    state: AppState,
    /// The bootstrap admin's token.
    admin: String,
    /// The store's URL, for the one test that must write what no store
    /// method writes yet (an assignment; dispatch will own that).
    url: String,
    _db: Box<dyn TestDb>,
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Resp {
    /// Asserts an error response: this status and code.
    #[track_caller]
    fn err(&self, status: u16, code: &str) -> &Self {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.body["error"]["code"], code, "{}", self.body);
        self
    }

    #[track_caller]
    fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        &self.body
    }

    fn message(&self) -> String {
        self.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

async fn spawn_with(backend: Backend, clock: Clock) -> TestApp {
    let (db, url) = fresh_db(backend).await;
    let store: Arc<dyn Store> = store::connect(&url).await.expect("store");
    let mut settings = Settings::default();
    settings.auth.admin_password = Some(Secret::new(ADMIN_PASSWORD));
    let generated = api::bootstrap_admin(store.as_ref(), &settings)
        .await
        .expect("bootstrap");
    assert_eq!(generated, None, "a set password is not printed");
    let state = AppState::new(
        store,
        Arc::new(settings.clone()),
        clock,
        Arc::new(Metrics::default()),
        Arc::new(RuleBook::new(settings.rules.clone())),
        Arc::new(AtomicBool::new(true)),
    );
    let mut app = TestApp {
        router: api::router(state.clone(), dispatcher::web::router()),
        state,
        admin: String::new(),
        url,
        _db: db,
    };
    app.admin = app.login("admin", ADMIN_PASSWORD).await;
    app
}

async fn spawn(backend: Backend) -> TestApp {
    spawn_with(backend, Clock::System).await
}

impl TestApp {
    async fn send(&self, req: Request<Body>) -> Resp {
        let what = format!("{} {}", req.method(), req.uri());
        let res = self.router.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        // Only readiness may answer 503 here: the store is up.
        assert!(
            !status.is_server_error() || what.ends_with("/readyz"),
            "{what} gave {status}: {body}"
        );
        if status.is_client_error() {
            assert!(
                body["error"]["code"].is_string() && body["error"]["message"].is_string(),
                "{what} gave {status} without the error shape: {body}"
            );
        }
        Resp {
            status,
            headers,
            body,
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        };
        self.send(req.expect("request")).await
    }

    async fn get(&self, path: &str, token: &str) -> Resp {
        self.call("GET", path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call("POST", path, Some(token), Some(body)).await
    }

    async fn patch(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call("PATCH", path, Some(token), Some(body)).await
    }

    async fn put(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call("PUT", path, Some(token), Some(body)).await
    }

    async fn delete(&self, path: &str, token: &str) -> Resp {
        self.call("DELETE", path, Some(token), None).await
    }

    async fn login(&self, username: &str, password: &str) -> String {
        let r = self
            .call(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        r.ok(200)["token"].as_str().expect("token").to_owned()
    }

    /// A login of `role` (a steward's names `steward`), logged in.
    async fn user(&self, username: &str, role: &str, steward: Option<&str>) -> String {
        let mut body = json!({"username": username, "password": PASSWORD, "role": role});
        if let Some(s) = steward {
            body["steward_id"] = json!(s);
        }
        self.post("/api/v1/users", &self.admin, body).await.ok(201);
        self.login(username, PASSWORD).await
    }

    async fn elder(&self, id: &str) -> Value {
        self.post("/api/v1/elders", &self.admin, elder_body(id))
            .await
            .ok(201)
            .clone()
    }

    async fn steward(&self, id: &str) -> Value {
        self.post(
            "/api/v1/stewards",
            &self.admin,
            json!({"id": id, "name": format!("Steward {id}"), "phone": "+86 139 0000 0000",
                   "grid": "g-1", "skills": ["first_aid"], "languages": ["bo", "zh"]}),
        )
        .await
        .ok(201)
        .clone()
    }

    /// Assigns an incident to a steward behind the API's back: no store
    /// method does it until dispatch (accept, assign) lands.
    async fn assign(&self, incident: &Incident, steward: &str) {
        let sql = "UPDATE incidents SET steward_id = $1, status = 'acknowledged' WHERE id = $2";
        let n = if self.url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&self.url).await.expect("sqlite");
            let r = sqlx::query(sql)
                .bind(steward)
                .bind(incident.id.as_str())
                .execute(&pool)
                .await
                .expect("assign");
            pool.close().await;
            r.rows_affected()
        } else {
            let pool = sqlx::PgPool::connect(&self.url).await.expect("postgres");
            let r = sqlx::query(sql)
                .bind(steward)
                .bind(incident.id.as_str())
                .execute(&pool)
                .await
                .expect("assign");
            pool.close().await;
            r.rows_affected()
        };
        assert_eq!(n, 1);
    }

    /// Opens an incident the way ingest would, through the store.
    async fn raise(&self, elder: &str, kind: IncidentKind) -> Incident {
        let elder = ElderId::parse(elder).expect("id");
        let applied = self
            .state
            .store
            .apply(
                &[Effect::Raise {
                    key: DedupKey::for_elder(&elder, kind).to_string(),
                    elder_id: Some(elder),
                    device_id: None,
                    kind,
                    priority: Priority::Urgent,
                    summary: format!("{kind} by test"),
                }],
                &dispatcher::domain::Actor::System,
                self.state.clock.now(),
                &self.state.rules,
            )
            .await
            .expect("raise");
        applied[0].incident.clone().expect("an incident")
    }
}

fn elder_body(id: &str) -> Value {
    json!({
        "id": id, "name": "Tsering Dolma", "birth_year": 1941,
        "address": "12 Lhalu Road, Lhasa", "lat": 29.66, "lon": 91.14, "grid": "g-1",
        "conditions": ["hypertension"], "medications": ["amlodipine 5 mg, morning"],
        "risks": {"fall": true, "wandering": false}, "lives_alone": true,
        "languages": ["bo"],
        "contacts": [{"name": "Pema", "relation": "daughter", "phone": "+86 139 1111 2222"}],
        "notes": "key under the mat", "limits": {"heart_rate_min": 40}
    })
}

/// Runs each scenario against SQLite and PostgreSQL.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let app = super::spawn(super::Backend::Sqlite).await;
                    super::$name(&app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let app = super::spawn(super::Backend::Postgres).await;
                    super::$name(&app).await;
                }
            )*
        }
    };
}

on_both!(
    operations,
    login_and_tokens,
    users_admin_only,
    elders_crud_and_merge_patch,
    stewards_see_no_elder_without_an_incident,
    devices_crud,
    stewards_and_their_own_record,
    role_matrix,
    bad_input_is_never_a_500,
    events_and_unknown_devices,
    incidents_list_read_cancel,
    a_steward_sees_their_incident_and_its_elder,
    ingested_events_and_unknown_devices,
);

// --- scenarios ---

async fn operations(app: &TestApp) {
    let r = app.call("GET", "/healthz", None, None).await;
    assert_eq!(r.ok(200)["status"], "ok");

    let r = app.call("GET", "/readyz", None, None).await;
    assert_eq!(r.ok(200)["status"], "ready");
    app.state.broker_connected.store(false, Ordering::Relaxed);
    let r = app.call("GET", "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["broker"], "disconnected");
    assert_eq!(r.body["store"], "ok");
    assert_eq!(r.body["error"]["code"], "not_ready");
    assert!(r.message().contains("broker"));
    app.state.broker_connected.store(true, Ordering::Relaxed);

    let r = app.call("GET", "/metrics", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    assert!(
        r.body
            .as_str()
            .unwrap()
            .contains("dispatcher_events_stored_total")
    );

    let r = app.call("GET", "/api/openapi.json", None, None).await;
    let doc = r.ok(200);
    assert!(doc["paths"]["/api/v1/elders/{id}"]["patch"].is_object());
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
}

async fn login_and_tokens(app: &TestApp) {
    // The bootstrap admin works; a second bootstrap does nothing.
    let mut settings = Settings::default();
    settings.auth.admin_password = None;
    assert_eq!(
        api::bootstrap_admin(app.state.store.as_ref(), &settings)
            .await
            .unwrap(),
        None
    );
    let r = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "admin", "password": ADMIN_PASSWORD})),
        )
        .await;
    let body = r.ok(200);
    assert_eq!(body["role"], "admin");
    assert!(body["steward_id"].is_null());
    assert_eq!(body["token"].as_str().unwrap().len(), 64);
    assert!(body["expires_at"].is_string());

    // One message for a wrong password and an unknown user.
    let wrong = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "admin", "password": "nope-nope"})),
        )
        .await;
    wrong.err(401, "unauthorized");
    let unknown = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "nobody", "password": "nope-nope"})),
        )
        .await;
    unknown.err(401, "unauthorized");
    assert_eq!(wrong.message(), unknown.message());

    // 401 without a token, with a bad one, with another scheme.
    app.call("GET", "/api/v1/elders", None, None)
        .await
        .err(401, "unauthorized");
    app.get("/api/v1/elders", "0123")
        .await
        .err(401, "unauthorized");
    app.get("/api/v1/elders", &"ab".repeat(32))
        .await
        .err(401, "unauthorized");
    let req = Request::get("/api/v1/elders")
        .header(header::AUTHORIZATION, "Basic YWRtaW46YWRtaW4=")
        .body(Body::empty())
        .unwrap();
    app.send(req).await.err(401, "unauthorized");
    // The query token is for the stream only.
    app.call(
        "GET",
        &format!("/api/v1/elders?access_token={}", app.admin),
        None,
        None,
    )
    .await
    .err(401, "unauthorized");
    app.get("/api/v1/elders", &app.admin).await.ok(200);

    // Many failures in a row lock the username, even for the right password.
    app.user("sup-lock", "supervisor", None).await;
    for _ in 0..api::auth::MAX_FAILURES {
        app.call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "sup-lock", "password": "wrong-wrong"})),
        )
        .await
        .err(401, "unauthorized");
    }
    let r = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "sup-lock", "password": PASSWORD})),
        )
        .await;
    r.err(429, "rate_limited");
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    // Others are not locked out.
    app.login("admin", ADMIN_PASSWORD).await;
}

async fn session_expiry(app: &TestApp) {
    let token = app.admin.clone();
    app.get("/api/v1/elders", &token).await.ok(200);
    app.state.clock.advance(
        Duration::hours(i64::from(app.state.settings.auth.session_hours)) + Duration::minutes(1),
    );
    app.get("/api/v1/elders", &token)
        .await
        .err(401, "unauthorized");
}

#[tokio::test]
async fn sessions_expire() {
    let app = spawn_with(Backend::Sqlite, Clock::manual(Utc::now())).await;
    session_expiry(&app).await;
}

#[tokio::test]
async fn a_random_admin_password_is_returned_once() {
    let (_db, url) = fresh_db(Backend::Sqlite).await;
    let store = store::connect(&url).await.unwrap();
    let settings = Settings::default();
    let pw = api::bootstrap_admin(store.as_ref(), &settings)
        .await
        .unwrap()
        .expect("a generated password");
    assert!(pw.len() >= 16);
    assert_eq!(
        api::bootstrap_admin(store.as_ref(), &settings)
            .await
            .unwrap(),
        None
    );
    let admin = store.user("admin").await.unwrap().unwrap();
    assert!(api::auth::verify_password(&pw, &admin.password_hash));

    let (_db2, url2) = fresh_db(Backend::Sqlite).await;
    let store2 = store::connect(&url2).await.unwrap();
    let mut short = Settings::default();
    short.auth.admin_password = Some(Secret::new("12345"));
    let e = api::bootstrap_admin(store2.as_ref(), &short)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ELDERCARE_ADMIN_PASSWORD"), "{e}");
}

async fn users_admin_only(app: &TestApp) {
    app.steward("s-1").await;
    let sup = app.user("sup", "supervisor", None).await;
    let stw = app.user("dawa", "steward", Some("s-1")).await;

    let users = app.get("/api/v1/users", &app.admin).await;
    let users = users.ok(200).as_array().unwrap().clone();
    assert_eq!(users.len(), 3);
    assert!(
        users
            .iter()
            .all(|u| u.get("password_hash").is_none() && u.get("password").is_none())
    );
    let dawa = users.iter().find(|u| u["username"] == "dawa").unwrap();
    assert_eq!(dawa["steward_id"], "s-1");

    app.get("/api/v1/users", &sup).await.err(403, "forbidden");
    app.get("/api/v1/users", &stw).await.err(403, "forbidden");
    app.post(
        "/api/v1/users",
        &sup,
        json!({"username": "x", "password": PASSWORD, "role": "admin"}),
    )
    .await
    .err(403, "forbidden");

    // The rules of a new login.
    let new = |u: &str, p: &str, role: &str, s: Option<&str>| {
        let mut b = json!({"username": u, "password": p, "role": role});
        if let Some(s) = s {
            b["steward_id"] = json!(s);
        }
        b
    };
    app.post(
        "/api/v1/users",
        &app.admin,
        new("short", "1234567", "supervisor", None),
    )
    .await
    .err(422, "invalid_body");
    let r = app
        .post(
            "/api/v1/users",
            &app.admin,
            new("ghost", PASSWORD, "steward", Some("s-404")),
        )
        .await;
    r.err(422, "invalid_body");
    assert!(r.message().contains("steward_id"));
    app.post(
        "/api/v1/users",
        &app.admin,
        new("nosteward", PASSWORD, "steward", None),
    )
    .await
    .err(422, "invalid_body");
    app.post(
        "/api/v1/users",
        &app.admin,
        new("sup", PASSWORD, "supervisor", None),
    )
    .await
    .err(409, "already_exists");

    // Removing a login ends its sessions; nobody removes themself.
    app.delete("/api/v1/users/admin", &app.admin)
        .await
        .err(409, "cannot_delete_self");
    app.delete("/api/v1/users/sup", &stw)
        .await
        .err(403, "forbidden");
    let r = app.delete("/api/v1/users/sup", &app.admin).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.get("/api/v1/elders", &sup)
        .await
        .err(401, "unauthorized");
    app.delete("/api/v1/users/sup", &app.admin)
        .await
        .err(404, "not_found");
}

async fn elders_crud_and_merge_patch(app: &TestApp) {
    let created = app.elder("e-1").await;
    assert_eq!(created["id"], "e-1");
    assert_eq!(created["lat"], 29.66);
    assert_eq!(created["risks"]["fall"], true);

    // Without an id, the server picks one.
    let mut body = elder_body("x");
    body.as_object_mut().unwrap().remove("id");
    let r = app.post("/api/v1/elders", &app.admin, body).await;
    let auto = r.ok(201)["id"].as_str().unwrap().to_owned();
    assert!(auto.starts_with("e-"));

    let got = app.get("/api/v1/elders/e-1", &app.admin).await;
    assert_eq!(got.ok(200), &created);
    let list = app.get("/api/v1/elders", &app.admin).await;
    assert_eq!(list.ok(200).as_array().unwrap().len(), 2);

    app.post("/api/v1/elders", &app.admin, elder_body("e-1"))
        .await
        .err(409, "already_exists");

    // Merge patch: change one field, clear one, nest into another.
    let r = app
        .patch(
            "/api/v1/elders/e-1",
            &app.admin,
            json!({"address": "14 Lhalu Road", "notes": null, "risks": {"wandering": true},
                   "limits": {"heart_rate_min": null, "spo2_min": 88}}),
        )
        .await;
    let patched = r.ok(200).clone();
    assert_eq!(patched["address"], "14 Lhalu Road");
    assert_eq!(patched["notes"], "");
    assert_eq!(patched["risks"], json!({"fall": true, "wandering": true}));
    assert_eq!(patched["limits"], json!({"spo2_min": 88.0}));
    assert_eq!(patched["name"], created["name"]);
    assert_eq!(
        app.get("/api/v1/elders/e-1", &app.admin).await.ok(200),
        &patched
    );

    // The same checks as a new elder; the id does not change.
    app.patch(
        "/api/v1/elders/e-1",
        &app.admin,
        json!({"birth_year": 1800}),
    )
    .await
    .err(422, "invalid_body");
    app.patch("/api/v1/elders/e-1", &app.admin, json!({"lat": 100}))
        .await
        .err(422, "invalid_body");
    app.patch("/api/v1/elders/e-1", &app.admin, json!({"name": null}))
        .await
        .err(422, "invalid_body");
    app.patch("/api/v1/elders/e-1", &app.admin, json!({"id": "e-2"}))
        .await
        .err(422, "immutable_field");
    app.patch(
        "/api/v1/elders/e-1",
        &app.admin,
        json!({"id": "e-1", "grid": "g-2"}),
    )
    .await
    .ok(200);
    app.patch("/api/v1/elders/e-404", &app.admin, json!({"grid": "g-2"}))
        .await
        .err(404, "not_found");

    // An open incident blocks deleting; closed, it goes.
    let incident = app.raise("e-1", IncidentKind::Call).await;
    app.delete("/api/v1/elders/e-1", &app.admin)
        .await
        .err(409, "open_incident");
    app.post(
        &format!("/api/v1/incidents/{}/cancel", incident.id),
        &app.admin,
        json!({"reason": "test"}),
    )
    .await
    .ok(200);
    let r = app.delete("/api/v1/elders/e-1", &app.admin).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.get("/api/v1/elders/e-1", &app.admin)
        .await
        .err(404, "not_found");
    app.delete("/api/v1/elders/e-1", &app.admin)
        .await
        .err(404, "not_found");
}

async fn stewards_see_no_elder_without_an_incident(app: &TestApp) {
    app.elder("e-1").await;
    app.elder("e-2").await;
    app.steward("s-1").await;
    let stw = app.user("dawa", "steward", Some("s-1")).await;

    app.get("/api/v1/elders/e-1", &stw)
        .await
        .err(403, "forbidden");
    // An unknown elder looks the same to a steward: no existence leak.
    app.get("/api/v1/elders/e-404", &stw)
        .await
        .err(403, "forbidden");
    let list = app.get("/api/v1/elders", &stw).await;
    assert_eq!(list.ok(200), &json!([]));
    // An incident of the elder that is not theirs changes nothing.
    app.raise("e-1", IncidentKind::Call).await;
    app.get("/api/v1/elders/e-1", &stw)
        .await
        .err(403, "forbidden");
    assert_eq!(app.get("/api/v1/elders", &stw).await.ok(200), &json!([]));
    // Nor may they change one.
    app.patch("/api/v1/elders/e-1", &stw, json!({"notes": "x"}))
        .await
        .err(403, "forbidden");
    app.delete("/api/v1/elders/e-1", &stw)
        .await
        .err(403, "forbidden");
    app.post("/api/v1/elders", &stw, elder_body("e-3"))
        .await
        .err(403, "forbidden");
    // Even with a body that would not validate: the role comes first.
    app.post("/api/v1/elders", &stw, json!({"nonsense": 1}))
        .await
        .err(403, "forbidden");
}

async fn devices_crud(app: &TestApp) {
    app.elder("e-1").await;
    let r = app
        .post(
            "/api/v1/devices",
            &app.admin,
            json!({"id": "btn-1", "elder_id": "e-1", "kind": "call_button"}),
        )
        .await;
    let mut d = r.ok(201).clone();
    // The device's MQTT secret is shown in this answer only.
    let secret = d
        .as_object_mut()
        .unwrap()
        .remove("secret")
        .expect("a new device's secret");
    assert_eq!(secret.as_str().unwrap().len(), 64);
    assert_eq!(
        d["heartbeat_s"],
        app.state.settings.ingest.default_heartbeat_s
    );
    assert_eq!(d["online"], false);
    assert!(d["last_seen"].is_null());

    app.post(
        "/api/v1/devices",
        &app.admin,
        json!({"id": "btn-1", "kind": "pendant"}),
    )
    .await
    .err(409, "already_exists");
    app.post(
        "/api/v1/devices",
        &app.admin,
        json!({"id": "btn-2", "elder_id": "e-404", "kind": "pendant"}),
    )
    .await
    .err(422, "invalid_body");
    app.post(
        "/api/v1/devices",
        &app.admin,
        json!({"id": "btn-2", "kind": "pendant", "online": true}),
    )
    .await
    .err(422, "invalid_body");
    app.post(
        "/api/v1/devices",
        &app.admin,
        json!({"id": "btn 2", "kind": "pendant"}),
    )
    .await
    .err(422, "invalid_body");
    app.post(
        "/api/v1/devices",
        &app.admin,
        json!({"id": "pend-1", "kind": "pendant", "heartbeat_s": 300}),
    )
    .await
    .ok(201);

    assert_eq!(
        app.get("/api/v1/devices", &app.admin)
            .await
            .ok(200)
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        app.get("/api/v1/devices/btn-1", &app.admin).await.ok(200),
        &d
    );

    let r = app
        .patch(
            "/api/v1/devices/btn-1",
            &app.admin,
            json!({"elder_id": null, "heartbeat_s": 120}),
        )
        .await;
    let p = r.ok(200).clone();
    assert!(p["elder_id"].is_null());
    assert_eq!(p["heartbeat_s"], 120);
    assert_eq!(p["kind"], "call_button");
    assert_eq!(
        app.get("/api/v1/devices/btn-1", &app.admin).await.ok(200),
        &p
    );
    let r = app
        .patch(
            "/api/v1/devices/btn-1",
            &app.admin,
            json!({"battery_pct": 100}),
        )
        .await;
    r.err(422, "read_only_field");
    assert!(r.message().contains("battery_pct"));
    app.patch(
        "/api/v1/devices/btn-1",
        &app.admin,
        json!({"kind": "toaster"}),
    )
    .await
    .err(422, "invalid_body");
    app.patch(
        "/api/v1/devices/btn-1",
        &app.admin,
        json!({"elder_id": "e-404"}),
    )
    .await
    .err(422, "invalid_body");

    let r = app.delete("/api/v1/devices/btn-1", &app.admin).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.get("/api/v1/devices/btn-1", &app.admin)
        .await
        .err(404, "not_found");
}

async fn stewards_and_their_own_record(app: &TestApp) {
    let s = app.steward("s-1").await;
    assert_eq!(s["on_duty"], false);
    assert_eq!(s["status"], "off_duty");
    assert!(s["lat"].is_null());
    app.steward("s-2").await;
    app.post(
        "/api/v1/stewards",
        &app.admin,
        json!({"id": "s-1", "name": "x", "phone": "1"}),
    )
    .await
    .err(409, "already_exists");
    let auto = app
        .post(
            "/api/v1/stewards",
            &app.admin,
            json!({"name": "Auto", "phone": "1"}),
        )
        .await;
    assert!(auto.ok(201)["id"].as_str().unwrap().starts_with("s-"));

    let stw = app.user("dawa", "steward", Some("s-1")).await;
    let sup = app.user("sup", "supervisor", None).await;

    // A steward sees their own record only.
    let mine = app.get("/api/v1/stewards", &stw).await;
    let mine = mine.ok(200).as_array().unwrap().clone();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["id"], "s-1");
    app.get("/api/v1/stewards/s-1", &stw).await.ok(200);
    app.get("/api/v1/stewards/s-2", &stw)
        .await
        .err(403, "forbidden");
    assert_eq!(
        app.get("/api/v1/stewards", &sup)
            .await
            .ok(200)
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Location and duty: their own, or a supervisor.
    let r = app
        .put(
            "/api/v1/stewards/s-1/location",
            &stw,
            json!({"lat": 29.65, "lon": 91.13, "accuracy_m": 8.5}),
        )
        .await;
    let at = r.ok(200);
    assert_eq!(at["lat"], 29.65);
    assert!(at["location_at"].is_string());
    app.put(
        "/api/v1/stewards/s-2/location",
        &stw,
        json!({"lat": 29.65, "lon": 91.13}),
    )
    .await
    .err(403, "forbidden");
    app.put(
        "/api/v1/stewards/s-1/location",
        &stw,
        json!({"lat": 95, "lon": 91.13}),
    )
    .await
    .err(422, "invalid_body");
    app.put(
        "/api/v1/stewards/s-1/location",
        &stw,
        json!({"lat": 29.0, "lon": 91.0, "accuracy_m": -1}),
    )
    .await
    .err(422, "invalid_body");
    app.put(
        "/api/v1/stewards/s-1/location",
        &stw,
        json!({"lat": "north", "lon": 91.13}),
    )
    .await
    .err(422, "invalid_body");

    let r = app
        .put("/api/v1/stewards/s-1/duty", &stw, json!({"on_duty": true}))
        .await;
    assert_eq!(r.ok(200)["status"], "available");
    app.put("/api/v1/stewards/s-2/duty", &stw, json!({"on_duty": true}))
        .await
        .err(403, "forbidden");
    let r = app
        .put("/api/v1/stewards/s-2/duty", &sup, json!({"on_duty": true}))
        .await;
    assert_eq!(r.ok(200)["on_duty"], true);
    app.put(
        "/api/v1/stewards/s-404/duty",
        &sup,
        json!({"on_duty": true}),
    )
    .await
    .err(404, "not_found");
    app.put("/api/v1/stewards/s-1/duty", &stw, json!({"on_duty": "yes"}))
        .await
        .err(422, "invalid_body");

    // PATCH: supervisors; duty and location are refused, not ignored.
    app.patch("/api/v1/stewards/s-1", &stw, json!({"phone": "2"}))
        .await
        .err(403, "forbidden");
    let r = app
        .patch(
            "/api/v1/stewards/s-1",
            &sup,
            json!({"phone": "+86 138", "skills": ["first_aid", "nurse"]}),
        )
        .await;
    let p = r.ok(200).clone();
    assert_eq!(p["phone"], "+86 138");
    assert_eq!(p["skills"], json!(["first_aid", "nurse"]));
    assert_eq!(p["status"], "available", "PATCH keeps dispatch state");
    assert_eq!(p["lat"], 29.65);
    assert_eq!(app.get("/api/v1/stewards/s-1", &sup).await.ok(200), &p);
    let r = app
        .patch("/api/v1/stewards/s-1", &sup, json!({"on_duty": false}))
        .await;
    r.err(422, "read_only_field");
    assert!(r.message().contains("/duty"));
    app.patch("/api/v1/stewards/s-1", &sup, json!({"status": "busy"}))
        .await
        .err(422, "read_only_field");
    app.patch("/api/v1/stewards/s-1", &sup, json!({"name": ""}))
        .await
        .err(422, "invalid_body");
}

/// `(method, path, body, admin, supervisor, steward)`: the statuses.
type MatrixRow<'a> = (&'a str, &'a str, Option<Value>, u16, u16, u16);

/// Who may call what: for each role, each route gives its status or 403.
async fn role_matrix(app: &TestApp) {
    app.elder("e-1").await;
    app.steward("s-1").await;
    app.post(
        "/api/v1/devices",
        &app.admin,
        json!({"id": "d-1", "kind": "pendant"}),
    )
    .await
    .ok(201);
    let inc = app.raise("e-1", IncidentKind::Call).await;
    let sup = app.user("sup", "supervisor", None).await;
    let stw = app.user("dawa", "steward", Some("s-1")).await;
    let adm = app.admin.clone();

    // (method, path, body, admin, supervisor, steward)
    let cancel = format!("/api/v1/incidents/{}/cancel", inc.id);
    let read = format!("/api/v1/incidents/{}", inc.id);
    let cases: Vec<MatrixRow> = vec![
        ("GET", "/api/v1/elders", None, 200, 200, 200),
        ("GET", "/api/v1/elders/e-1", None, 200, 200, 403),
        ("GET", "/api/v1/devices", None, 200, 200, 403),
        ("GET", "/api/v1/devices/d-1", None, 200, 200, 403),
        (
            "PATCH",
            "/api/v1/devices/d-1",
            Some(json!({})),
            200,
            200,
            403,
        ),
        ("GET", "/api/v1/stewards", None, 200, 200, 200),
        ("GET", "/api/v1/stewards/s-1", None, 200, 200, 200),
        (
            "PATCH",
            "/api/v1/stewards/s-1",
            Some(json!({})),
            200,
            200,
            403,
        ),
        (
            "PUT",
            "/api/v1/stewards/s-1/duty",
            Some(json!({"on_duty": false})),
            200,
            200,
            200,
        ),
        (
            "PUT",
            "/api/v1/stewards/s-1/location",
            Some(json!({"lat": 1, "lon": 1})),
            200,
            200,
            200,
        ),
        ("GET", "/api/v1/users", None, 200, 403, 403),
        ("GET", "/api/v1/events", None, 200, 200, 403),
        ("GET", "/api/v1/unknown-devices", None, 200, 200, 403),
        ("GET", "/api/v1/incidents", None, 200, 200, 200),
        ("GET", &read, None, 200, 200, 403),
        (
            "POST",
            &cancel,
            Some(json!({"reason": "matrix"})),
            409,
            409,
            403,
        ),
    ];
    // Cancel once so the matrix's cancels are all "not open" (409), not
    // order-dependent.
    app.post(&cancel, &sup, json!({"reason": "first"}))
        .await
        .ok(200);
    for (method, path, body, a, s, w) in cases {
        for (who, token, want) in [
            ("admin", &adm, a),
            ("supervisor", &sup, s),
            ("steward", &stw, w),
        ] {
            let r = app.call(method, path, Some(token), body.clone()).await;
            assert_eq!(r.status.as_u16(), want, "{who} {method} {path}: {}", r.body);
        }
    }
    // A steward's incident list holds only their own.
    assert_eq!(app.get("/api/v1/incidents", &stw).await.ok(200), &json!([]));
    assert_eq!(
        app.get("/api/v1/incidents", &sup)
            .await
            .ok(200)
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn bad_input_is_never_a_500(app: &TestApp) {
    app.elder("e-1").await;
    let t = app.admin.clone();
    let raw = |method: &str, path: &str, ct: Option<&str>, body: Vec<u8>| {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {t}"));
        if let Some(ct) = ct {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        req.body(Body::from(body)).unwrap()
    };

    // Malformed JSON, trailing junk, an empty body.
    for body in [&b"{\"name\": "[..], b"{}}", b"", b"\xff\xfe"] {
        app.send(raw(
            "POST",
            "/api/v1/elders",
            Some("application/json"),
            body.to_vec(),
        ))
        .await
        .err(400, "invalid_json");
    }
    // Wrong types and missing fields: 422 naming the field.
    let mut b = elder_body("e-2");
    b["birth_year"] = json!("old");
    let r = app.post("/api/v1/elders", &t, b).await;
    r.err(422, "invalid_body");
    assert!(r.message().starts_with("birth_year"), "{}", r.message());
    let r = app
        .post("/api/v1/elders", &t, json!({"id": "e-2", "name": "x"}))
        .await;
    r.err(422, "invalid_body");
    assert!(r.message().contains("birth_year"), "{}", r.message());
    let mut b = elder_body("e-2");
    b["contacts"][0]["phone"] = json!(139);
    let r = app.post("/api/v1/elders", &t, b).await;
    assert!(
        r.message().starts_with("contacts[0].phone"),
        "{}",
        r.message()
    );
    app.post("/api/v1/elders", &t, json!([1, 2]))
        .await
        .err(422, "invalid_body");
    app.patch("/api/v1/elders/e-1", &t, json!("x"))
        .await
        .err(422, "invalid_body");

    // Content type and size.
    app.send(raw(
        "POST",
        "/api/v1/elders",
        Some("text/plain"),
        b"{}".to_vec(),
    ))
    .await
    .err(415, "unsupported_media_type");
    app.send(raw("POST", "/api/v1/elders", None, b"{}".to_vec()))
        .await
        .err(415, "unsupported_media_type");
    let mut big = elder_body("e-3");
    big["notes"] = json!("x".repeat(api::BODY_LIMIT + 1));
    app.post("/api/v1/elders", &t, big)
        .await
        .err(413, "payload_too_large");
    // merge-patch+json is JSON too.
    app.send(raw(
        "PATCH",
        "/api/v1/elders/e-1",
        Some("application/merge-patch+json"),
        br#"{"grid": "g-9"}"#.to_vec(),
    ))
    .await
    .ok(200);

    // Path ids that cannot be, unknown ids.
    app.get("/api/v1/elders/bad%20id", &t)
        .await
        .err(400, "invalid_path");
    app.get(&format!("/api/v1/elders/{}", "x".repeat(65)), &t)
        .await
        .err(400, "invalid_path");
    app.get("/api/v1/elders/%FF", &t)
        .await
        .err(400, "invalid_path");
    app.get("/api/v1/incidents/inc-nope", &t)
        .await
        .err(404, "not_found");
    app.get("/api/v1/devices/nope", &t)
        .await
        .err(404, "not_found");
    app.get("/api/v1/stewards/nope", &t)
        .await
        .err(404, "not_found");

    // Queries name the parameter.
    for (q, name) in [
        ("status=nope", "status"),
        ("status=dispatching,nope", "status"),
        ("since=yesterday", "since"),
        ("priority=high", "priority"),
        ("kind=flood", "kind"),
        ("elder_id=a%2Fb", "elder_id"),
        ("limit=-1", "limit"),
        ("limit=many", "limit"),
    ] {
        let r = app.get(&format!("/api/v1/incidents?{q}"), &t).await;
        r.err(400, "invalid_query");
        assert!(r.message().contains(name), "{q}: {}", r.message());
    }
    app.get("/api/v1/events?since=2025-13-45", &t)
        .await
        .err(400, "invalid_query");
    app.get("/api/v1/events?device_id=no%20pe", &t)
        .await
        .err(400, "invalid_query");
    app.get("/api/v1/incidents?status=a&status=b", &t)
        .await
        .err(400, "invalid_query");

    // Unknown routes and methods, in the same shape.
    app.get("/api/v1/nothing", &t).await.err(404, "not_found");
    app.call("GET", "/nothing", None, None)
        .await
        .err(404, "not_found");
    app.call("PUT", "/api/v1/elders", Some(&t), Some(json!({})))
        .await
        .err(405, "method_not_allowed");
    app.call("DELETE", "/api/v1/stewards/s-1", Some(&t), None)
        .await
        .err(405, "method_not_allowed");

    // Every route, with junk: a 4xx or a 2xx, never a 500.
    let junk_bodies: [&[u8]; 4] = [
        b"",
        b"null",
        b"{\"id\": 5}",
        b"[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]",
    ];
    for (method, path) in api::routes().table() {
        // An endless body (and no hub runs here): tests/tests/notify.rs
        // covers the stream.
        if *path == "/api/v1/stream" {
            continue;
        }
        for id in ["e-1", "x", "%00", "%2e%2e"] {
            let path = path.replace("{id}", id).replace("{username}", id);
            for body in junk_bodies {
                let r = app
                    .send(raw(
                        method.as_str(),
                        &path,
                        Some("application/json"),
                        body.to_vec(),
                    ))
                    .await;
                assert!(r.status.as_u16() < 500, "{method} {path}");
            }
        }
    }
}

async fn events_and_unknown_devices(app: &TestApp) {
    let sup = app.user("sup", "supervisor", None).await;
    let r = app.get("/api/v1/events", &sup).await;
    assert!(r.ok(200).is_array());
    app.get(
        "/api/v1/events?device_id=d-1&since=2025-01-01T00:00:00Z&limit=5",
        &sup,
    )
    .await
    .ok(200);
    app.get("/api/v1/events?since=2025-01-01T08:00:00+08:00", &sup)
        .await
        .ok(200);
    let r = app.get("/api/v1/unknown-devices", &sup).await;
    assert!(r.ok(200).is_array());
}

async fn incidents_list_read_cancel(app: &TestApp) {
    app.elder("e-1").await;
    app.elder("e-2").await;
    app.steward("s-1").await;
    let sup = app.user("sup", "supervisor", None).await;
    let stw = app.user("dawa", "steward", Some("s-1")).await;

    let call = app.raise("e-1", IncidentKind::Call).await;
    let fall = app.raise("e-2", IncidentKind::Fall).await;
    // A repeated press joins the open incident.
    let again = app.raise("e-1", IncidentKind::Call).await;
    assert_eq!(again.id, call.id);

    let all = app.get("/api/v1/incidents", &sup).await;
    let all = all.ok(200).as_array().unwrap().clone();
    assert_eq!(all.len(), 2);
    // Newest first.
    assert_eq!(all[0]["id"], fall.id.to_string());

    let sup_token = sup.as_str();
    let only = |q: &str| {
        let q = q.to_owned();
        async move {
            app.get(&format!("/api/v1/incidents?{q}"), sup_token)
                .await
                .ok(200)
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(only("kind=call").await, vec![call.id.to_string()]);
    assert_eq!(only("elder_id=e-2").await, vec![fall.id.to_string()]);
    assert_eq!(only("status=dispatching,acknowledged").await.len(), 2);
    assert_eq!(only("status=resolved").await.len(), 0);
    assert_eq!(only("priority=urgent").await.len(), 2);
    assert_eq!(only("limit=1").await.len(), 1);
    assert_eq!(only("since=2999-01-01T00:00:00Z").await.len(), 0);

    let r = app
        .get(&format!("/api/v1/incidents/{}", call.id), &sup)
        .await;
    let detail = r.ok(200);
    assert_eq!(detail["id"], call.id.to_string());
    assert_eq!(detail["status"], "dispatching");
    assert_eq!(detail["event_count"], 2);
    assert!(detail["offers"].is_array());
    assert!(!detail["timeline"].as_array().unwrap().is_empty());

    // A steward sees none of these: none was offered to them.
    assert_eq!(app.get("/api/v1/incidents", &stw).await.ok(200), &json!([]));
    app.get(&format!("/api/v1/incidents/{}", call.id), &stw)
        .await
        .err(403, "forbidden");

    // Cancel: supervisors, with a reason, once.
    let path = format!("/api/v1/incidents/{}/cancel", call.id);
    app.post(&path, &stw, json!({"reason": "x"}))
        .await
        .err(403, "forbidden");
    app.post(&path, &sup, json!({"reason": "  "}))
        .await
        .err(422, "invalid_body");
    app.post(&path, &sup, json!({}))
        .await
        .err(422, "invalid_body");
    let r = app
        .post(
            &path,
            &sup,
            json!({"reason": "daughter called: she is fine"}),
        )
        .await;
    let c = r.ok(200);
    assert_eq!(c["status"], "cancelled");
    assert!(c["resolved_at"].is_string());
    app.post(&path, &sup, json!({"reason": "again"}))
        .await
        .err(409, "not_open");
    app.post(
        "/api/v1/incidents/inc-404/cancel",
        &sup,
        json!({"reason": "x"}),
    )
    .await
    .err(404, "not_found");
    let r = app
        .get(&format!("/api/v1/incidents/{}", call.id), &sup)
        .await;
    let timeline = r.ok(200)["timeline"].as_array().unwrap().clone();
    assert!(
        timeline.iter().any(|t| t["actor"] == "user:sup"),
        "the cancel is on the timeline as the supervisor: {timeline:?}"
    );
    assert_eq!(only("status=cancelled").await, vec![call.id.to_string()]);
}

async fn a_steward_sees_their_incident_and_its_elder(app: &TestApp) {
    app.elder("e-1").await;
    app.elder("e-2").await;
    app.steward("s-1").await;
    app.steward("s-2").await;
    let dawa = app.user("dawa", "steward", Some("s-1")).await;
    let pema = app.user("pema", "steward", Some("s-2")).await;
    let mine = app.raise("e-1", IncidentKind::Fall).await;
    let other = app.raise("e-2", IncidentKind::Call).await;
    app.assign(&mine, "s-1").await;
    app.assign(&other, "s-2").await;

    // Their incident, and only theirs.
    let list = app.get("/api/v1/incidents", &dawa).await;
    let ids: Vec<_> = list
        .ok(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(mine.id.to_string())]);
    let r = app
        .get(&format!("/api/v1/incidents/{}", mine.id), &dawa)
        .await;
    assert_eq!(r.ok(200)["steward_id"], "s-1");
    app.get(&format!("/api/v1/incidents/{}", other.id), &dawa)
        .await
        .err(403, "forbidden");
    // Filters narrow a steward's list; they never widen it.
    let r = app.get("/api/v1/incidents?elder_id=e-2", &dawa).await;
    assert_eq!(r.ok(200), &json!([]));

    // Their incident's elder, and only that one.
    let r = app.get("/api/v1/elders/e-1", &dawa).await;
    assert_eq!(
        r.ok(200)["medications"],
        json!(["amlodipine 5 mg, morning"])
    );
    app.get("/api/v1/elders/e-2", &dawa)
        .await
        .err(403, "forbidden");
    let r = app.get("/api/v1/elders", &dawa).await;
    let ids: Vec<_> = r
        .ok(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("e-1")]);
    let r = app.get("/api/v1/elders", &pema).await;
    let ids: Vec<_> = r
        .ok(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("e-2")]);

    // Still no cancelling, nor changing the elder.
    app.post(
        &format!("/api/v1/incidents/{}/cancel", mine.id),
        &dawa,
        json!({"reason": "x"}),
    )
    .await
    .err(403, "forbidden");
    app.patch("/api/v1/elders/e-1", &dawa, json!({"notes": "x"}))
        .await
        .err(403, "forbidden");
}

async fn ingested_events_and_unknown_devices(app: &TestApp) {
    use dispatcher::domain::DeviceId;
    use dispatcher::store::IncomingEvent;

    app.elder("e-1").await;
    app.post(
        "/api/v1/devices",
        &app.admin,
        json!({"id": "btn-1", "elder_id": "e-1", "kind": "call_button"}),
    )
    .await
    .ok(201);
    let now = app.state.clock.now();
    let event = |device: &str, id: &str, secs: i64| {
        IncomingEvent {
        device_id: DeviceId::parse(device).unwrap(),
        message: serde_json::from_value(json!({
            "event_id": id, "type": "call.pressed", "ts": (now - Duration::seconds(secs)).to_rfc3339()
        }))
        .unwrap(),
        received_at: now - Duration::seconds(secs),
        rate_limited: false,
    }
    };
    app.state
        .store
        .ingest(
            &[
                event("btn-1", "ev-1", 30),
                event("ghost-1", "ev-2", 20),
                event("btn-1", "ev-1", 30),
            ],
            &app.state.rules,
        )
        .await
        .expect("ingest");

    let sup = app.user("sup", "supervisor", None).await;
    let r = app.get("/api/v1/events", &sup).await;
    let events = r.ok(200).as_array().unwrap().clone();
    assert_eq!(events.len(), 2, "each once: {events:?}");
    assert_eq!(events[0]["device_id"], "ghost-1", "newest first");
    assert_eq!(events[1]["type"], "call.pressed");
    assert_eq!(events[1]["action"], "opened");
    let r = app.get("/api/v1/events?device_id=btn-1", &sup).await;
    assert_eq!(r.ok(200).as_array().unwrap().len(), 1);
    let since = (now - Duration::seconds(25)).to_rfc3339();
    let r = app
        .get(
            &format!("/api/v1/events?since={}", since.replace('+', "%2B")),
            &sup,
        )
        .await;
    assert_eq!(r.ok(200).as_array().unwrap().len(), 1);
    let r = app.get("/api/v1/events?limit=1", &sup).await;
    assert_eq!(r.ok(200).as_array().unwrap().len(), 1);

    let r = app.get("/api/v1/unknown-devices", &sup).await;
    let unknown = r.ok(200).as_array().unwrap().clone();
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown[0]["device_id"], "ghost-1");

    let r = app.get("/api/v1/incidents?kind=call", &sup).await;
    assert_eq!(r.ok(200).as_array().unwrap().len(), 1);
}

// --- follow-ups (回访) after resolved incidents ---

/// Runs each follow-up scenario against SQLite and PostgreSQL, each on a
/// manual clock (overdue is a matter of time).
macro_rules! follow_up_on_both {
    ($($name:ident),* $(,)?) => {
        mod follow_up_sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let clock = super::Clock::manual(super::follow_up_t0());
                    let app = super::spawn_with(super::Backend::Sqlite, clock).await;
                    super::$name(&app).await;
                }
            )*
        }
        mod follow_up_postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let clock = super::Clock::manual(super::follow_up_t0());
                    let app = super::spawn_with(super::Backend::Postgres, clock).await;
                    super::$name(&app).await;
                }
            )*
        }
    };
}

follow_up_on_both!(
    follow_up_made_once_by_a_resolve,
    follow_up_none_after_cancel_technical_or_clear,
    follow_up_completed_and_what_follows,
    follow_up_handed_back_then_reassigned,
    follow_up_errors_change_nothing,
    follow_up_overdue_by_the_clock,
    follow_up_races_end_one_way,
);

fn follow_up_t0() -> chrono::DateTime<Utc> {
    "2026-11-28T08:00:00Z".parse().unwrap()
}

/// Every follow-up, as the admin sees them.
async fn all_follow_ups(app: &TestApp, query: &str) -> Vec<Value> {
    let r = app
        .get(&format!("/api/v1/follow-ups?{query}"), &app.admin)
        .await;
    r.ok(200).as_array().expect("a list").clone()
}

/// Elder `elder` with an incident of `kind` assigned to `steward` (whose
/// login is `token`) and resolved by them with `outcome`: the incident.
async fn resolved_by(
    app: &TestApp,
    elder: &str,
    kind: IncidentKind,
    steward: &str,
    token: &str,
    outcome: &str,
) -> Incident {
    let incident = app.raise(elder, kind).await;
    app.assign(&incident, steward).await;
    app.post(
        &format!("/api/v1/incidents/{}/resolve", incident.id),
        token,
        json!({"outcome": outcome, "notes": "helped up"}),
    )
    .await
    .ok(200);
    incident
}

/// e-1 with steward s-1 (login `dawa`), e-2 with s-2 (`pema`), and a
/// supervisor (`sup`): their tokens.
async fn follow_up_site(app: &TestApp) -> (String, String, String) {
    app.elder("e-1").await;
    app.elder("e-2").await;
    app.steward("s-1").await;
    app.steward("s-2").await;
    let dawa = app.user("dawa", "steward", Some("s-1")).await;
    let pema = app.user("pema", "steward", Some("s-2")).await;
    let sup = app.user("sup", "supervisor", None).await;
    (dawa, pema, sup)
}

async fn follow_up_made_once_by_a_resolve(app: &TestApp) {
    let (dawa, _, sup) = follow_up_site(app).await;
    let now = app.state.clock.now();
    let fall = resolved_by(app, "e-1", IncidentKind::Fall, "s-1", &dawa, "assisted").await;

    let list = all_follow_ups(app, "").await;
    assert_eq!(list.len(), 1, "{list:?}");
    let f = &list[0];
    assert_eq!(f["incident_id"], fall.id.as_str());
    assert_eq!(f["elder_id"], "e-1");
    assert_eq!(f["steward_id"], "s-1", "the steward who resolved it");
    assert_eq!(f["kind"], "call");
    assert_eq!(f["status"], "open");
    assert_eq!(f["overdue"], false);
    assert_eq!(f["follows_id"], Value::Null);
    let due: chrono::DateTime<Utc> = f["due_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(due, now + Duration::hours(24), "follow_ups.call_within_h");
    // The incident's timeline says so.
    let detail = app
        .get(&format!("/api/v1/incidents/{}", fall.id), &app.admin)
        .await;
    let lines: Vec<&str> = detail.ok(200)["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["what"].as_str())
        .collect();
    assert!(
        lines.contains(&"follow-up call due by 2026-11-29T08:00:00Z"),
        "{lines:?}"
    );

    // A second resolve is refused and makes no second follow-up.
    app.post(
        &format!("/api/v1/incidents/{}/resolve", fall.id),
        &sup,
        json!({"outcome": "other"}),
    )
    .await
    .err(409, "not_open");
    assert_eq!(all_follow_ups(app, "").await.len(), 1);

    // After a hospital stay, a visit; resolved by a supervisor with nobody
    // assigned, it needs someone.
    let call = app.raise("e-2", IncidentKind::Call).await;
    app.post(
        &format!("/api/v1/incidents/{}/resolve", call.id),
        &sup,
        json!({"outcome": "hospital"}),
    )
    .await
    .ok(200);
    let list = all_follow_ups(app, "elder_id=e-2").await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["kind"], "visit");
    assert_eq!(list[0]["steward_id"], Value::Null);
    let due: chrono::DateTime<Utc> = list[0]["due_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(due, now + Duration::hours(72), "follow_ups.visit_within_h");
    assert_eq!(all_follow_ups(app, "unassigned=true").await.len(), 1);

    // The elder's notebook reads them through the store.
    let e1 = ElderId::parse("e-1").unwrap();
    let notebook = app.state.store.follow_ups_of_elder(&e1).await.unwrap();
    assert_eq!(notebook.len(), 1);
    assert_eq!(notebook[0].incident_id, Some(fall.id.clone()));
}

async fn follow_up_none_after_cancel_technical_or_clear(app: &TestApp) {
    let (_, _, sup) = follow_up_site(app).await;
    // Cancelled.
    let cancelled = app.raise("e-1", IncidentKind::Call).await;
    app.post(
        &format!("/api/v1/incidents/{}/cancel", cancelled.id),
        &sup,
        json!({"reason": "pressed by the grandson"}),
    )
    .await
    .ok(200);
    // A device's own incident, resolved by a person.
    let battery = app.raise("e-1", IncidentKind::BatteryLow).await;
    app.post(
        &format!("/api/v1/incidents/{}/resolve", battery.id),
        &sup,
        json!({"outcome": "assisted", "notes": "battery changed"}),
    )
    .await
    .ok(200);
    // Cleared by the system.
    let cleared = app.raise("e-2", IncidentKind::Inactivity).await;
    let key = DedupKey::for_elder(&ElderId::parse("e-2").unwrap(), IncidentKind::Inactivity);
    let done = app
        .state
        .store
        .apply(
            &[Effect::Clear {
                key: key.to_string(),
                note: "moving again".into(),
            }],
            &dispatcher::domain::Actor::System,
            app.state.clock.now(),
            &app.state.rules,
        )
        .await
        .expect("clear");
    assert_eq!(done[0].incident.as_ref().unwrap().id, cleared.id);
    let detail = app
        .get(&format!("/api/v1/incidents/{}", cleared.id), &app.admin)
        .await;
    assert_eq!(detail.ok(200)["outcome"], "cleared");

    assert_eq!(all_follow_ups(app, "").await, Vec::<Value>::new());
}

/// Completes `id` as `token`, expecting 200: the answer.
async fn complete(app: &TestApp, token: &str, id: &str, body: Value) -> Value {
    app.post(&format!("/api/v1/follow-ups/{id}/complete"), token, body)
        .await
        .ok(200)
        .clone()
}

async fn follow_up_completed_and_what_follows(app: &TestApp) {
    let (dawa, pema, sup) = follow_up_site(app).await;
    let t0 = app.state.clock.now();

    // Well: done, nothing follows.
    resolved_by(app, "e-1", IncidentKind::Call, "s-1", &dawa, "assisted").await;
    let first = all_follow_ups(app, "").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.state.clock.advance(Duration::hours(3));
    let r = complete(
        app,
        &dawa,
        &first,
        json!({"outcome": "well", "note": "eating again"}),
    )
    .await;
    assert_eq!(r["done"]["status"], "done");
    assert_eq!(r["done"]["outcome"], "well");
    assert_eq!(r["done"]["note"], "eating again");
    assert_eq!(r["done"]["done_by"], "steward:s-1");
    assert_eq!(r["done"]["done_at"], "2026-11-28T11:00:00Z");
    assert_eq!(r["next"], Value::Null);

    // Needs a visit: a visit follows, for the same steward, due after
    // visit_within_h from now.
    resolved_by(app, "e-2", IncidentKind::Fall, "s-2", &pema, "assisted").await;
    let second = all_follow_ups(app, "elder_id=e-2").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = complete(app, &pema, &second, json!({"outcome": "needs_visit"})).await;
    let visit = r["next"].clone();
    assert_eq!(visit["kind"], "visit");
    assert_eq!(visit["steward_id"], "s-2");
    assert_eq!(visit["follows_id"], second.as_str());
    assert_eq!(visit["status"], "open");
    let due: chrono::DateTime<Utc> = visit["due_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(due, t0 + Duration::hours(3) + Duration::hours(72));

    // Nobody answers the door: another visit; a supervisor completes it.
    let visit_id = visit["id"].as_str().unwrap().to_owned();
    let r = complete(
        app,
        &pema,
        &visit_id,
        json!({"outcome": "unreachable", "note": "no answer"}),
    )
    .await;
    let again = r["next"]["id"].as_str().unwrap().to_owned();
    assert_eq!(r["next"]["follows_id"], visit_id.as_str());
    let r = complete(
        app,
        &sup,
        &again,
        json!({"outcome": "hospitalised", "note": "the son says she was admitted"}),
    )
    .await;
    assert_eq!(r["done"]["done_by"], "user:sup");
    assert_eq!(r["next"], Value::Null);

    // Each outcome is accepted; only the two ask for more.
    for (i, outcome) in ["referred", "declined", "other"].iter().enumerate() {
        let elder = format!("e-x{i}");
        app.elder(&elder).await;
        let inc = resolved_by(app, &elder, IncidentKind::Call, "s-1", &dawa, "false_alarm").await;
        let f = app
            .state
            .store
            .follow_ups_of_incident(&inc.id)
            .await
            .unwrap();
        let r = complete(app, &dawa, f[0].id.as_str(), json!({"outcome": outcome})).await;
        assert_eq!(r["done"]["outcome"], *outcome);
        assert_eq!(r["next"], Value::Null, "{outcome}");
    }

    // Open ones are only the ones still to do.
    assert_eq!(
        all_follow_ups(app, "status=open").await,
        Vec::<Value>::new()
    );
    assert_eq!(all_follow_ups(app, "status=done").await.len(), 7);
    // The timeline of e-2's fall tells the whole story.
    let fall = app
        .state
        .store
        .follow_ups_of_elder(&ElderId::parse("e-2").unwrap())
        .await
        .unwrap();
    assert_eq!(fall.len(), 3, "the call and two visits");
    let detail = app
        .get(
            &format!(
                "/api/v1/incidents/{}",
                fall[0].incident_id.as_ref().unwrap()
            ),
            &app.admin,
        )
        .await;
    let lines: Vec<String> = detail.ok(200)["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["what"].as_str().map(str::to_owned))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l == "follow-up call done: needs_visit"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == "follow-up visit done: unreachable — no answer"),
        "{lines:?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("follow-up visit due by"))
            .count(),
        2
    );
}

async fn follow_up_handed_back_then_reassigned(app: &TestApp) {
    let (dawa, pema, sup) = follow_up_site(app).await;
    resolved_by(app, "e-1", IncidentKind::Fall, "s-1", &dawa, "assisted").await;
    let id = all_follow_ups(app, "").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mine = app.get("/api/v1/follow-ups", &dawa).await;
    assert_eq!(mine.ok(200).as_array().unwrap().len(), 1);
    assert_eq!(
        app.get("/api/v1/follow-ups", &pema).await.ok(200),
        &json!([])
    );

    // s-1 cannot go.
    let r = app
        .post(
            &format!("/api/v1/follow-ups/{id}/hand-back"),
            &dawa,
            json!({"reason": "my mother is ill"}),
        )
        .await;
    assert_eq!(r.ok(200)["steward_id"], Value::Null);
    assert_eq!(
        app.get("/api/v1/follow-ups", &dawa).await.ok(200),
        &json!([])
    );
    app.get(&format!("/api/v1/follow-ups/{id}"), &dawa)
        .await
        .err(403, "forbidden");
    app.post(
        &format!("/api/v1/follow-ups/{id}/complete"),
        &dawa,
        json!({"outcome": "well"}),
    )
    .await
    .err(403, "forbidden");
    // Supervisors see it needs someone.
    let unassigned = all_follow_ups(app, "unassigned=true").await;
    assert_eq!(unassigned.len(), 1);
    assert_eq!(unassigned[0]["id"], id.as_str());

    // Only a supervisor reassigns, and only to a steward who exists.
    app.post(
        &format!("/api/v1/follow-ups/{id}/reassign"),
        &pema,
        json!({"steward_id": "s-2", "reason": "I can go"}),
    )
    .await
    .err(403, "forbidden");
    let r = app
        .post(
            &format!("/api/v1/follow-ups/{id}/reassign"),
            &sup,
            json!({"steward_id": "s-9", "reason": "x"}),
        )
        .await;
    r.err(422, "invalid");
    assert!(r.message().contains("s-9"), "{}", r.message());
    let r = app
        .post(
            &format!("/api/v1/follow-ups/{id}/reassign"),
            &sup,
            json!({"steward_id": "s-2", "reason": "same grid"}),
        )
        .await;
    assert_eq!(r.ok(200)["steward_id"], "s-2");
    assert_eq!(
        all_follow_ups(app, "unassigned=true").await,
        Vec::<Value>::new()
    );
    assert_eq!(all_follow_ups(app, "steward_id=s-2").await.len(), 1);

    // Who, from, to, why.
    let detail = app.get(&format!("/api/v1/follow-ups/{id}"), &pema).await;
    let history = detail.ok(200)["reassignments"].clone();
    assert_eq!(history.as_array().unwrap().len(), 2, "{history}");
    assert_eq!(history[0]["by"], "steward:s-1");
    assert_eq!(history[0]["from_steward"], "s-1");
    assert_eq!(history[0]["to_steward"], Value::Null);
    assert_eq!(history[0]["reason"], "my mother is ill");
    assert_eq!(history[1]["by"], "user:sup");
    assert_eq!(history[1]["from_steward"], Value::Null);
    assert_eq!(history[1]["to_steward"], "s-2");
    assert_eq!(history[1]["reason"], "same grid");

    // s-2 does it; it cannot be reassigned or handed back after.
    complete(app, &pema, &id, json!({"outcome": "well"})).await;
    app.post(
        &format!("/api/v1/follow-ups/{id}/reassign"),
        &sup,
        json!({"steward_id": "s-1"}),
    )
    .await
    .err(409, "already_done");
    app.post(
        &format!("/api/v1/follow-ups/{id}/hand-back"),
        &pema,
        json!({"reason": "too late"}),
    )
    .await
    .err(409, "already_done");
}

async fn follow_up_errors_change_nothing(app: &TestApp) {
    let (dawa, pema, sup) = follow_up_site(app).await;
    resolved_by(app, "e-1", IncidentKind::Fall, "s-1", &dawa, "assisted").await;
    let id = all_follow_ups(app, "").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/follow-ups/{id}");
    let before = app.get(&path, &app.admin).await.ok(200).clone();

    // Unknown ids.
    let unknown = "/api/v1/follow-ups/fu-nope";
    app.get(unknown, &app.admin).await.err(404, "not_found");
    for (action, body) in [
        ("complete", json!({"outcome": "well"})),
        ("hand-back", json!({"reason": "x"})),
        ("reassign", json!({"steward_id": "s-1"})),
    ] {
        let token = if action == "hand-back" { &dawa } else { &sup };
        app.post(&format!("{unknown}/{action}"), token, body)
            .await
            .err(404, "not_found");
    }
    app.get("/api/v1/follow-ups/a%20b", &app.admin)
        .await
        .err(400, "invalid_path");

    // Bodies that do not fit, each naming what is wrong.
    for (body, names) in [
        (json!({"outcome": "fine"}), "outcome"),
        (json!({}), "outcome"),
        (json!({"outcome": "well", "mood": "good"}), "mood"),
        (json!({"outcome": "well", "note": "a\u{0}b"}), "note"),
        (json!({"outcome": "well", "note": "x".repeat(4001)}), "note"),
        (json!({"outcome": 3}), "outcome"),
    ] {
        let r = app
            .post(&format!("{path}/complete"), &dawa, body.clone())
            .await;
        assert_eq!(r.status.as_u16(), 422, "{body}: {}", r.body);
        assert!(r.message().contains(names), "{body}: {}", r.message());
    }
    let r = app
        .call("POST", &format!("{path}/complete"), Some(&dawa), None)
        .await;
    assert!(r.status.is_client_error(), "{}", r.body);
    app.post(&format!("{path}/hand-back"), &dawa, json!({"reason": "  "}))
        .await
        .err(422, "invalid_body");
    app.post(
        &format!("{path}/reassign"),
        &sup,
        json!({"steward_id": "a b"}),
    )
    .await
    .err(422, "invalid_body");

    // The wrong caller.
    app.post(
        &format!("{path}/complete"),
        &pema,
        json!({"outcome": "well"}),
    )
    .await
    .err(403, "forbidden");
    app.post(
        &format!("{path}/hand-back"),
        &pema,
        json!({"reason": "not mine"}),
    )
    .await
    .err(403, "forbidden");
    app.post(&format!("{path}/hand-back"), &sup, json!({"reason": "x"}))
        .await
        .err(403, "forbidden");
    app.get(&path, &pema).await.err(403, "forbidden");
    app.get("/api/v1/follow-ups?steward_id=s-1", &pema)
        .await
        .err(403, "forbidden");

    // Bad queries.
    for q in [
        "status=closed",
        "overdue=maybe",
        "unassigned=1",
        "elder_id=a%20b",
        "limit=0",
    ] {
        let r = app
            .get(&format!("/api/v1/follow-ups?{q}"), &app.admin)
            .await;
        r.err(400, "invalid_query");
    }

    // Nothing changed.
    assert_eq!(app.get(&path, &app.admin).await.ok(200), &before);

    // Done once; the second time is a conflict and changes nothing.
    complete(app, &dawa, &id, json!({"outcome": "well", "note": "first"})).await;
    let done = app.get(&path, &app.admin).await.ok(200).clone();
    let r = app
        .post(
            &format!("{path}/complete"),
            &dawa,
            json!({"outcome": "needs_visit", "note": "second"}),
        )
        .await;
    r.err(409, "already_done");
    assert_eq!(r.message(), format!("follow-up {id} is already done"));
    app.post(
        &format!("{path}/complete"),
        &sup,
        json!({"outcome": "other"}),
    )
    .await
    .err(409, "already_done");
    assert_eq!(app.get(&path, &app.admin).await.ok(200), &done);
    assert_eq!(
        all_follow_ups(app, "").await.len(),
        1,
        "no visit from a refused completion"
    );
}

async fn follow_up_overdue_by_the_clock(app: &TestApp) {
    let (dawa, _, _) = follow_up_site(app).await;
    resolved_by(app, "e-1", IncidentKind::Fall, "s-1", &dawa, "assisted").await;
    resolved_by(app, "e-2", IncidentKind::Call, "s-1", &dawa, "hospital").await;
    assert_eq!(
        all_follow_ups(app, "overdue=true").await,
        Vec::<Value>::new()
    );

    // Due at 24 h: not yet at exactly 24 h, overdue a second later.
    app.state.clock.advance(Duration::hours(24));
    let (admin, dawa) = relogin(app).await;
    assert_eq!(
        listed(app, &admin, "overdue=true").await,
        Vec::<Value>::new()
    );
    app.state.clock.advance(Duration::seconds(1));
    let late = listed(app, &admin, "overdue=true").await;
    assert_eq!(late.len(), 1, "{late:?}");
    assert_eq!(late[0]["kind"], "call");
    assert_eq!(late[0]["overdue"], true);
    let all = listed(app, &admin, "").await;
    let visit = all.iter().find(|f| f["kind"] == "visit").unwrap();
    assert_eq!(visit["overdue"], false, "the visit has 72 h");
    // The steward sees theirs overdue too.
    let mine = listed(app, &dawa, "overdue=true").await;
    assert_eq!(mine.len(), 1);

    // The visit too, after 72 h; done, neither is overdue any more.
    app.state.clock.advance(Duration::hours(48));
    let (admin, dawa) = relogin(app).await;
    let late = listed(app, &admin, "overdue=true").await;
    assert_eq!(late.len(), 2);
    for f in &late {
        complete(
            app,
            &dawa,
            f["id"].as_str().unwrap(),
            json!({"outcome": "well"}),
        )
        .await;
    }
    assert_eq!(
        listed(app, &admin, "overdue=true").await,
        Vec::<Value>::new()
    );
    let done = listed(app, &admin, "status=done").await;
    assert!(done.iter().all(|f| f["overdue"] == false), "{done:?}");
}

/// Sessions last 12 h: the admin and `dawa` log in again after the clock
/// moved.
async fn relogin(app: &TestApp) -> (String, String) {
    (
        app.login("admin", ADMIN_PASSWORD).await,
        app.login("dawa", PASSWORD).await,
    )
}

/// The follow-ups `token` sees for the query.
async fn listed(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    app.get(&format!("/api/v1/follow-ups?{query}"), token)
        .await
        .ok(200)
        .as_array()
        .unwrap()
        .clone()
}

/// Two people act on one follow-up at once: the store decides, and the
/// end is one of the orders, never a mix of both.
async fn follow_up_races_end_one_way(app: &TestApp) {
    let (dawa, pema, sup) = follow_up_site(app).await;
    for round in 0..5 {
        let elder = format!("e-r{round}");
        app.elder(&elder).await;
        let inc = resolved_by(app, &elder, IncidentKind::Fall, "s-1", &dawa, "assisted").await;
        let id = app
            .state
            .store
            .follow_ups_of_incident(&inc.id)
            .await
            .unwrap()[0]
            .id
            .to_string();
        let path = format!("/api/v1/follow-ups/{id}");

        // The steward and a supervisor complete it at once, both asking
        // for a visit: one wins, one visit follows.
        let complete = format!("{path}/complete");
        let (a, b) = tokio::join!(
            app.post(&complete, &dawa, json!({"outcome": "needs_visit"})),
            app.post(&complete, &sup, json!({"outcome": "unreachable"})),
        );
        let mut statuses = [a.status.as_u16(), b.status.as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "{} / {}", a.body, b.body);
        let all = app
            .state
            .store
            .follow_ups_of_incident(&inc.id)
            .await
            .unwrap();
        assert_eq!(all.len(), 2, "one visit, not two: {all:?}");
        let visit = all
            .iter()
            .find(|f| f.follows_id.is_some())
            .expect("the visit")
            .id
            .to_string();

        // The steward hands the visit back while a supervisor sends s-2:
        // either order ends with s-2 holding it.
        let vpath = format!("/api/v1/follow-ups/{visit}");
        let (hand_back, reassign) = (format!("{vpath}/hand-back"), format!("{vpath}/reassign"));
        let (back, sent) = tokio::join!(
            app.post(&hand_back, &dawa, json!({"reason": "sick"})),
            app.post(&reassign, &sup, json!({"steward_id": "s-2"})),
        );
        assert_eq!(sent.status.as_u16(), 200, "{}", sent.body);
        assert!([200, 403].contains(&back.status.as_u16()), "{}", back.body);
        let detail = app.get(&vpath, &pema).await.ok(200).clone();
        assert_eq!(detail["follow_up"]["steward_id"], "s-2");
        let history = detail["reassignments"].as_array().unwrap();
        let expected = if back.status.as_u16() == 200 { 2 } else { 1 };
        assert_eq!(history.len(), expected, "{history:?}");
        assert_eq!(history.last().unwrap()["to_steward"], "s-2");
    }
}
