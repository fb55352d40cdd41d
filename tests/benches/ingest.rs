//! Ingest throughput: how fast the dispatcher drains a realistic mix
//! (heartbeats and events, QoS 1) from the broker, divided by how fast a
//! bare rumqttc subscriber drains the same messages from the same broker
//! in the same run. Goal: 0.8 or better.
//!
//! ```sh
//! cargo build --release -p eldercare-dispatcher
//! cargo bench -p eldercare-tests --bench ingest
//! ```
//!
//! Both consumers have a persistent session on a Mosquitto of the
//! benchmark's own (config/mosquitto.conf's settings: no Nagle, 100
//! messages in flight per client, a deep session queue). The burst is
//! published while both are away, so the broker holds it for each; then
//! each connects alone and drains it. Draining a queue measures the
//! consumer, not the publisher. The dispatcher's span runs from its first
//! message received to the last one stored and acknowledged (its
//! `/metrics` counters, polled every 10 ms), the bare subscriber's from
//! its first message to its last acknowledgement written (a QoS 1 message
//! has left the broker only once acknowledged); on reconnecting, both also
//! get the retained status of every device again, so both see the same
//! count.

use std::time::{Duration, Instant};

use eldercare_tests::app::free_port;
use eldercare_tests::bench::{self, BareSubscriber, Burst, Drain};
use eldercare_tests::process::{DispatcherProcess, Mosquitto};
use protocol::Topics;

/// Registered devices (2,000 homes).
const DEVICES: usize = 10_000;
/// The burst: ten heartbeats per device and one event per ten heartbeats.
const BURST: Burst = Burst {
    devices: DEVICES,
    heartbeats: 100_000,
    events: 10_000,
};

#[tokio::main]
async fn main() {
    let rounds = bench::rounds();
    let dir = tempfile::tempdir().expect("temp dir");
    let mosquitto = Mosquitto::start_with(
        free_port(),
        "max_queued_messages 2000000\nmax_queued_bytes 0",
    );
    let (host, port) = ("127.0.0.1", mosquitto.port);
    let topics = Topics::new("bench/eldercare/v1");
    let site = bench::write_site(dir.path(), DEVICES, 0);
    let db = format!("sqlite://{}/bench.db", dir.path().display());
    let took = bench::import(&db, &site);
    println!(
        "ingest: registered {DEVICES} devices and {} elders with `dispatcher import` in {:.2} s",
        DEVICES / 5,
        took.as_secs_f64()
    );
    let http_port = free_port();
    let base = format!("http://127.0.0.1:{http_port}");
    let mqtt_url = format!("mqtt://{host}:{port}");
    let env_for =
        |db: &str| bench::dispatcher_env(&mqtt_url, db, http_port, &topics, "bench-dispatcher");
    let env = env_for(&db);
    let http = reqwest::Client::new();
    let bare = BareSubscriber::new(host, port, &topics, "bench-bare");
    // Sessions first: both subscribe once, then go away.
    bare.drain(0, Duration::from_millis(500)).await;
    let log = dir.path().join("dispatcher.log");
    {
        let mut d = DispatcherProcess::serve(&env, &log);
        bench::wait_ready(&http, &base, &mut d).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        d.terminate();
    }
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let published = Instant::now();
        bench::burst(host, port, &topics, BURST, &format!("r{round}")).await;
        let total = (BURST.heartbeats + BURST.events) as u64;
        println!(
            "round {round}: published {total} messages ({} heartbeats, {} events) in {:.2} s",
            BURST.heartbeats,
            BURST.events,
            published.elapsed().as_secs_f64()
        );
        // Each reconnection also brings every device's retained status.
        let expected = total + DEVICES as u64;
        let base_drain = bare.drain(expected, Duration::from_secs(3)).await;
        // Each round's dispatcher starts from the registered site alone:
        // presses that no steward answers stay open (escalated), and the
        // engine retries every open incident, so a shared database would
        // make each round drain against the last rounds' incidents too.
        let round_db = format!("sqlite://{}/bench-r{round}.db", dir.path().display());
        bench::import(&round_db, &site);
        let disp = drain_dispatcher(&env_for(&round_db), &log, &http, &base, expected).await;
        let ratio = disp.rate() / base_drain.rate();
        ratios.push(ratio);
        println!(
            "round {round}: bare subscriber {} msgs in {:.2} s = {:.0} msgs/s; dispatcher {} msgs in {:.2} s = {:.0} msgs/s; ratio {:.2} (goal >= 0.8)",
            base_drain.messages,
            base_drain.span.as_secs_f64(),
            base_drain.rate(),
            disp.messages,
            disp.span.as_secs_f64(),
            disp.rate(),
            ratio
        );
    }
    let met = ratios.iter().all(|r| *r >= 0.8);
    println!(
        "ingest throughput ratio per round: {:?}; goal {}",
        ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>(),
        if met { "met" } else { "NOT met" }
    );
}

