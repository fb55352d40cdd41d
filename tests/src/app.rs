//! A dispatcher per test, in this process, on its own database and its own
//! broker (embedded, on a free port) or its own topic root on the
//! machine's Mosquitto, so tests run in parallel.

use std::net::{SocketAddr, TcpListener};

use chrono::{DateTime, Utc};
use dispatcher::api::AppState;
use dispatcher::clock::{Clock, Worker};
use dispatcher::settings::Settings;
use dispatcher::startup::Application;
use protocol::Topics;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::db::TestDb;
use crate::device::TestDevice;

/// The admin password every test app starts with.
pub const ADMIN_PASSWORD: &str = "test-admin-password";

/// Which broker a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    /// rumqttd inside the dispatcher, on a free loopback port.
    Embedded,
    /// The machine's Mosquitto (`ELDERCARE_TEST_MQTT_URL`, default
    /// mqtt://127.0.0.1:1883), under a topic root of this test's own.
    Mosquitto,
    /// A broker of the test's own on this loopback port.
    Port(u16),
    /// A Mosquitto of the test's own run from `config/mosquitto.conf`
    /// ([`crate::shipped_mosquitto`]): devices log in with their secrets.
    Shipped(u16),
}

/// Which store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A free loopback port (racy by nature; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The machine's Mosquitto for tests.
pub fn mosquitto_addr() -> (String, u16) {
    let url =
        std::env::var("ELDERCARE_TEST_MQTT_URL").unwrap_or_else(|_| "mqtt://127.0.0.1:1883".into());
    let b = dispatcher::mqtt::BrokerUrl::parse(&url)
        .expect("ELDERCARE_TEST_MQTT_URL is mqtt://host:port");
    (b.host, b.port)
}

/// How to start a test dispatcher.
pub struct Options {
    pub broker: Broker,
    pub db: Db,
    /// Start a manual clock at this time instead of the system clock.
    pub clock: Option<DateTime<Utc>>,
    /// Extra settings as environment variables (`ELDERCARE__INGEST__…`).
    pub env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            broker: Broker::Embedded,
            db: Db::Sqlite,
            clock: None,
            env: Vec::new(),
        }
    }
}

/// A running dispatcher and what a test needs to talk to it.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub broker_host: String,
    pub broker_port: u16,
    pub topics: Topics,
    pub clock: Clock,
    pub state: AppState,
    pub admin: String,
    /// The broker this app runs against.
    pub broker: Broker,
    /// Device secrets the API gave this test, by device id.
    secrets: std::sync::Mutex<std::collections::HashMap<String, String>>,
    stop: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    db: Box<dyn TestDb>,
}

