//! Press to offer under load: p50 and p99 from the MQTT publish of a
//! press to the `offer` on the steward's stream, while a background of
//! 10,000 messages a second (heartbeats and non-alarm events) flows,
//! against the bare broker round trip (publish to receipt on a plain
//! subscriber) measured in the same run, under the same background,
//! interleaved with the presses. Goal: p99 within 10 ms of the round trip.
//!
//! The steward's phone is registered for Web Push with a push service of
//! the benchmark's own (`push_service.rs`: it checks the VAPID token and
//! decrypts), so each press is also timed to its push, decrypted, and
//! against its own offer on the stream. Goal: the push no more than
//! 20 ms (p99) after the offer.
//!
//! ```sh
//! cargo build --release -p eldercare-dispatcher
//! cargo bench -p eldercare-tests --bench press_to_offer
//! ```
//!
//! `ELDERCARE_BENCH_PRESSES` presses per round (default 500).
//! `ELDERCARE_BENCH_INSTANCES=3` (with `ELDERCARE_BENCH_DB=postgres`) runs
//! three dispatcher processes on the one database and broker, the
//! steward's stream on the first. `ELDERCARE_BENCH_DEATHS=<n>` then
//! times, n times, an instance's death to the first offer for a press it
//! had taken (it is killed while it holds the press's push, which the
//! push service keeps unanswered). Goal: under 5 s.
//! `ELDERCARE_BENCH_PRUNE=<rows>` puts that many device events and as many
//! stream rows 100 days old in the database before the dispatcher starts,
//! with a retention pass every second, so that retention prunes (in its
//! batches) all through the presses; each round prints the rows pruned
//! before and after it. Run once with and once without to compare.

//! `ELDERCARE_BENCH_TRACE_DIR=<dir>` keeps, in that directory, the
//! dispatcher's log and `presses.tsv` (round, press, incident, and the
//! wall-clock microseconds of the publish and of the offer's receipt), so
//! each press can be followed through the log's `incident opened` and
//! `offered` lines. The broker
//! is a Mosquitto of the benchmark's own with `set_tcp_nodelay true`
//! (config/mosquitto.conf); the dispatcher is its release binary in its
//! own process. Each press is cancelled once offered, so the one steward
//! is free for the next.

use std::time::{Duration, Instant};

use device_sim::load::{self, LoadConfig, Mix};
use eldercare_tests::app::free_port;
use eldercare_tests::bench::{self, ms, pct};
use eldercare_tests::process::{DispatcherProcess, Mosquitto};
use eldercare_tests::push_service::PushService;
use eldercare_tests::sse::Stream;
use protocol::{DeviceId, EventId, EventMessage, EventType, Topics};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;
use tokio::sync::mpsc;

/// Background devices: at a 2 s heartbeat they send 9,800 msgs/s.
const DEVICES: usize = 19_600;
const HEARTBEAT_S: f64 = 2.0;
/// Background events a second (no presses: those would reach our steward).
const EVENT_RATE: f64 = 200.0;

