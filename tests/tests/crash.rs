//! The promise that matters most: an event the broker accepted is stored
//! exactly once, even when the dispatcher is killed mid-burst.

use std::time::Duration;

use dispatcher::clock::Clock;
use eldercare_tests::app::{elder_body, free_port};
use eldercare_tests::device::TestDevice;
use eldercare_tests::process::{DispatcherProcess, Mosquitto, ProcessApi, dispatcher_env};
use eldercare_tests::wait;
use protocol::Topics;
use serde_json::{Value, json};

const BURST: u64 = 5_000;

struct Dispatcher {
    env: Vec<(String, String)>,
    api: ProcessApi,
}

impl Dispatcher {
    /// A dispatcher process's settings: its own port, database, topic root
    /// and stable client id on `mosquitto`, plus `extra`.
    fn configure(
        mosquitto: &Mosquitto,
        db_url: &str,
        name: &str,
        extra: &[(&str, &str)],
    ) -> (Self, String) {
        let http_port = free_port();
        let root = format!("{name}-{}/eldercare/v1", uuid::Uuid::new_v4().simple());
        let mut env = dispatcher_env(
            http_port,
            db_url,
            mosquitto,
            &root,
            &format!("dispatcher-{name}-test"),
        );
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let d = Self {
            env,
            api: ProcessApi::on_port(http_port),
        };
        (d, root)
    }

    async fn ready(&self, process: &DispatcherProcess) {
        self.api.ready().await;
        assert!(
            process.log_text().contains("connected to the MQTT broker"),
            "{}",
            process.log_text()
        );
    }
}