impl TestApp {
    pub async fn spawn(options: Options) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("ELDERCARE_TEST_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rumqttd=off")),
            )
            .with_test_writer()
            .try_init();
        let run = uuid::Uuid::new_v4().simple().to_string();
        let db: Box<dyn TestDb> = match options.db {
            Db::Sqlite => Box::new(crate::db::fresh_sqlite()),
            Db::Postgres => Box::new(
                crate::db::fresh_postgres()
                    .await
                    .expect("a fresh PostgreSQL database (is PostgreSQL running?)"),
            ),
        };
        let topic_root = format!("test-{run}/eldercare/v1");
        let env: Vec<(String, String)> = vec![
            ("ELDERCARE_HTTP_ADDR".into(), "127.0.0.1:0".into()),
            ("ELDERCARE_DATABASE_URL".into(), db.url().to_owned()),
            ("ELDERCARE_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into()),
            ("ELDERCARE__MQTT__TOPIC_ROOT".into(), topic_root.clone()),
            (
                "ELDERCARE__MQTT__CLIENT_ID".into(),
                format!("dispatcher-{run}"),
            ),
            ("ELDERCARE__INGEST__TICK_MS".into(), "50".into()),
            ("ELDERCARE__INGEST__HEARTBEAT_FLUSH_MS".into(), "100".into()),
            // Planned visits raise "visit overdue" incidents as the clock
            // passes their window: only the care tests, which count on
            // them, turn planning on.
            ("ELDERCARE__CARE__PLAN_VISITS".into(), "false".into()),
        ];
        // The embedded broker's port is picked free, but another test may
        // take it before the dispatcher binds it: pick again then.
        let mut attempts = 0;
        let (broker_host, broker_port, topic_root, clock, app) = loop {
            attempts += 1;
            let mut env = env.clone();
            let (broker_host, broker_port) = match options.broker {
                Broker::Embedded => {
                    let port = free_port();
                    env.push((
                        "ELDERCARE_EMBEDDED_MQTT_ADDR".into(),
                        format!("127.0.0.1:{port}"),
                    ));
                    ("127.0.0.1".to_owned(), port)
                }
                Broker::Mosquitto | Broker::Port(_) | Broker::Shipped(_) => {
                    let (host, port) = match options.broker {
                        Broker::Port(port) | Broker::Shipped(port) => {
                            ("127.0.0.1".to_owned(), port)
                        }
                        _ => mosquitto_addr(),
                    };
                    env.push(("ELDERCARE_MQTT_URL".into(), format!("mqtt://{host}:{port}")));
                    (host, port)
                }
            };
            env.extend(options.env.clone());
            let settings = Settings::load_from(None, env).expect("test settings are valid");
            // A test may choose its own root (a broker whose ACLs name it).
            let topic_root = settings.mqtt.topic_root.clone();
            let clock = options.clock.map_or(Clock::System, Clock::manual);
            match Application::build(settings, clock.clone()).await {
                Ok(app) => break (broker_host, broker_port, topic_root, clock, app),
                Err(e)
                    if attempts < 3
                        && matches!(options.broker, Broker::Embedded)
                        && format!("{e:#}").contains("is in use") =>
                {
                    continue;
                }
                Err(e) => panic!("the dispatcher starts: {e:?}"),
            }
        };
        let base = format!("http://{}", app.http_addr());
        let state = app.state().clone();
        let stop = CancellationToken::new();
        let task = {
            let stop = stop.clone();
            tokio::spawn(async move { app.run_until(async move { stop.cancelled().await }).await })
        };
        let http = reqwest::Client::new();
        let mut me = Self {
            base,
            http,
            broker_host,
            broker_port,
            topics: Topics::new(topic_root),
            clock,
            state,
            admin: String::new(),
            broker: options.broker,
            secrets: Default::default(),
            stop,
            task: Some(task),
            db,
        };
        me.admin = me.login("admin", ADMIN_PASSWORD).await;
        // Ready means subscribed: a device publishing now is heard.
        crate::wait::until("the dispatcher to connect to its broker", || async {
            let r = me
                .http
                .get(format!("{}/readyz", me.base))
                .send()
                .await
                .ok()?;
            (r.status() == StatusCode::OK).then_some(())
        })
        .await;
        // The subscription is sent right after the connection; give the
        // broker a moment to register it before a test publishes.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        me
    }

    /// The database's URL, for the few tests that must reach under the
    /// store (to damage a row).
    pub fn db_url(&self) -> &str {
        self.db.url()
    }

    /// Logs in and returns the bearer token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                None,
                Method::POST,
                "/api/v1/auth/login",
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login {username}: {body}");
        body["token"].as_str().expect("token").to_owned()
    }

    /// One HTTP call; returns the status and the JSON body (Null if none).
    pub async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("HTTP request");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
    }

    /// GET as admin, expecting 200.
    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Some(&self.admin), Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// POST as admin, expecting 2xx.
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, resp) = self
            .call(Some(&self.admin), Method::POST, path, Some(body))
            .await;
        assert!(status.is_success(), "POST {path}: {status} {resp}");
        resp
    }

    /// Registers an elder with the given limits and one device of `kind`.
    pub async fn elder_with_device(&self, elder: &str, device: &str, kind: &str, limits: Value) {
        self.post("/api/v1/elders", elder_body(elder, limits)).await;
        self.register_device(
            json!({"id": device, "elder_id": elder, "kind": kind, "heartbeat_s": 60}),
        )
        .await;
    }

    /// Registers a device (`POST /api/v1/devices` as admin) and keeps the
    /// secret the answer shows once, for [`TestApp::device`].
    pub async fn register_device(&self, body: Value) -> Value {
        let resp = self.post("/api/v1/devices", body).await;
        let id = resp["id"].as_str().expect("device id").to_owned();
        let secret = resp["secret"].as_str().expect("a new device's secret");
        self.remember_secret(&id, secret);
        resp
    }

    /// Keeps a device's secret for [`TestApp::device`].
    pub fn remember_secret(&self, device: &str, secret: &str) {
        self.secrets
            .lock()
            .unwrap()
            .insert(device.to_owned(), secret.to_owned());
    }

    /// The device's secret as this test knows it; if it does not, a new
    /// one (`POST /api/v1/devices/{id}/secret`), or None for a device
    /// that is not registered.
    pub async fn secret(&self, device: &str) -> Option<String> {
        if let Some(s) = self.secrets.lock().unwrap().get(device) {
            return Some(s.clone());
        }
        let (status, body) = self
            .call(
                Some(&self.admin),
                Method::POST,
                &format!("/api/v1/devices/{device}/secret"),
                None,
            )
            .await;
        if status != StatusCode::OK {
            return None;
        }
        let secret = body["secret"].as_str()?.to_owned();
        self.remember_secret(device, &secret);
        Some(secret)
    }

    /// How a device of this app logs in to its broker: its own
    /// credentials on the embedded broker, anonymously on Mosquitto.
    pub async fn login_of(&self, device: &str) -> crate::device::Login {
        match self.broker {
            Broker::Embedded | Broker::Shipped(_) => crate::device::Login::Device {
                secret: self
                    .secret(device)
                    .await
                    .unwrap_or_else(|| "not-registered".into()),
            },
            _ => crate::device::Login::Anonymous,
        }
    }

    /// Registers a steward with a login, puts them on duty at a position
    /// and returns their token.
    pub async fn steward(&self, id: &str, grid: &str, lat: f64, lon: f64) -> String {
        self.post(
            "/api/v1/stewards",
            json!({"id": id, "name": format!("Steward {id}"), "phone": "13900000101",
                   "grid": grid, "skills": ["first_aid"], "languages": ["bo", "zh"]}),
        )
        .await;
        let password = format!("{id}-password");
        self.post(
            "/api/v1/users",
            json!({"username": id, "password": password, "role": "steward", "steward_id": id}),
        )
        .await;
        let token = self.login(id, &password).await;
        let (s, b) = self
            .call(
                Some(&token),
                Method::PUT,
                &format!("/api/v1/stewards/{id}/location"),
                Some(json!({"lat": lat, "lon": lon})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "location: {b}");
        let (s, b) = self
            .call(
                Some(&token),
                Method::PUT,
                &format!("/api/v1/stewards/{id}/duty"),
                Some(json!({"on_duty": true})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "duty: {b}");
        token
    }

    /// Waits until every worker that acts on time (the engine, the
    /// deadline timers, the liveness detector, the outbox) has finished a
    /// pass at the manual clock's current time: after a test moves the
    /// clock, whatever is due then has happened, and whatever has not
    /// happened was not due. Needs a manual clock.
    pub async fn settle(&self) {
        assert!(self.clock.is_manual(), "settle needs a manual clock");
        let passed = self.clock.passed(&Worker::ALL);
        if tokio::time::timeout(std::time::Duration::from_secs(20), passed)
            .await
            .is_err()
        {
            panic!(
                "the workers did not finish a pass at {} within 20 s",
                self.clock.now()
            );
        }
    }

    /// One incident in full (offers, timeline, candidates, deliveries).
    pub async fn incident(&self, id: &str) -> Value {
        self.get(&format!("/api/v1/incidents/{id}")).await
    }

    /// Waits until the incident satisfies `check`.
    pub async fn wait_incident(
        &self,
        id: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        crate::wait::until(what, || async {
            let d = self.incident(id).await;
            check(&d).then_some(d)
        })
        .await
    }

    /// A device connected to this app's broker under its topic root, with
    /// its own credentials on the embedded broker.
    pub async fn device(&self, id: &str) -> TestDevice {
        let login = self.login_of(id).await;
        if self.broker == Broker::Embedded {
            // The same client id connecting while the last connection
            // (a dropped TestDevice, saying goodbye) still lives would
            // take it over, and the broker would fire its last will.
            let device = protocol::DeviceId::parse(id).expect("valid device id");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            while self.state.device_links.connected().contains(&device)
                && std::time::Instant::now() < deadline
            {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        TestDevice::connect_as(
            &self.broker_host,
            self.broker_port,
            &self.topics,
            id,
            self.clock.clone(),
            login,
        )
        .await
    }

    /// Incidents as the admin sees them, with a query string.
    pub async fn incidents(&self, query: &str) -> Vec<Value> {
        match self.get(&format!("/api/v1/incidents?{query}")).await {
            Value::Array(a) => a,
            other => panic!("incident list is not an array: {other}"),
        }
    }

    /// Waits until the incident list for `query` has exactly `n` entries.
    pub async fn wait_incidents(&self, query: &str, n: usize) -> Vec<Value> {
        crate::wait::until(&format!("{n} incidents for {query}"), || async {
            let list = self.incidents(query).await;
            (list.len() == n).then_some(list)
        })
        .await
    }

    /// The stored events of a device.
    pub async fn events(&self, device: &str) -> Vec<Value> {
        match self
            .get(&format!("/api/v1/events?device_id={device}&limit=10000"))
            .await
        {
            Value::Array(a) => a,
            other => panic!("event list is not an array: {other}"),
        }
    }

    /// One metric's value from `/metrics` (0 when absent).
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    /// The HTTP address.
    pub fn addr(&self) -> SocketAddr {
        self.base
            .trim_start_matches("http://")
            .parse()
            .expect("socket address")
    }

    /// Stops gracefully and returns how the run ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        match self.task.take() {
            Some(t) => t.await.expect("dispatcher task"),
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A plausible elder body.
pub fn elder_body(id: &str, limits: Value) -> Value {
    json!({
        "id": id,
        "name": format!("Elder {id}"),
        "birth_year": 1946,
        "address": "塔玛社区 1组 7号",
        "lat": 29.6598,
        "lon": 91.1377,
        "grid": "grid-1",
        "conditions": ["hypertension"],
        "medications": ["nifedipine SR 20 mg twice daily"],
        "risks": {"fall": true, "wandering": true},
        "lives_alone": true,
        "languages": ["bo", "zh"],
        "contacts": [{"name": "Tashi", "relation": "son", "phone": "13800001234"}],
        "notes": "",
        "limits": limits,
    })
}