#[tokio::main]
async fn main() {
    let presses: usize = std::env::var("ELDERCARE_BENCH_PRESSES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(500);
    let dir = tempfile::tempdir().expect("temp dir");
    let mosquitto = Mosquitto::start_with(free_port(), "max_queued_messages 1000000");
    let (host, port) = ("127.0.0.1".to_owned(), mosquitto.port);
    let topics = Topics::new("bench/eldercare/v1");
    let site = bench::write_site(dir.path(), DEVICES, 1);
    // ELDERCARE_BENCH_DB=postgres: a fresh database on the machine's
    // PostgreSQL (ELDERCARE_TEST_PG_URL), dropped at the end.
    let pg = match std::env::var("ELDERCARE_BENCH_DB").as_deref() {
        Ok("postgres") => Some(
            eldercare_tests::db::fresh_postgres()
                .await
                .expect("a fresh PostgreSQL database"),
        ),
        _ => None,
    };
    let db = match &pg {
        Some(pg) => {
            use eldercare_tests::db::TestDb;
            pg.url().to_owned()
        }
        None => format!("sqlite://{}/bench.db", dir.path().display()),
    };
    println!(
        "database: {}",
        if pg.is_some() { "PostgreSQL" } else { "SQLite" }
    );
    bench::import(&db, &site);
    let prune: u64 = std::env::var("ELDERCARE_BENCH_PRUNE")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if prune > 0 {
        old_rows(&db, prune).await;
    }
    let http_port = free_port();
    let base = format!("http://127.0.0.1:{http_port}");
    let mut env = bench::dispatcher_env(
        &format!("mqtt://{host}:{port}"),
        &db,
        http_port,
        &topics,
        "bench-dispatcher",
    );
    env.extend([
        // A press and a cancel every few milliseconds is a flood by the
        // default per-device limit.
        (
            "ELDERCARE__INGEST__RATE_LIMIT_PER_S".to_owned(),
            "100000".to_owned(),
        ),
        // The push service is on loopback.
        (
            "ELDERCARE__NOTIFY__PUSH__ALLOW_HTTP".to_owned(),
            "true".to_owned(),
        ),
    ]);
    if prune > 0 {
        env.push((
            "ELDERCARE__RETENTION__INTERVAL_S".to_owned(),
            "1".to_owned(),
        ));
    }
    let http = reqwest::Client::new();
    // ELDERCARE_BENCH_INSTANCES=3: three processes on the one PostgreSQL
    // database and broker, each with its own client id and port; the
    // steward's stream is on the first, so most offers are made by
    // another instance and reach it through LISTEN/NOTIFY.
    let instances: usize = std::env::var("ELDERCARE_BENCH_INSTANCES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    assert!(
        instances == 1 || pg.is_some(),
        "several instances need ELDERCARE_BENCH_DB=postgres"
    );
    let trace_dir = std::env::var_os("ELDERCARE_BENCH_TRACE_DIR").map(std::path::PathBuf::from);
    if let Some(trace) = &trace_dir {
        std::fs::create_dir_all(trace).expect("trace dir");
    }
    let mut fleet = Fleet::default();
    for k in 0..instances {
        let (port, client_id) = if k == 0 {
            (http_port, "bench-dispatcher".to_owned())
        } else {
            (free_port(), format!("bench-dispatcher-{k}"))
        };
        let mut env = env.clone();
        env.retain(|(key, _)| key != "ELDERCARE_HTTP_ADDR" && key != "ELDERCARE__MQTT__CLIENT_ID");
        env.push(("ELDERCARE_HTTP_ADDR".into(), format!("127.0.0.1:{port}")));
        env.push(("ELDERCARE__MQTT__CLIENT_ID".into(), client_id.clone()));
        // Written straight into the trace directory when there is one,
        // so a run that fails keeps its logs too.
        let log = trace_dir
            .as_deref()
            .unwrap_or(dir.path())
            .join(format!("dispatcher-{k}.log"));
        let mut process = DispatcherProcess::serve(&env, &log);
        let instance_base = format!("http://127.0.0.1:{port}");
        bench::wait_ready(&http, &instance_base, &mut process).await;
        fleet.0.push(BenchInstance {
            client_id,
            env,
            log,
            base: instance_base,
            process,
        });
    }
    println!("instances: {instances}");
    // One instance: within 10 ms of the broker's round trip; several,
    // whose offers reach the stream through PostgreSQL's NOTIFY: 15 ms.
    let goal_ms = if instances > 1 { 15.0 } else { 10.0 };

    let push = PushService::start().await;
    let (mut stream, phone) = steward_stream(&http, &base, &push).await;
    let mut button = Button::connect(&host, port, &topics).await;
    let mut rtt = RoundTrip::connect(&host, port).await;

    let mut config = LoadConfig::new(&host, port, DEVICES);
    config.topic_root = topics.root().to_owned();
    config.prefix = bench::PREFIX.into();
    config.heartbeat_s = HEARTBEAT_S;
    config.event_rate = EVENT_RATE;
    config.mix =
        Mix::parse("vitals=55,bed.exit=15,bed.return=15,door.open=8,battery.low=1").expect("mix");
    config.connections = 16;
    let background = load::start(config);
    // Let the background reach its pace (and the first heartbeats in).
    tokio::time::sleep(Duration::from_secs(5)).await;

    let mut traced = Vec::new();
    for round in 1..=bench::rounds() {
        let pruned_before = pruned(&http, &base).await;
        let sent_before = background.counters.sent();
        let started = Instant::now();
        let (mut offers, mut trips) = (Vec::new(), Vec::new());
        let (mut pushes, mut push_gaps) = (Vec::new(), Vec::new());
        for i in 0..presses {
            trips.push(rtt.sample().await);
            let published = unix_us();
            let t = Instant::now();
            button
                .send(&format!("r{round}-press-{i}"), "call.pressed")
                .await;
            let offer = stream.until("offer").await;
            offers.push(t.elapsed());
            assert_eq!(offer.data["incident"]["elder_id"], "ld-e0000000");
            let offered = Instant::now();
            let incident = offer.data["incident"]["id"].as_str().unwrap_or("?");
            traced.push(format!(
                "{round}\t{i}\t{incident}\t{published}\t{}",
                unix_us()
            ));
            let pushed = push
                .wait_for("of the press's offer", |r| {
                    r.payload["type"] == "offer" && r.payload["incident_id"] == incident
                })
                .await;
            pushes.push(pushed.at - t);
            push_gaps.push(pushed.at.saturating_duration_since(offered));
            button
                .send(&format!("r{round}-cancel-{i}"), "call.cancelled")
                .await;
            stream.until("offer.withdrawn").await;
        }
        let bg_rate =
            (background.counters.sent() - sent_before) as f64 / started.elapsed().as_secs_f64();
        offers.sort();
        trips.sort();
        pushes.sort();
        push_gaps.sort();
        let (o50, o99, t50, t99) = (
            pct(&offers, 0.5),
            pct(&offers, 0.99),
            pct(&trips, 0.5),
            pct(&trips, 0.99),
        );
        let gap = ms(o99) - ms(t99);
        println!(
            "round {round}: background {bg_rate:.0} msgs/s; press to offer p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
             broker round trip p50 {:.2} ms, p99 {:.2} ms; p99 gap {gap:.2} ms (goal <= {goal_ms} ms: {})",
            ms(o50),
            ms(o99),
            ms(*offers.last().expect("samples")),
            ms(t50),
            ms(t99),
            if gap <= goal_ms { "met" } else { "NOT met" }
        );
        let push_gap = ms(pct(&push_gaps, 0.99));
        println!(
            "round {round}: press to push decrypted p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
             push after its offer p50 {:.2} ms, p99 {push_gap:.2} ms (goal <= 20 ms: {})",
            ms(pct(&pushes, 0.5)),
            ms(pct(&pushes, 0.99)),
            ms(*pushes.last().expect("samples")),
            ms(pct(&push_gaps, 0.5)),
            if push_gap <= 20.0 { "met" } else { "NOT met" }
        );
        if prune > 0 {
            println!(
                "round {round}: retention had pruned {pruned_before} rows before it and {} after",
                pruned(&http, &base).await
            );
        }
        let refused = push.refused();
        assert!(refused.is_empty(), "pushes refused: {refused:?}");
    }
    let deaths: usize = std::env::var("ELDERCARE_BENCH_DEATHS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if deaths > 0 {
        let pg = pg
            .as_ref()
            .expect("deaths need ELDERCARE_BENCH_DB=postgres");
        use eldercare_tests::db::TestDb;
        let pool = sqlx::PgPool::connect(pg.url()).await.expect("database");
        death_to_offer(
            &mut fleet,
            &pool,
            &http,
            (&push, &phone),
            &mut button,
            &mut stream,
            deaths,
        )
        .await;
    }
    let report = background.finish().await;
    print!("background load:\n{report}");
    if let Some(trace) = trace_dir {
        std::fs::create_dir_all(&trace).expect("trace dir");
        std::fs::write(trace.join("presses.tsv"), traced.join("\n") + "\n").expect("write trace");

        println!("trace kept in {}", trace.display());
    }
}

/// The dispatcher processes of a run.
#[derive(Default)]
struct Fleet(Vec<BenchInstance>);

struct BenchInstance {
    client_id: String,
    env: Vec<(String, String)>,
    log: std::path::PathBuf,
    base: String,
    process: DispatcherProcess,
}

/// The time from an instance's death to the first offer for a press it
/// had taken: the steward's push service holds the press's push
/// unanswered, so the instance that claimed it (the outbox row names its
/// holder) is in the middle of offering when it is SIGKILLed; another
/// instance takes the claim over and offers. The one holding the
/// steward's stream is not killed (its round is done again).
async fn death_to_offer(
    fleet: &mut Fleet,
    pool: &sqlx::PgPool,
    http: &reqwest::Client,
    (push, phone): (&PushService, &serde_json::Value),
    button: &mut Button,
    stream: &mut Stream,
    deaths: usize,
) {
    let mut samples = Vec::new();
    let mut round = 0;
    while samples.len() < deaths {
        round += 1;
        push.hold_next_new_offer(phone);
        button.send(&format!("death-{round}"), "call.pressed").await;
        let offer = stream.until("offer").await;
        let incident = offer.data["incident"]["id"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        let first = push
            .wait_for("of the press's offer", |r| {
                r.payload["type"] == "offer" && r.payload["incident_id"] == incident
            })
            .await;
        // The offer's first push, held unanswered by the push service.
        let holder: Option<String> = sqlx::query_scalar(
            "SELECT claimed_by FROM outbox
             WHERE channel = 'push' AND event = 'offer' AND state = 'pending'
               AND payload LIKE '%' || $1 || '%'",
        )
        .bind(&incident)
        .fetch_optional(pool)
        .await
        .expect("the push's claim")
        .flatten();
        let Some(holder) = holder else {
            let rows: Vec<(String, Option<String>, String, String)> = sqlx::query_as(
                "SELECT id, claimed_by, state, event FROM outbox
                 WHERE channel = 'push' ORDER BY created_at DESC LIMIT 5",
            )
            .fetch_all(pool)
            .await
            .expect("push rows");
            panic!("the push row is claimed while it is being sent: {rows:?}");
        };
        let k = fleet
            .0
            .iter()
            .position(|i| holder.starts_with(&format!("{}:", i.client_id)))
            .expect("a holder of ours");
        if k == 0 {
            // It holds the steward's stream: not this one. Its push is
            // answered, so nothing of this round lingers into the next
            // (pushes to one steward go out in order, one at a time).
            push.release_held();
        } else {
            fleet.0[k].process.kill9();
            let died = Instant::now();
            let again = push
                .wait_for("of the press's offer, from another instance", |r| {
                    r.payload["type"] == "offer"
                        && r.payload["incident_id"] == incident
                        && r.at > died
                })
                .await;
            let took = again.at - died;
            if took > Duration::from_secs(5) {
                // What the push service saw of this incident, and the rows.
                let seen: Vec<(i64, u16, serde_json::Value)> = push
                    .received()
                    .into_iter()
                    .filter(|r| r.payload["incident_id"] == incident.as_str())
                    .map(|r| {
                        let ms = if r.at >= died {
                            (r.at - died).as_millis() as i64
                        } else {
                            -((died - r.at).as_millis() as i64)
                        };
                        (ms, r.status, r.payload["type"].clone())
                    })
                    .collect();
                let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
                    "SELECT id, event, claimed_by FROM outbox
                         WHERE channel = 'push' AND payload LIKE '%' || $1 || '%'",
                )
                .bind(&incident)
                .fetch_all(pool)
                .await
                .expect("rows");
                println!("  slow: pushes (ms from death, status, type) {seen:?}; rows {rows:?}");
            }
            println!(
                "death {}: instance {k} killed while pushing (held since {:.0} ms before); offered by another {:.0} ms after its death",
                samples.len() + 1,
                ms(died.saturating_duration_since(first.at)),
                ms(took)
            );
            samples.push(took);
            let i = &mut fleet.0[k];
            i.process = DispatcherProcess::serve(&i.env, &i.log);
            bench::wait_ready(http, &i.base, &mut i.process).await;
        }
        button
            .send(&format!("death-{round}-cancel"), "call.cancelled")
            .await;
        stream.until("offer.withdrawn").await;
    }
    samples.sort();
    let worst = ms(*samples.last().expect("samples"));
    println!(
        "death to first offer: p50 {:.0} ms, max {worst:.0} ms over {} deaths (goal < 5000 ms: {})",
        ms(pct(&samples, 0.5)),
        samples.len(),
        if worst < 5000.0 { "met" } else { "NOT met" }
    );
}

/// `rows` device events and as many stream rows, 100 days old: work for
/// retention while the presses are timed.
async fn old_rows(db: &str, rows: u64) {
    use sqlx::Connection;
    if db.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(db)
            .await
            .expect("the bench database");
        let old = chrono::Utc::now() - chrono::Duration::days(100);
        sqlx::query(
            "INSERT INTO events (device_id, event_id, type, ts, received_at, data)
             SELECT 'old-device', 'old-' || i, 'vitals', $2, $2, '{\"heart_rate\": 72}'
             FROM generate_series(1, $1) AS i",
        )
        .bind(rows as i64)
        .bind(old)
        .execute(&mut c)
        .await
        .expect("old events");
        sqlx::query(
            "INSERT INTO stream (at, audience, event, data)
             SELECT $2, 'supervisors', 'incident', '{}' FROM generate_series(1, $1)",
        )
        .bind(rows as i64)
        .bind(old)
        .execute(&mut c)
        .await
        .expect("old stream rows");
        println!("{rows} old events and {rows} old stream rows for retention to prune");
        return;
    }
    let mut c = sqlx::SqliteConnection::connect(db)
        .await
        .expect("the bench database");
    let old = (chrono::Utc::now() - chrono::Duration::days(100)).to_rfc3339();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
         INSERT INTO events (device_id, event_id, type, ts, received_at, data)
         SELECT 'old-device', 'old-' || i, 'vitals', $2, $2, '{\"heart_rate\": 72}' FROM n",
    )
    .bind(rows as i64)
    .bind(&old)
    .execute(&mut c)
    .await
    .expect("old events");
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
         INSERT INTO stream (at, audience, event, data)
         SELECT $2, 'supervisors', 'incident', '{}' FROM n",
    )
    .bind(rows as i64)
    .bind(&old)
    .execute(&mut c)
    .await
    .expect("old stream rows");
    println!("{rows} old events and {rows} old stream rows for retention to prune");
}

