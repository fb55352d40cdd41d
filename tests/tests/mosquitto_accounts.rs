//! Mosquitto run from the shipped `config/mosquitto.conf`, its accounts
//! kept by the dispatcher's dynsec module: each device gets in only with
//! its own secret, only on its own topics, over TLS; an impostor is
//! refused or heard by nobody, and the dispatcher's connection cannot be
//! taken.

use std::time::Duration;

use dispatcher::dynsec::Dynsec;
use dispatcher::mqtt::BrokerUrl;
use dispatcher::settings::{DynsecSettings, Secret};
use eldercare_tests::shipped_mosquitto::ShippedMosquitto;
use protocol::{DeviceId, Topics};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, EventLoop, Incoming, MqttOptions, QoS};
use tokio::sync::mpsc;

const ROOT: &str = "eldercare/v1";

fn id(s: &str) -> DeviceId {
    DeviceId::parse(s).unwrap()
}

fn accounts(broker: &ShippedMosquitto) -> Dynsec {
    Dynsec::new(
        &DynsecSettings {
            username: broker.instance.accounts_username.clone(),
            password: Secret::new(broker.instance.accounts_password.clone()),
        },
        &BrokerUrl::plain("127.0.0.1", broker.port),
        None,
        Topics::new(ROOT),
    )
    .unwrap()
}

/// What a connection saw: refused at CONNECT, or connected and then
/// these publishes and SUBACK codes, until it was dropped.
#[derive(Debug)]
enum Seen {
    Refused(ConnectReturnCode),
    Connected,
    Publish(String, Vec<u8>),
    SubAck(Vec<rumqttc::SubscribeReasonCode>),
    Dropped,
}

/// A client over TLS (a device) or plain TCP (a dispatcher), with what
/// its event loop sees sent to a channel.
struct Client {
    client: AsyncClient,
    seen: mpsc::UnboundedReceiver<Seen>,
}

impl Client {
    async fn connect(
        broker: &ShippedMosquitto,
        tls: bool,
        client_id: &str,
        login: Option<(&str, &str)>,
    ) -> Self {
        let port = if tls { broker.tls_port } else { broker.port };
        let mut opts = MqttOptions::new(client_id, "localhost", port);
        opts.set_keep_alive(Duration::from_secs(5));
        if let Some((user, pass)) = login {
            opts.set_credentials(user, pass);
        }
        if tls {
            opts.set_transport(rumqttc::Transport::Tls(broker.device_tls()));
        }
        let (client, events) = AsyncClient::new(opts, 100);
        let (tx, seen) = mpsc::unbounded_channel();
        tokio::spawn(watch(events, tx));
        Self { client, seen }
    }

    async fn next(&mut self) -> Seen {
        tokio::time::timeout(Duration::from_secs(10), self.seen.recv())
            .await
            .expect("something within 10 s")
            .unwrap_or(Seen::Dropped)
    }

    async fn expect_connected(&mut self) {
        match self.next().await {
            Seen::Connected => {}
            other => panic!("expected a connection, saw {other:?}"),
        }
    }

    async fn expect_refused(&mut self) {
        match self.next().await {
            Seen::Refused(code) => assert_ne!(code, ConnectReturnCode::Success),
            other => panic!("expected a refusal, saw {other:?}"),
        }
    }

    async fn publish(&self, topic: String, payload: &str) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .await
            .unwrap();
    }

    /// The next publish received, skipping acks.
    async fn next_publish(&mut self) -> (String, String) {
        loop {
            match self.next().await {
                Seen::Publish(t, p) => return (t, String::from_utf8(p).unwrap()),
                Seen::SubAck(_) | Seen::Connected => {}
                other => panic!("expected a message, saw {other:?}"),
            }
        }
    }
}