/// Starts the dispatcher, times its drain from /metrics, checks every
/// event was stored, and stops it (SIGTERM keeps its session).
async fn drain_dispatcher(
    env: &[(String, String)],
    log: &std::path::Path,
    http: &reqwest::Client,
    base: &str,
    expected: u64,
) -> Drain {
    let mut d = DispatcherProcess::serve(env, log);
    let received = || async {
        bench::metric(
            http,
            base,
            "dispatcher_messages_received_total{topic=\"events\"}",
        )
        .await
            + bench::metric(
                http,
                base,
                "dispatcher_messages_received_total{topic=\"status\"}",
            )
            .await
    };
    // Done means received, stored and acknowledged: every event of the
    // burst stored and the writer's queue empty again (the broker may send
    // far more than its in-flight window ahead of the acknowledgements, so
    // receipt alone is not done).
    let queue = || bench::metric(http, base, "dispatcher_ingest_queue");
    // ELDERCARE_BENCH_TRACE=1 prints the drain as it goes.
    let trace = std::env::var_os("ELDERCARE_BENCH_TRACE").is_some();
    let mut first = None;
    let mut last = (0.0, Instant::now());
    loop {
        assert!(d.running(), "the dispatcher exited: {}", d.log_text());
        let n = received().await;
        let now = Instant::now();
        if n > 0.0 && first.is_none() {
            // The counter was first seen above zero within one poll of
            // the first message: start the span one poll early.
            first = Some(now - Duration::from_millis(10));
        }
        if trace && first.is_some() {
            let since = first.map_or(0, |f| now.duration_since(f).as_millis());
            let (queue, stored) = (queue().await, stored(http, base).await);
            println!(
                "    t={since:>5} ms: received {n}, not yet acknowledged {queue}, stored {stored}"
            );
        }
        let done = n as u64 >= expected
            && queue().await == 0.0
            && stored(http, base).await >= BURST.events as u64;
        if n > last.0 || done {
            last = (n, Instant::now());
        }
        if done || (first.is_some() && now - last.1 > Duration::from_secs(5)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Everything received is committed before it is acknowledged; wait
    // for the writer to finish the last batch, then check the count.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored_now = stored(http, base).await;
    // Its counters start at zero with the process: this is the round's.
    println!("  dispatcher stored {stored_now} events (duplicates included)");
    if std::env::var("ELDERCARE_BENCH_VERBOSE").is_ok() {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            println!("    {l}");
        }
    }
    d.terminate();
    Drain {
        messages: last.0 as u64,
        span: first.map_or(Duration::ZERO, |f| last.1 - f),
    }
}

async fn stored(http: &reqwest::Client, base: &str) -> u64 {
    (bench::metric(http, base, "dispatcher_events_stored_total").await
        + bench::metric(http, base, "dispatcher_events_duplicate_total").await) as u64
}