/// Rows retention has pruned so far, from `/metrics`.
async fn pruned(http: &reqwest::Client, base: &str) -> u64 {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter_map(|l| l.strip_prefix("dispatcher_pruned_rows_total{"))
        .filter_map(|l| l.split_once("} ").and_then(|(_, v)| v.parse::<u64>().ok()))
        .sum()
}

/// Wall-clock microseconds, comparable with the dispatcher log's times.
fn unix_us() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

/// The one steward of the site: logged in, on duty at their place, their
/// phone registered for push, with the stream open.
/// Returns the stream and the phone's push subscription.
async fn steward_stream(
    http: &reqwest::Client,
    base: &str,
    push: &PushService,
) -> (Stream, serde_json::Value) {
    let id = device_sim::load::site::steward_id(bench::PREFIX, 0);
    let login: serde_json::Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": id, "password": bench::STEWARD_PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login body");
    let token = login["token"].as_str().expect("token").to_owned();
    let (lat, lon) = device_sim::load::site::steward_position(1, 0);
    for (path, body) in [
        ("location", json!({"lat": lat, "lon": lon})),
        ("duty", json!({"on_duty": true})),
    ] {
        let r = http
            .put(format!("{base}/api/v1/stewards/{id}/{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("steward call");
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }
    let phone = push.subscription();
    let r = http
        .post(format!("{base}/api/v1/push/subscriptions"))
        .bearer_auth(&token)
        .json(&phone)
        .send()
        .await
        .expect("register the phone");
    assert!(r.status().is_success(), "push subscription: {}", r.status());
    let resp = http
        .get(format!("{base}/api/v1/stream"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("stream");
    let mut stream = Stream::from_response(resp);
    assert_eq!(stream.next().await.event, "snapshot");
    (stream, phone)
}

fn options(name: &str, host: &str, port: u16) -> (AsyncClient, rumqttc::EventLoop) {
    let mut opts = MqttOptions::new(name, host, port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    (client, eventloop)
}

/// Elder 0's call button (device 0 of the generated site).
struct Button {
    client: AsyncClient,
    topic: String,
}

impl Button {
    async fn connect(host: &str, port: u16, topics: &Topics) -> Self {
        let id =
            DeviceId::parse(device_sim::load::site::device_id(bench::PREFIX, 0)).expect("valid id");
        let (client, mut eventloop) = options("bench-button", host, port);
        tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
        Self {
            client,
            topic: topics.events(&id),
        }
    }

    async fn send(&mut self, event_id: &str, kind: &str) {
        let m = EventMessage::new(
            EventId::parse(event_id).expect("valid id"),
            EventType::from(kind),
            chrono::Utc::now(),
        );
        self.client
            .publish(
                self.topic.clone(),
                QoS::AtLeastOnce,
                false,
                serde_json::to_vec(&m).expect("serializable"),
            )
            .await
            .expect("publish");
    }
}

/// The baseline: the broker's own publish-to-receipt time, QoS 1, a
/// publisher and a subscriber with no Nagle, as the button and the
/// dispatcher are.
struct RoundTrip {
    client: AsyncClient,
    /// Kept: dropping the last handle would end the subscriber's loop.
    _sub: AsyncClient,
    received: mpsc::UnboundedReceiver<Instant>,
}

impl RoundTrip {
    async fn connect(host: &str, port: u16) -> Self {
        let (sub, mut sub_loop) = options("bench-rtt-sub", host, port);
        let (tx, received) = mpsc::unbounded_channel();
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            while let Ok(e) = sub_loop.poll().await {
                match e {
                    Event::Incoming(Packet::Publish(_)) => {
                        let _ = tx.send(Instant::now());
                    }
                    Event::Incoming(Packet::SubAck(_)) => {
                        if let Some(s) = subscribed_tx.take() {
                            let _ = s.send(());
                        }
                    }
                    _ => {}
                }
            }
        });
        sub.subscribe("bench-rtt/ping", QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        subscribed.await.expect("subscribed");
        let (client, mut eventloop) = options("bench-rtt-pub", host, port);
        tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
        Self {
            client,
            _sub: sub,
            received,
        }
    }

    async fn sample(&mut self) -> Duration {
        let t = Instant::now();
        self.client
            .publish("bench-rtt/ping", QoS::AtLeastOnce, false, vec![0u8; 200])
            .await
            .expect("publish");
        let at = tokio::time::timeout(Duration::from_secs(30), self.received.recv())
            .await
            .expect("the round trip came back")
            .expect("subscriber alive");
        at - t
    }
}