async fn stored(db_url: &str, device: &str) -> (i64, i64) {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(db_url)
        .await
        .expect("open the dispatcher's database");
    let row: (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM events WHERE device_id = $1",
    )
    .bind(device)
    .fetch_one(&pool)
    .await
    .expect("count events");
    pool.close().await;
    row
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_mid_burst_loses_and_duplicates_nothing() {
    let mosquitto = Mosquitto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let db_url = format!("sqlite://{}", dir.path().join("crash.db").display());
    // The burst is one device's, far over a flooding device's limit:
    // raised, so every event must be stored (PROTOCOL.md would keep only
    // a sample of a flood).
    let (d, root) = Dispatcher::configure(
        &mosquitto,
        &db_url,
        "crash",
        &[("ELDERCARE__INGEST__RATE_LIMIT_PER_S", "1000000")],
    );
    let log = dir.path().join("dispatcher.log");
    let mut process = DispatcherProcess::serve(&d.env, &log);
    d.ready(&process).await;
    let token = d.api.admin_token().await;
    d.api
        .post(&token, "/api/v1/elders", elder_body("e-burst", json!({})))
        .await;
    d.api
        .post(
            &token,
            "/api/v1/devices",
            json!({"id": "burst-1", "elder_id": "e-burst", "kind": "vitals_pad"}),
        )
        .await;

    let topics = Topics::new(root);
    let mut device = TestDevice::connect(
        "127.0.0.1",
        mosquitto.port,
        &topics,
        "burst-1",
        Clock::System,
    )
    .await;
    let publisher = tokio::spawn(async move {
        for i in 0..BURST {
            device
                .event(
                    &format!("ev-{i:05}"),
                    "vitals",
                    json!({"heart_rate": 72, "spo2": 95}),
                )
                .await;
            if i % 250 == 0 {
                tokio::task::yield_now().await;
            }
        }
        device.flushed().await;
        device
    });

    // Kill it while the burst is arriving: some events committed, some
    // received but not committed, some still at the broker.
    wait::until("a part of the burst to be stored", || async {
        let (n, _) = stored(&db_url, "burst-1").await;
        (n >= 500).then_some(())
    })
    .await;
    process.kill9();
    let (at_kill, _) = stored(&db_url, "burst-1").await;
    assert!(
        at_kill < BURST as i64,
        "the kill came after the whole burst was stored; the test proves nothing"
    );

    let device = publisher.await.expect("publisher");
    assert_eq!(device.acked(), BURST, "the broker accepted every event");

    // Restart: the broker still holds the session and redelivers.
    let mut process = DispatcherProcess::serve(&d.env, &log);
    d.ready(&process).await;
    let (n, distinct) = wait::until("every accepted event to be stored", || async {
        let (n, distinct) = stored(&db_url, "burst-1").await;
        (n >= BURST as i64).then_some((n, distinct))
    })
    .await;
    // Nothing more arrives later either.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (n_after, _) = stored(&db_url, "burst-1").await;
    assert_eq!(
        (n, distinct, n_after),
        (BURST as i64, BURST as i64, BURST as i64)
    );
    eprintln!(
        "burst of {BURST}: {at_kill} stored before SIGKILL, all {n} stored exactly once after restart"
    );

    // And a SIGTERM is a clean exit.
    let status = process.terminate();
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        process.log_text()
    );
    assert!(process.log_text().contains("stopped"));
    drop(device);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dispatcher_reconnects_and_resubscribes_when_the_broker_restarts() {
    use eldercare_tests::app::{Broker, Options, TestApp};

    let mosquitto = Mosquitto::start();
    let app = TestApp::spawn(Options {
        broker: Broker::Port(mosquitto.port),
        ..Options::default()
    })
    .await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    let mut button = app.device("btn-1").await;
    button.event("before", "call.pressed", json!({})).await;
    app.wait_incidents("elder_id=e-1", 1).await;
    drop(button);

    // The broker dies and comes back empty: no session, no subscriptions.
    let mosquitto = mosquitto.restart();
    wait::until("the dispatcher to notice and reconnect", || async {
        let reconnects = app.metric("dispatcher_mqtt_reconnects_total").await;
        let connected = app.metric("dispatcher_mqtt_connected").await;
        (reconnects >= 1.0 && connected == 1.0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut button = app.device("btn-1").await;
    button
        .event("after", "fall.detected", json!({"confidence": 0.9}))
        .await;
    let open = app.wait_incidents("kind=fall", 1).await;
    assert_eq!(open[0]["priority"], "critical");
    drop(mosquitto);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_offers_still_expire_and_re_offer_after_a_sigkill() {
    let mosquitto = Mosquitto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let db_url = format!("sqlite://{}", dir.path().join("offers.db").display());
    let (d, root) = Dispatcher::configure(
        &mosquitto,
        &db_url,
        "offers",
        &[
            ("ELDERCARE__DISPATCH__OFFER_TIMEOUT_S__URGENT", "4"),
            ("ELDERCARE__INGEST__TICK_MS", "100"),
        ],
    );
    let log = dir.path().join("dispatcher.log");
    let mut process = DispatcherProcess::serve(&d.env, &log);
    d.ready(&process).await;
    let token = d.api.admin_token().await;
    d.api
        .post(&token, "/api/v1/elders", elder_body("e-1", json!({})))
        .await;
    d.api
        .post(
            &token,
            "/api/v1/devices",
            json!({"id": "btn-1", "elder_id": "e-1", "kind": "call_button"}),
        )
        .await;
    for (id, lat) in [("s-near", 29.6607), ("s-far", 29.6679)] {
        d.api
            .post(
                &token,
                "/api/v1/stewards",
                json!({"id": id, "name": id, "phone": "13900000101", "grid": "grid-2"}),
            )
            .await;
        for (path, body) in [
            ("location", json!({"lat": lat, "lon": 91.1377})),
            ("duty", json!({"on_duty": true})),
        ] {
            let r = d
                .api
                .http
                .put(format!("{}/api/v1/stewards/{id}/{path}", d.api.base))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .expect("put");
            assert!(r.status().is_success(), "{path}: {}", r.status());
        }
    }
    let incident = |token: String| {
        let d = &d;
        async move {
            let list: Value = d
                .api
                .http
                .get(format!("{}/api/v1/incidents?elder_id=e-1", d.api.base))
                .bearer_auth(&token)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let id = list.as_array()?.first()?["id"].as_str()?.to_owned();
            d.api
                .http
                .get(format!("{}/api/v1/incidents/{id}", d.api.base))
                .bearer_auth(&token)
                .send()
                .await
                .ok()?
                .json::<Value>()
                .await
                .ok()
        }
    };

    let topics = Topics::new(root);
    let mut button =
        TestDevice::connect("127.0.0.1", mosquitto.port, &topics, "btn-1", Clock::System).await;
    button.event("press-1", "call.pressed", json!({})).await;
    button.flushed().await;
    let offered = wait::until("an offer to s-near", || async {
        let detail = incident(token.clone()).await?;
        (detail["offers"][0]["steward_id"] == "s-near").then_some(detail)
    })
    .await;
    process.kill9();

    let mut process = DispatcherProcess::serve(&d.env, &log);
    d.ready(&process).await;
    let restarted_at = chrono::Utc::now();
    let token = d.api.admin_token().await;
    let detail = wait::until("the offer to expire and s-far to be offered", || async {
        let detail = incident(token.clone()).await?;
        let offers = detail["offers"].as_array()?;
        (offers.len() == 2
            && offers[0]["response"] == "expired"
            && offers[1]["steward_id"] == "s-far")
            .then_some(detail)
    })
    .await;
    let expires_at: chrono::DateTime<chrono::Utc> = offered["offers"][0]["expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let expired_at: chrono::DateTime<chrono::Utc> = detail["offers"][0]["responded_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let due = expires_at.max(restarted_at);
    eprintln!(
        "offer due {expires_at}, restarted {restarted_at}, expired {expired_at} ({} ms after due)",
        (expired_at - due).num_milliseconds()
    );
    assert!(expired_at >= expires_at, "never early");
    assert!(
        expired_at - due < chrono::Duration::seconds(2),
        "a restart delays an expiry by at most a tick"
    );
    assert!(process.terminate().success());
}
