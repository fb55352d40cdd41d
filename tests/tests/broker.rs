//! The embedded broker lets a device in only as itself and only onto its
//! own topics (PROTOCOL.md, Transport), with real MQTT clients (rumqttc)
//! against a whole dispatcher: impostors are refused and counted, the
//! dispatcher's own connection cannot be taken, and the real device's
//! events still arrive and are stored once.

use std::time::Duration;

use eldercare_tests::app::{Db, Options, TestApp};
use eldercare_tests::device::{Login, TestDevice, device_options};
use eldercare_tests::wait::{self, PATIENCE};
use protocol::DeviceId;
use reqwest::{Method, StatusCode};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, LastWill, MqttOptions,
    Packet, QoS,
};
use serde_json::json;

async fn app() -> TestApp {
    app_with(vec![]).await
}

async fn app_with(env: Vec<(&str, &str)>) -> TestApp {
    TestApp::spawn(Options {
        env: env
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ..Options::default()
    })
    .await
}

/// Options for a client of `app`'s broker.
fn options(app: &TestApp, client_id: &str, login: Option<(&str, &str)>) -> MqttOptions {
    let mut opts = MqttOptions::new(client_id, app.broker_host.clone(), app.broker_port);
    opts.set_keep_alive(Duration::from_secs(5));
    if let Some((user, pass)) = login {
        opts.set_credentials(user, pass);
    }
    opts
}

/// How a connection attempt ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    Accepted,
    Refused(ConnectReturnCode),
    /// Closed without a CONNACK.
    Closed,
}

/// Connects and returns how the broker answered, and the client if it
/// was let in.
async fn try_connect(opts: MqttOptions) -> (Outcome, Option<(AsyncClient, EventLoop)>) {
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    let outcome = tokio::time::timeout(PATIENCE, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Outcome::Accepted,
                Ok(_) => {}
                Err(ConnectionError::ConnectionRefused(code)) => return Outcome::Refused(code),
                Err(_) => return Outcome::Closed,
            }
        }
    })
    .await
    .expect("the broker answers a CONNECT");
    match outcome {
        Outcome::Accepted => (outcome, Some((client, eventloop))),
        other => (other, None),
    }
}

/// Polls until the broker closes the connection.
async fn closed(eventloop: &mut EventLoop) {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if eventloop.poll().await.is_err() {
                return;
            }
        }
    })
    .await
    .expect("the broker closes the connection");
}

async fn refused_total(app: &TestApp, reason: &str) -> f64 {
    app.metric(&format!(
        "dispatcher_broker_refused_total{{reason=\"{reason}\"}}"
    ))
    .await
}

