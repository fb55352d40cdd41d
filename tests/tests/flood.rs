//! A flood is contained, not stored (issue 13): one device publishing
//! 5,000 events a second for 10 seconds over a real MQTT connection adds
//! to the database only what is under its rate limit and a fixed sample
//! of the excess; the excess is counted exactly; and another elder's press
//! in the middle of it reaches a steward.

use std::time::{Duration, Instant};

use eldercare_tests::app::{Broker, Options, TestApp};
use eldercare_tests::wait;
use serde_json::json;

/// Events a second, and for how long.
const RATE: u64 = 5_000;
const SECONDS: u64 = 10;
/// The defaults under test (`ingest.rate_limit_per_s`,
/// `ingest.flood_sample_per_min`).
const LIMIT: f64 = 20.0;
const SAMPLE: f64 = 10.0;

async fn a_flood_adds_only_its_limit_and_a_fixed_sample(broker: Broker) {
    let app = TestApp::spawn(Options {
        broker,
        ..Options::default()
    })
    .await;
    app.elder_with_device("e-stuck", "pad-stuck", "vitals_pad", json!({}))
        .await;
    app.elder_with_device("e-2", "btn-2", "call_button", json!({}))
        .await;
    // Next door to e-2 (elder_body's home).
    app.steward("s-1", "grid-1", 29.6600, 91.1380).await;
    let mut stuck = app.device("pad-stuck").await;
    let mut other = app.device("btn-2").await;

    let started = Instant::now();
    let flood = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let per_tick = RATE / 100;
        for t in 0..SECONDS * 100 {
            tick.tick().await;
            for i in 0..per_tick {
                stuck
                    .event(
                        &format!("v-{}", t * per_tick + i),
                        "vitals",
                        json!({"heart_rate": 72, "spo2": 97}),
                    )
                    .await;
            }
        }
        stuck
    });

    // A real press while the flood runs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    other.event("press", "call.pressed", json!({})).await;
    let incident = app.wait_incidents("elder_id=e-2", 1).await;
    let id = incident[0]["id"].as_str().unwrap().to_owned();
    let offered = app
        .wait_incident(&id, "the press offered to the steward", |d| {
            d["offers"]
                .as_array()
                .is_some_and(|o| o.iter().any(|o| o["steward_id"] == "s-1"))
        })
        .await;
    assert_eq!(offered["priority"], "urgent", "{offered}");

    let stuck = flood.await.expect("the flood ran");
    let sent = RATE * SECONDS;
    tokio::time::timeout(Duration::from_secs(120), stuck.flushed())
        .await
        .expect("the broker acknowledges the whole flood");
    wait::until("every message acknowledged by the dispatcher", || async {
        (app.metric("dispatcher_ingest_queue").await == 0.0
            && app
                .metric("dispatcher_messages_received_total{topic=\"events\"}")
                .await
                >= (sent + 1) as f64)
            .then_some(())
    })
    .await;
    // Every window the dispatcher read the flood in, with one to spare.
    let windows = started.elapsed().as_secs_f64().ceil() + 1.0;

    let stored = app.events("pad-stuck").await;
    let sampled = stored
        .iter()
        .filter(|e| e["action"] == "rate_limited")
        .count() as f64;
    let acted = stored.len() as f64 - sampled;
    assert!(
        sampled <= SAMPLE * (windows / 60.0).ceil(),
        "only a fixed sample of the excess is stored: {sampled}"
    );
    assert!(
        acted <= LIMIT * windows,
        "{acted} events acted on in at most {windows} one-second windows"
    );
    assert!(acted >= LIMIT, "events under the limit are stored: {acted}");
    // Every event is either stored and acted on, or counted as excess.
    assert_eq!(app.metric("dispatcher_events_duplicate_total").await, 0.0);
    let excess = app
        .metric("dispatcher_rejected_messages_total{reason=\"rate_limited\"}")
        .await;
    assert_eq!(excess + acted, sent as f64, "the excess is counted exactly");
    assert_eq!(
        app.metric("dispatcher_events_flood_dropped_total").await,
        excess - sampled
    );
    // Normal readings: the flood opened nothing.
    assert!(app.incidents("elder_id=e-stuck").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_on_the_embedded_broker_adds_only_its_limit_and_a_fixed_sample() {
    a_flood_adds_only_its_limit_and_a_fixed_sample(Broker::Embedded).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_on_mosquitto_adds_only_its_limit_and_a_fixed_sample() {
    a_flood_adds_only_its_limit_and_a_fixed_sample(Broker::Mosquitto).await
}