async fn watch(mut events: EventLoop, tx: mpsc::UnboundedSender<Seen>) {
    loop {
        let seen = match events.poll().await {
            Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                if ack.code == ConnectReturnCode::Success {
                    Seen::Connected
                } else {
                    Seen::Refused(ack.code)
                }
            }
            Ok(Event::Incoming(Incoming::Publish(p))) => Seen::Publish(p.topic, p.payload.to_vec()),
            Ok(Event::Incoming(Incoming::SubAck(a))) => Seen::SubAck(a.return_codes),
            Ok(_) => continue,
            Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
                let _ = tx.send(Seen::Refused(code));
                return;
            }
            Err(_) => {
                let _ = tx.send(Seen::Dropped);
                return;
            }
        };
        if tx.send(seen).is_err() {
            return;
        }
    }
}

/// The dispatcher's side: its own login, subscribed to every device's
/// events.
async fn dispatcher(broker: &ShippedMosquitto) -> Client {
    let i = &broker.instance;
    let mut d = Client::connect(broker, false, &i.username, Some((&i.username, &i.password))).await;
    d.expect_connected().await;
    // As production does: every instance every event, and every status.
    for filter in [
        format!("{ROOT}/devices/+/events"),
        format!("{ROOT}/devices/+/status"),
    ] {
        d.client.subscribe(&filter, QoS::AtLeastOnce).await.unwrap();
        match d.next().await {
            Seen::SubAck(codes) => assert!(
                matches!(codes[0], rumqttc::SubscribeReasonCode::Success(_)),
                "the dispatcher's role lets it subscribe to {filter}: {codes:?}"
            ),
            other => panic!("expected a SUBACK, saw {other:?}"),
        }
    }
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_gets_in_only_as_itself_and_impostors_are_refused_or_unheard() {
    let broker = ShippedMosquitto::start("dispatcher-t", ROOT);
    let accounts = accounts(&broker);
    let topics = Topics::new(ROOT);
    accounts
        .set_device(&id("bed-1"), "secret-one")
        .await
        .unwrap();
    accounts
        .set_device(&id("bed-2"), "secret-two")
        .await
        .unwrap();
    let mut dispatcher = dispatcher(&broker).await;

    // The real device, over TLS with its own secret.
    let mut bed = Client::connect(&broker, true, "bed-1", Some(("bed-1", "secret-one"))).await;
    bed.expect_connected().await;
    bed.publish(topics.events(&id("bed-1")), "real-1").await;
    assert_eq!(
        dispatcher.next_publish().await,
        (topics.events(&id("bed-1")), "real-1".into())
    );

    // No secret, a wrong one, another device's, no login at all.
    for login in [
        Some(("bed-1", "")),
        Some(("bed-1", "secret-two")),
        Some(("bed-9", "secret-one")),
        None,
    ] {
        let mut impostor = Client::connect(&broker, true, "bed-1", login).await;
        impostor.expect_refused().await;
    }

    // bed-2 with its own secret claims bed-1's client id and publishes on
    // bed-1's topic: Mosquitto gives it its own id (bed-1 stays on) and
    // its ACL drops the message; subscribing to everything gets nothing.
    let mut other = Client::connect(&broker, true, "bed-1", Some(("bed-2", "secret-two"))).await;
    other.expect_connected().await;
    other.publish(topics.events(&id("bed-1")), "forged").await;
    other.client.subscribe("#", QoS::AtLeastOnce).await.unwrap();
    match other.next().await {
        Seen::SubAck(codes) => assert_eq!(codes, [rumqttc::SubscribeReasonCode::Failure]),
        seen => panic!("expected a refused SUBACK, saw {seen:?}"),
    }
    // The dispatcher's client id, taken by a device login: it is the
    // device's own id that connects, and the dispatcher stays on.
    let mut thief = Client::connect(
        &broker,
        true,
        &broker.instance.username,
        Some(("bed-2", "secret-two")),
    )
    .await;
    thief.expect_connected().await;
    bed.publish(topics.events(&id("bed-1")), "real-2").await;
    // Next after real-1: real-2; the forged message reached nobody, and
    // the dispatcher was never pushed off.
    assert_eq!(
        dispatcher.next_publish().await,
        (topics.events(&id("bed-1")), "real-2".into())
    );
    // The thief's connection is bed-2's now (it pushed `other` off: one
    // connection per login), and on its own topic it is heard.
    thief.publish(topics.events(&id("bed-2")), "own-2").await;
    assert_eq!(
        dispatcher.next_publish().await,
        (topics.events(&id("bed-2")), "own-2".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_ends_the_old_connection_and_a_removed_device_is_out() {
    let broker = ShippedMosquitto::start("dispatcher-t", ROOT);
    let accounts = accounts(&broker);
    let bed_1 = id("bed-1");
    accounts.set_device(&bed_1, "first").await.unwrap();
    // Sent again (a retried request): the same account, no error.
    accounts.set_device(&bed_1, "first").await.unwrap();
    assert_eq!(
        accounts.devices().await.unwrap(),
        std::slice::from_ref(&bed_1)
    );

    let mut old = Client::connect(&broker, true, "bed-1", Some(("bed-1", "first"))).await;
    old.expect_connected().await;
    accounts.set_device(&bed_1, "second").await.unwrap();
    match old.next().await {
        Seen::Dropped => {}
        seen => panic!("the old secret's connection must end, saw {seen:?}"),
    }
    Client::connect(&broker, true, "bed-1", Some(("bed-1", "first")))
        .await
        .expect_refused()
        .await;
    let mut new = Client::connect(&broker, true, "bed-1", Some(("bed-1", "second"))).await;
    new.expect_connected().await;

    accounts.remove_device(&bed_1).await.unwrap();
    match new.next().await {
        Seen::Dropped => {}
        seen => panic!("a removed device's connection must end, saw {seen:?}"),
    }
    Client::connect(&broker, true, "bed-1", Some(("bed-1", "second")))
        .await
        .expect_refused()
        .await;
    assert!(accounts.devices().await.unwrap().is_empty());
    // Removed twice: nothing to do, no error.
    accounts.remove_device(&bed_1).await.unwrap();

    // At start: an account whose device is gone is removed; a registered
    // device without one is named, for the operator to rotate.
    accounts.set_device(&id("gone-1"), "x").await.unwrap();
    accounts.set_device(&id("kept-1"), "y").await.unwrap();
    let missing = accounts
        .reconcile(&[id("kept-1"), id("new-1")])
        .await
        .unwrap();
    assert_eq!(missing, [id("new-1")]);
    assert_eq!(accounts.devices().await.unwrap(), [id("kept-1")]);
}

#[tokio::test]
async fn a_wrong_accounts_login_is_an_error_that_says_what_to_fix() {
    let broker = ShippedMosquitto::start("dispatcher-t", ROOT);
    let wrong = Dynsec::new(
        &DynsecSettings {
            username: broker.instance.accounts_username.clone(),
            password: Secret::new("not it"),
        },
        &BrokerUrl::plain("127.0.0.1", broker.port),
        None,
        Topics::new(ROOT),
    )
    .unwrap();
    let err = wrong.set_device(&id("bed-1"), "s").await.unwrap_err();
    assert!(!err.is_transient());
    assert!(err.to_string().contains("mqtt.dynsec.username"), "{err}");
    // The dispatcher's own login has no right to the accounts.
    let not_accounts = Dynsec::new(
        &DynsecSettings {
            username: broker.instance.username.clone(),
            password: Secret::new(broker.instance.password.clone()),
        },
        &BrokerUrl::plain("127.0.0.1", broker.port),
        None,
        Topics::new(ROOT),
    )
    .unwrap();
    let err = not_accounts
        .set_device(&id("bed-1"), "s")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("eldercare-accounts role"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dispatcher_keeps_the_brokers_accounts_in_step_with_its_registry() {
    use eldercare_tests::app::{Broker, Options, TestApp};
    use reqwest::{Method, StatusCode};
    use serde_json::json;

    let broker = ShippedMosquitto::start("dispatcher-e2e", ROOT);
    let accounts = accounts(&broker);
    // Left by a device deleted while this dispatcher was away.
    accounts.set_device(&id("gone-1"), "old").await.unwrap();
    let i = &broker.instance;
    // The dispatcher as on another host: over TLS, trusting the site's CA.
    let app = TestApp::spawn(Options {
        broker: Broker::Shipped(broker.port),
        env: vec![
            (
                "ELDERCARE_MQTT_URL".into(),
                format!("mqtts://localhost:{}", broker.tls_port),
            ),
            (
                "ELDERCARE__MQTT__CA_FILE".into(),
                broker.ca_file.display().to_string(),
            ),
            ("ELDERCARE__MQTT__TOPIC_ROOT".into(), ROOT.into()),
            ("ELDERCARE__MQTT__CLIENT_ID".into(), i.username.clone()),
            ("ELDERCARE__MQTT__USERNAME".into(), i.username.clone()),
            ("ELDERCARE__MQTT__PASSWORD".into(), i.password.clone()),
            (
                "ELDERCARE__MQTT__DYNSEC__USERNAME".into(),
                i.accounts_username.clone(),
            ),
            (
                "ELDERCARE__MQTT__DYNSEC__PASSWORD".into(),
                i.accounts_password.clone(),
            ),
        ],
        ..Options::default()
    })
    .await;
    eldercare_tests::wait::until("the stale account removed at start", || async {
        accounts.devices().await.unwrap().is_empty().then_some(())
    })
    .await;

    // Registered through the API: the broker has its account at once, and
    // the device's press, with the secret the answer showed, is stored.
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    assert_eq!(accounts.devices().await.unwrap(), [id("btn-1")]);
    let first = app.secret("btn-1").await.unwrap();
    let mut button = app.device("btn-1").await;
    button.event("p-1", "call.pressed", json!({})).await;
    button.flushed().await;
    eldercare_tests::wait::until("the press stored", || async {
        (app.events("btn-1").await.len() == 1).then_some(())
    })
    .await;
    drop(button);

    // Rotated: the old secret no longer gets in, the new one does.
    let (status, body) = app
        .call(
            Some(&app.admin),
            Method::POST,
            "/api/v1/devices/btn-1/secret",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = body["secret"].as_str().unwrap().to_owned();
    Client::connect(&broker, true, "btn-1", Some(("btn-1", &first)))
        .await
        .expect_refused()
        .await;
    Client::connect(&broker, true, "btn-1", Some(("btn-1", &second)))
        .await
        .expect_connected()
        .await;

    // Deleted: its account goes with it.
    let (status, body) = app
        .call(
            Some(&app.admin),
            Method::DELETE,
            "/api/v1/devices/btn-1",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(accounts.devices().await.unwrap().is_empty());
    Client::connect(&broker, true, "btn-1", Some(("btn-1", &second)))
        .await
        .expect_refused()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_cannot_take_the_account_leaves_the_registry_as_it_was() {
    use eldercare_tests::app::{Broker, Options, TestApp};
    use reqwest::{Method, StatusCode};
    use serde_json::json;

    let broker = ShippedMosquitto::start("dispatcher-e2e", ROOT);
    let i = &broker.instance;
    // The dispatcher's own login where the accounts login belongs: the
    // broker takes its commands to nobody (no role) and never answers.
    let app = TestApp::spawn(Options {
        broker: Broker::Shipped(broker.port),
        env: vec![
            ("ELDERCARE__MQTT__TOPIC_ROOT".into(), ROOT.into()),
            ("ELDERCARE__MQTT__CLIENT_ID".into(), i.username.clone()),
            ("ELDERCARE__MQTT__USERNAME".into(), i.username.clone()),
            ("ELDERCARE__MQTT__PASSWORD".into(), i.password.clone()),
            ("ELDERCARE__MQTT__DYNSEC__USERNAME".into(), "nobody".into()),
            ("ELDERCARE__MQTT__DYNSEC__PASSWORD".into(), "wrong".into()),
        ],
        ..Options::default()
    })
    .await;
    let (status, body) = app
        .call(
            Some(&app.admin),
            Method::POST,
            "/api/v1/elders",
            Some(eldercare_tests::app::elder_body("e-1", json!({}))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .call(
            Some(&app.admin),
            Method::POST,
            "/api/v1/devices",
            Some(json!({"id": "btn-1", "elder_id": "e-1", "kind": "call_button"})),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mqtt.dynsec.username"),
        "{body}"
    );
    let (status, _) = app
        .call(Some(&app.admin), Method::GET, "/api/v1/devices/btn-1", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was registered");
}