async fn two_homes(app: &TestApp) -> (String, String) {
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    app.elder_with_device("e-2", "btn-2", "call_button", json!({}))
        .await;
    (
        app.secret("btn-1").await.unwrap(),
        app.secret("btn-2").await.unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impostors_cannot_connect_and_the_real_device_is_heard_once() {
    let app = app().await;
    let (one, two) = two_homes(&app).await;
    let dispatcher_id = app.state.settings.mqtt.client_id.clone();

    let attempts: Vec<(&str, MqttOptions, &str)> = vec![
        (
            "a wrong secret",
            options(&app, "btn-1", Some(("btn-1", &two))),
            "bad_credentials",
        ),
        ("no secret", options(&app, "btn-1", None), "no_credentials"),
        (
            "an empty secret",
            options(&app, "btn-1", Some(("btn-1", ""))),
            "no_credentials",
        ),
        (
            "another device's client id, with one's own login",
            options(&app, "btn-2", Some(("btn-1", &one))),
            "client_id",
        ),
        (
            "an unregistered device",
            options(&app, "stranger-7", Some(("stranger-7", &one))),
            "bad_credentials",
        ),
        (
            "the dispatcher's client id",
            options(&app, &dispatcher_id, Some((&dispatcher_id, &one))),
            "client_id",
        ),
    ];
    for (what, opts, reason) in attempts {
        let before = refused_total(&app, reason).await;
        let (outcome, _) = try_connect(opts).await;
        assert_ne!(outcome, Outcome::Accepted, "{what} was let in");
        assert_eq!(
            refused_total(&app, reason).await,
            before + 1.0,
            "{what} is counted as {reason}"
        );
    }
    // A last will on another device's topic would let it fake that
    // device's "offline".
    let mut opts = options(&app, "btn-1", Some(("btn-1", &one)));
    opts.set_last_will(LastWill::new(
        app.topics.status(&DeviceId::parse("btn-2").unwrap()),
        r#"{"online": false}"#,
        QoS::AtLeastOnce,
        true,
    ));
    let (outcome, _) = try_connect(opts).await;
    assert_ne!(outcome, Outcome::Accepted, "a will on btn-2's status");
    assert_eq!(refused_total(&app, "will_topic").await, 1.0);

    // The dispatcher kept its connection through all of it.
    let (status, _) = app.call(None, Method::GET, "/readyz", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.metric("dispatcher_mqtt_reconnects_total").await, 0.0);

    // The real device is heard, once.
    let mut button = app.device("btn-1").await;
    button
        .event("press-1", "call.pressed", json!({"button": "bedside"}))
        .await;
    button.flushed().await;
    app.wait_incidents("elder_id=e-1", 1).await;
    wait::until("the press stored", || async {
        (app.events("btn-1").await.len() == 1).then_some(())
    })
    .await;
    assert!(app.events("btn-2").await.is_empty());
    assert_eq!(app.metric("dispatcher_events_stored_total").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_is_kept_to_its_own_topics() {
    let app = app().await;
    let (one, _) = two_homes(&app).await;
    let btn2 = DeviceId::parse("btn-2").unwrap();
    let btn1 = DeviceId::parse("btn-1").unwrap();
    let event = json!({"event_id": "fake-1", "type": "call.pressed",
                       "ts": chrono::Utc::now().to_rfc3339()})
    .to_string();

    // Each try on a connection of its own: the first breach closes it.
    let publish_as_btn2 = app.topics.events(&btn2);
    let commands_of_btn2 = app.topics.commands(&btn2);
    let commands_of_btn1 = app.topics.commands(&btn1);

    // Publishing a press as btn-2.
    let (outcome, conn) = try_connect(options(&app, "btn-1", Some(("btn-1", &one)))).await;
    assert_eq!(outcome, Outcome::Accepted);
    let (client, mut eventloop) = conn.unwrap();
    client
        .publish(&publish_as_btn2, QoS::AtLeastOnce, false, event.clone())
        .await
        .unwrap();
    closed(&mut eventloop).await;
    assert_eq!(refused_total(&app, "publish_topic").await, 1.0);

    // Publishing to its own commands topic (the dispatcher's to write).
    let (_, conn) = app_connect(&app, &one).await;
    let (client, mut eventloop) = conn;
    client
        .publish(&commands_of_btn1, QoS::AtLeastOnce, false, "{}")
        .await
        .unwrap();
    closed(&mut eventloop).await;
    assert_eq!(refused_total(&app, "publish_topic").await, 2.0);

    // Reading everything, another device's commands, a wildcard of its own.
    for (n, filter) in [
        "#".to_owned(),
        commands_of_btn2.clone(),
        format!("{}/devices/btn-1/#", app.topics.root()),
        format!("{}/devices/+/events", app.topics.root()),
    ]
    .into_iter()
    .enumerate()
    {
        let (_, (client, mut eventloop)) = app_connect(&app, &one).await;
        client.subscribe(&filter, QoS::AtLeastOnce).await.unwrap();
        closed(&mut eventloop).await;
        assert_eq!(
            refused_total(&app, "subscribe_topic").await,
            (n + 1) as f64,
            "{filter}"
        );
    }

    // Nothing reached the dispatcher as btn-2, and btn-1's own topics work.
    let mut button = app.device("btn-1").await;
    let mut commands = button.commands().await;
    button.event("press-1", "call.pressed", json!({})).await;
    button.flushed().await;
    assert_eq!(commands.next().await["state"], "received");
    assert!(app.events("btn-2").await.is_empty());
    assert!(app.incidents("elder_id=e-2").await.is_empty());
    assert_eq!(app.events("btn-1").await.len(), 1);
}

/// Connects as btn-1 with `secret`, expecting to be let in.
async fn app_connect(app: &TestApp, secret: &str) -> (Outcome, (AsyncClient, EventLoop)) {
    let (outcome, conn) = try_connect(options(app, "btn-1", Some(("btn-1", secret)))).await;
    assert_eq!(outcome, Outcome::Accepted);
    (outcome, conn.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_or_revoking_a_secret_closes_the_connection_using_the_old_one() {
    let app = app().await;
    let (old, _) = two_homes(&app).await;
    let (_, (_client, mut eventloop)) = app_connect(&app, &old).await;

    let (status, body) = app
        .call(
            Some(&app.admin),
            Method::POST,
            "/api/v1/devices/btn-1/secret",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["device_id"], "btn-1");
    let new = body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    closed(&mut eventloop).await;
    let (outcome, _) = try_connect(options(&app, "btn-1", Some(("btn-1", &old)))).await;
    assert_ne!(outcome, Outcome::Accepted, "the old secret still works");

    let (_, (_client, mut eventloop)) = app_connect(&app, &new).await;
    let (status, _) = app
        .call(
            Some(&app.admin),
            Method::DELETE,
            "/api/v1/devices/btn-1/secret",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    closed(&mut eventloop).await;
    let (outcome, _) = try_connect(options(&app, "btn-1", Some(("btn-1", &new)))).await;
    assert_ne!(outcome, Outcome::Accepted, "a revoked secret still works");

    // Stewards have no business here; unknown devices are 404.
    let steward = app.steward("s-1", "grid-1", 29.66, 91.14).await;
    for (token, path, want) in [
        (
            steward.as_str(),
            "/api/v1/devices/btn-1/secret",
            StatusCode::FORBIDDEN,
        ),
        (
            app.admin.as_str(),
            "/api/v1/devices/nobody/secret",
            StatusCode::NOT_FOUND,
        ),
    ] {
        for method in [Method::POST, Method::DELETE] {
            let (status, body) = app.call(Some(token), method.clone(), path, None).await;
            assert_eq!(status, want, "{method} {path}: {body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_connecting_again_replaces_its_older_connection() {
    let app = app().await;
    let (one, _) = two_homes(&app).await;
    let (_, (_first, mut first_loop)) = app_connect(&app, &one).await;
    let login = Login::Device {
        secret: one.clone(),
    };
    let mut second = TestDevice::connect_as(
        &app.broker_host,
        app.broker_port,
        &app.topics,
        "btn-1",
        app.clock.clone(),
        login,
    )
    .await;
    closed(&mut first_loop).await;
    second.event("press-1", "call.pressed", json!({})).await;
    second.flushed().await;
    app.wait_incidents("elder_id=e-1", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_packets_close_the_connection_and_oversized_events_are_counted() {
    let app = app().await;
    let (one, _) = two_homes(&app).await;
    let ts = chrono::Utc::now().to_rfc3339();
    // Over the protocol's 4 KiB, under the broker's limit: reaches the
    // dispatcher, rejected and counted.
    let mut button = app.device("btn-1").await;
    button
        .raw_event(
            format!(
                r#"{{"event_id":"big","type":"vitals","ts":"{ts}","data":{{"x":"{}"}}}}"#,
                "x".repeat(8_000)
            )
            .into_bytes(),
        )
        .await;
    button.flushed().await;
    wait::until("the oversized event counted", || async {
        (app.metric("dispatcher_rejected_messages_total{reason=\"too_large\"}")
            .await
            == 1.0)
            .then_some(())
    })
    .await;
    drop(button);

    // Over the broker's limit: the connection is closed before the
    // payload is read.
    let mut opts = options(&app, "btn-1", Some(("btn-1", &one)));
    opts.set_max_packet_size(1024 * 1024, 1024 * 1024);
    let (outcome, conn) = try_connect(opts).await;
    assert_eq!(outcome, Outcome::Accepted);
    let (client, mut eventloop) = conn.unwrap();
    let topic = app.topics.events(&DeviceId::parse("btn-1").unwrap());
    client
        .publish(&topic, QoS::AtLeastOnce, false, vec![b'x'; 100 * 1024])
        .await
        .unwrap();
    closed(&mut eventloop).await;
    assert_eq!(refused_total(&app, "packet_too_large").await, 1.0);
    assert!(app.events("btn-1").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_refused_and_devices_still_connect_after() {
    let app = app_with(vec![("ELDERCARE__EMBEDDED_BROKER__MAX_CONNECTIONS", "3")]).await;
    let (one, _) = two_homes(&app).await;
    let addr = format!("{}:{}", app.broker_host, app.broker_port);
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    wait::until("a fourth connection refused", || async {
        let _extra = tokio::net::TcpStream::connect(&addr).await.ok()?;
        (refused_total(&app, "too_many_connections").await >= 1.0).then_some(())
    })
    .await;
    drop(idle);
    wait::until(
        "a device to connect once the idle ones are gone",
        || async {
            let (outcome, _) = try_connect(options(&app, "btn-1", Some(("btn-1", &one)))).await;
            (outcome == Outcome::Accepted).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_harness_device_logs_in_with_its_own_secret() {
    let app = app().await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    let opts = device_options(
        &app.broker_host,
        app.broker_port,
        &DeviceId::parse("btn-1").unwrap(),
        &app.login_of("btn-1").await,
    );
    assert_eq!(opts.client_id(), "btn-1");
    let (outcome, _) = try_connect(opts).await;
    assert_eq!(outcome, Outcome::Accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_connect_over_tls_with_the_same_rules() {
    use rumqttc::tokio_rustls::rustls;

    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("mqtt.crt"), dir.path().join("mqtt.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let tls_port = eldercare_tests::app::free_port();
    let app = TestApp::spawn(Options {
        env: vec![
            (
                "ELDERCARE__EMBEDDED_BROKER__TLS_ADDR".into(),
                format!("127.0.0.1:{tls_port}"),
            ),
            (
                "ELDERCARE__EMBEDDED_BROKER__TLS_CERT".into(),
                cert.display().to_string(),
            ),
            (
                "ELDERCARE__EMBEDDED_BROKER__TLS_KEY".into(),
                key.display().to_string(),
            ),
        ],
        ..Options::default()
    })
    .await;
    let (one, two) = two_homes(&app).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(made.cert.der().clone()).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let over_tls = |secret: &str| {
        let mut opts = MqttOptions::new("btn-1", "127.0.0.1", tls_port);
        opts.set_credentials("btn-1", secret);
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(std::sync::Arc::new(tls.clone())),
        ));
        opts
    };

    // The wrong secret is refused over TLS too.
    let (outcome, _) = try_connect(over_tls(&two)).await;
    assert_ne!(outcome, Outcome::Accepted);
    // Plain MQTT on the TLS port gets nowhere.
    let mut plain_on_tls = MqttOptions::new("btn-1", "127.0.0.1", tls_port);
    plain_on_tls.set_credentials("btn-1", one.clone());
    let (outcome, _) = try_connect(plain_on_tls).await;
    assert_ne!(outcome, Outcome::Accepted, "plain MQTT on the TLS port");

    // The device's press over TLS is heard.
    let (outcome, conn) = try_connect(over_tls(&one)).await;
    assert_eq!(outcome, Outcome::Accepted);
    let (client, mut eventloop) = conn.unwrap();
    let body = json!({"event_id": "tls-1", "type": "call.pressed",
                      "ts": chrono::Utc::now().to_rfc3339()})
    .to_string();
    client
        .publish(
            app.topics.events(&DeviceId::parse("btn-1").unwrap()),
            QoS::AtLeastOnce,
            false,
            body,
        )
        .await
        .unwrap();
    let polling = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    app.wait_incidents("elder_id=e-1", 1).await;
    assert_eq!(app.events("btn-1").await.len(), 1);
    polling.abort();
}

/// A PUBACK from the embedded broker means the event is stored
/// (PROTOCOL.md, Transport). While the dispatcher cannot store, a device
/// hears none, however far ahead of it the device gets; once it can,
/// every event is stored and acknowledged. (rumqttd alone acknowledges
/// on receipt and keeps only a topic's last few segments, so a device
/// this far ahead of a stalled dispatcher lost what fell out of them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_far_ahead_of_a_stalled_dispatcher_hears_puback_only_for_what_is_stored() {
    let app = TestApp::spawn(Options {
        db: Db::Postgres,
        env: [
            // What rumqttd keeps of the events topics: 2 x 64 KiB.
            ("ELDERCARE__EMBEDDED_BROKER__SEGMENT_KIB", "64"),
            ("ELDERCARE__EMBEDDED_BROKER__SEGMENTS", "2"),
            // Handed over again while the stall lasts: duplicates, which
            // rumqttd's log drops or ingest drops by event_id.
            ("ELDERCARE__EMBEDDED_BROKER__REDELIVER_AFTER_S", "1"),
            ("ELDERCARE__INGEST__RATE_LIMIT_PER_S", "1000"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec(),
        ..Options::default()
    })
    .await;
    app.elder_with_device("e-1", "pad-1", "vitals_pad", json!({}))
        .await;
    let db = sqlx::PgPool::connect(app.db_url()).await.unwrap();
    let mut stall = db.begin().await.unwrap();
    sqlx::query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *stall)
        .await
        .unwrap();

    // 400 events of 3 KiB: 1.2 MiB, ten times what the broker keeps.
    const EVENTS: usize = 400;
    let mut pad = app.device("pad-1").await;
    let note = "n".repeat(3000);
    for i in 0..EVENTS {
        pad.event(
            &format!("v-{i}"),
            "vitals",
            json!({"heart_rate": 72, "note": note}),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(pad.acked(), 0, "acknowledged while nothing could be stored");
    assert!(app.metric("dispatcher_broker_redelivered_total").await > 0.0);

    stall.rollback().await.unwrap();
    pad.flushed().await;
    let stored = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(DISTINCT event_id) FROM events WHERE device_id = 'pad-1'",
        )
        .fetch_one(&db)
        .await
        .unwrap()
    };
    wait::until_eq("every acknowledged event stored", EVENTS as i64, stored).await;
    assert_eq!(pad.acked(), EVENTS as u64, "each acknowledged once");
}
