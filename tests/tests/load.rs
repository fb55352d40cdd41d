//! Load mode and bulk registration, by counts: every device of a load run
//! heartbeats and the broker acknowledges every QoS 1 publish; a generated
//! site imports whole (twice without duplicates) on SQLite and
//! PostgreSQL; stewards of a load run answer the offers its presses cause.

use std::collections::HashSet;
use std::time::Duration;

use device_sim::load::{self, LoadConfig, Mix, StewardsConfig};
use dispatcher::import::SiteFile;
use eldercare_tests::app::{Broker, Options, TestApp};
use eldercare_tests::bench::{PREFIX, STEWARD_PASSWORD, write_site};
use eldercare_tests::db::{TestDb, fresh_postgres, fresh_sqlite};
use eldercare_tests::process::Mosquitto;
use protocol::Topics;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_device_of_a_load_run_heartbeats_over_few_connections() {
    let mosquitto = Mosquitto::start();
    let topics = Topics::new("load-test/eldercare/v1");
    let (sub, mut eventloop) = AsyncClient::new(
        MqttOptions::new("load-test-listener", "127.0.0.1", mosquitto.port),
        1000,
    );
    sub.subscribe(topics.status_filter(None), QoS::AtMostOnce)
        .await
        .unwrap();
    let (tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(e) = eventloop.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = e {
                let _ = tx.send(p.topic);
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let devices = 300;
    let mut config = LoadConfig::new("127.0.0.1", mosquitto.port, devices);
    config.topic_root = topics.root().to_owned();
    config.heartbeat_s = 1.0;
    config.connections = 4;
    let run = load::start(config);
    let mut seen = HashSet::new();
    tokio::time::timeout(eldercare_tests::wait::PATIENCE, async {
        while seen.len() < devices {
            seen.insert(heard.recv().await.expect("listener alive"));
        }
    })
    .await
    .expect("every device heartbeats");
    let report = run.finish().await;
    assert!(report.heartbeats >= devices as u64, "{report}");
    assert_eq!(report.acked, report.qos1_sent, "{report}");
    assert_eq!(report.connections, 4);
    assert!(seen.iter().all(|t| t.starts_with(topics.root())));
}

async fn imports_whole(url: &str) {
    let store = dispatcher::store::connect(url).await.expect("store");
    let dir = tempfile::tempdir().unwrap();
    let site = SiteFile::read(&write_site(dir.path(), 1_003, 3)).expect("site reads");
    for _ in 0..2 {
        let report = site.import(store.as_ref(), 60).await.expect("import");
        assert_eq!(
            (report.elders, report.devices, report.stewards),
            (201, 1_003, 3)
        );
    }
    assert_eq!(store.devices().await.unwrap().len(), 1_003);
    assert_eq!(store.elders().await.unwrap().len(), 201);
    assert_eq!(store.liveness().await.unwrap().len(), 1_003);
}

#[tokio::test]
async fn a_generated_site_imports_in_bulk_on_sqlite() {
    let db = fresh_sqlite();
    imports_whole(db.url()).await;
}

#[tokio::test]
async fn a_generated_site_imports_in_bulk_on_postgres() {
    let db = fresh_postgres().await.expect("PostgreSQL for tests");
    imports_whole(db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_stewards_answer_the_offers_of_its_presses() {
    let mosquitto = Mosquitto::start();
    let app = TestApp::spawn(Options {
        broker: Broker::Port(mosquitto.port),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    SiteFile::read(&write_site(dir.path(), 50, 2))
        .unwrap()
        .import(app.state.store.as_ref(), 60)
        .await
        .unwrap();
    let mut config = LoadConfig::new(&app.broker_host, app.broker_port, 50);
    config.topic_root = app.topics.root().to_owned();
    config.prefix = PREFIX.into();
    config.heartbeat_s = 0.0;
    config.event_rate = 4.0;
    config.mix = Mix::parse("call.pressed=1").unwrap();
    config.connections = 2;
    config.stewards = Some(StewardsConfig {
        api: app.base.clone(),
        count: 2,
        password: STEWARD_PASSWORD.into(),
    });
    let run = load::start(config);
    eldercare_tests::wait::until("three presses answered", || async {
        (run.steward_counters
            .resolved
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 3)
            .then_some(())
    })
    .await;
    let report = run.finish().await;
    let stewards = report.stewards.as_ref().expect("stewards report");
    assert!(stewards.press_to_offer.len() >= 3, "{report}");
    assert!(report.by_type["call.pressed"] >= 3, "{report}");
}
