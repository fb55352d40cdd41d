//! Pieces the benchmarks (`tests/benches/`) share: a generated site
//! imported through `dispatcher import`, a burst publisher, a bare
//! subscriber as the broker's own baseline, `/metrics` and `/proc`
//! readings. See docs/BENCHMARKS.md for what each benchmark measures.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use device_sim::load::mix::{Mix, data_for, device_slot};
use device_sim::load::site::{self, DEVICES_PER_HOME, SiteSpec};
use protocol::{DeviceId, EventId, EventMessage, EventType, StatusMessage, Topics};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

/// The generated stewards' password (`device-sim load-site` default).
pub const STEWARD_PASSWORD: &str = "load-steward";
/// Id prefix of every benchmark's generated site.
pub const PREFIX: &str = "ld-";

/// Writes a generated site of `devices` devices and `stewards` stewards
/// into `dir`.
pub fn write_site(dir: &Path, devices: usize, stewards: usize) -> PathBuf {
    let path = dir.join(format!("site-{devices}.json"));
    site::write(
        &SiteSpec {
            prefix: PREFIX.into(),
            devices,
            heartbeat_s: 60,
            stewards,
            steward_password: STEWARD_PASSWORD.into(),
            seed: 1,
        },
        &path,
    )
    .expect("write the generated site");
    path
}

/// The environment of a benchmark's dispatcher process: its broker, its
/// database, its HTTP port, the benchmark's topic root and a client id.
pub fn dispatcher_env(
    mqtt_url: &str,
    database_url: &str,
    http_port: u16,
    topics: &Topics,
    client_id: &str,
) -> Vec<(String, String)> {
    [
        ("ELDERCARE_MQTT_URL", mqtt_url),
        ("ELDERCARE_DATABASE_URL", database_url),
        ("ELDERCARE_HTTP_ADDR", &format!("127.0.0.1:{http_port}")),
        ("ELDERCARE_ADMIN_PASSWORD", "bench-admin-password"),
        ("ELDERCARE__MQTT__TOPIC_ROOT", topics.root()),
        ("ELDERCARE__MQTT__CLIENT_ID", client_id),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Runs `dispatcher import FILE` against `database_url`; returns how long
/// it took. The devices' new secrets go to a file beside it, unread: the
/// benches' Mosquitto lets devices in without them.
pub fn import(database_url: &str, file: &Path) -> Duration {
    let started = Instant::now();
    let out = Command::new(crate::process::dispatcher_bin())
        .arg("import")
        .arg(file)
        .arg("--secrets-out")
        .arg(file.with_extension("secrets.json"))
        .env("ELDERCARE_DATABASE_URL", database_url)
        .env("ELDERCARE_ADMIN_PASSWORD", crate::app::ADMIN_PASSWORD)
        .env("ELDERCARE_LOG", "warn")
        .output()
        .expect("run dispatcher import");
    assert!(
        out.status.success(),
        "dispatcher import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

/// A QoS 1 connection that counts its PUBACKs.
async fn publisher(host: &str, port: u16, name: &str) -> (AsyncClient, Arc<AtomicU64>) {
    let mut opts = MqttOptions::new(name, host, port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(opts, 10_000);
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    let acked = Arc::new(AtomicU64::new(0));
    let counter = acked.clone();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    (client, acked)
}

/// What a burst publishes: heartbeats cycle through the devices in order,
/// one event comes after every `heartbeats / events` of them.
#[derive(Debug, Clone, Copy)]
pub struct Burst {
    pub devices: usize,
    pub heartbeats: usize,
    pub events: usize,
}

/// Publishes a burst (QoS 1, heartbeats retained) as fast as the broker
/// takes it over four connections; returns once the broker acknowledged
/// every message.
pub async fn burst(host: &str, port: u16, topics: &Topics, b: Burst, run: &str) {
    const CONNS: usize = 4;
    // ELDERCARE_BENCH_MIX overrides the default mix, for experiments.
    let mix = std::env::var("ELDERCARE_BENCH_MIX")
        .ok()
        .map_or_else(Mix::default, |m| {
            Mix::parse(&m).expect("ELDERCARE_BENCH_MIX")
        });
    let homes = b.devices.div_ceil(DEVICES_PER_HOME);
    let mut clients = Vec::new();
    for c in 0..CONNS {
        clients.push(publisher(host, port, &format!("bench-pub-{run}-{c}")).await);
    }
    let mut rng = StdRng::seed_from_u64(7);
    let every = (b.heartbeats / b.events.max(1)).max(1);
    let (mut hb, mut ev) = (0usize, 0usize);
    let mut i = 0usize;
    while hb < b.heartbeats || ev < b.events {
        let (client, _) = &clients[i % CONNS];
        i += 1;
        let event_turn = ev < b.events && (hb >= b.heartbeats || hb % every == every - 1);
        if event_turn {
            let kind = mix.pick(&mut rng);
            let n = (rng.random_range(0..homes) * DEVICES_PER_HOME + device_slot(kind))
                .min(b.devices - 1);
            let id = DeviceId::parse(site::device_id(PREFIX, n)).expect("valid id");
            let mut m = EventMessage::new(
                EventId::parse(format!("{run}-{ev}")).expect("valid id"),
                EventType::from(kind),
                chrono::Utc::now(),
            );
            m.data = data_for(kind, &mut rng);
            let body = serde_json::to_vec(&m).expect("serializable");
            client
                .publish(topics.events(&id), QoS::AtLeastOnce, false, body)
                .await
                .expect("publish");
            ev += 1;
        }
        if hb < b.heartbeats {
            let id = DeviceId::parse(site::device_id(PREFIX, hb % b.devices)).expect("valid id");
            let status = StatusMessage {
                battery_pct: Some(80),
                rssi_dbm: Some(-67),
                fw: Some("1.4.2".into()),
                ..StatusMessage::online(chrono::Utc::now())
            };
            let body = serde_json::to_vec(&status).expect("serializable");
            client
                .publish(topics.status(&id), QoS::AtLeastOnce, true, body)
                .await
                .expect("publish");
            hb += 1;
        }
    }
    let total = (b.heartbeats + b.events) as u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while clients
        .iter()
        .map(|(_, a)| a.load(Ordering::Relaxed))
        .sum::<u64>()
        < total
    {
        assert!(
            Instant::now() < deadline,
            "the broker did not acknowledge the burst"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (c, _) in clients {
        let _ = c.disconnect().await;
    }
}

/// The baseline consumer: a bare rumqttc subscriber with the dispatcher's
/// session settings (persistent, manual acks, no Nagle, both filters at
/// QoS 1), acknowledging each message as soon as it arrives.
pub struct BareSubscriber {
    opts: MqttOptions,
    topics: Topics,
}

/// What a drain saw.
#[derive(Debug, Clone, Copy)]
pub struct Drain {
    pub messages: u64,
    /// From the first message to the last.
    pub span: Duration,
}

impl Drain {
    pub fn rate(&self) -> f64 {
        self.messages.saturating_sub(1) as f64 / self.span.as_secs_f64().max(1e-9)
    }
}

impl BareSubscriber {
    pub fn new(host: &str, port: u16, topics: &Topics, client_id: &str) -> Self {
        let mut opts = MqttOptions::new(client_id, host, port);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_clean_session(false);
        opts.set_manual_acks(true);
        opts.set_inflight(100);
        Self {
            opts,
            topics: topics.clone(),
        }
    }

    /// Connects, subscribes, and takes messages until `expected` arrived
    /// and were acknowledged, or none came for `quiet` (with `expected` 0:
    /// until subscribed); then disconnects, keeping the session. The span
    /// runs from the first message to the last acknowledgement written: a
    /// QoS 1 message has left the broker only once it is acknowledged,
    /// which is where the dispatcher's span ends too.
    pub async fn drain(&self, expected: u64, quiet: Duration) -> Drain {
        let (client, mut eventloop) = AsyncClient::new(self.opts.clone(), 10_000);
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        eventloop.set_network_options(net);
        // The event loop runs on its own task: timing out a `poll` could
        // drop a request half sent (a subscription, an acknowledgement).
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let poller = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                    Ok(e) => {
                        let at = Instant::now();
                        if tx.send((e, at)).is_err() {
                            break;
                        }
                    }
                    Err(e) => panic!("the bare subscriber's connection: {e}"),
                }
            }
        });
        let mut first = None;
        let mut last = Instant::now();
        let mut messages = 0u64;
        let mut acked = 0u64;
        let mut subscribed = 0;
        loop {
            let (event, at) = match tokio::time::timeout(quiet, rx.recv()).await {
                Err(_) if first.is_some() => break,
                Err(_) => continue,
                Ok(e) => e.expect("the bare subscriber's event loop"),
            };
            match event {
                Event::Incoming(Packet::ConnAck(_)) => {
                    for f in [
                        self.topics.events_filter(None),
                        self.topics.status_filter(None),
                    ] {
                        client
                            .subscribe(f, QoS::AtLeastOnce)
                            .await
                            .expect("subscribe");
                    }
                }
                Event::Incoming(Packet::SubAck(_)) => {
                    subscribed += 1;
                    if expected == 0 && subscribed == 2 {
                        break;
                    }
                }
                Event::Incoming(Packet::Publish(p)) => {
                    first.get_or_insert(at);
                    last = at;
                    messages += 1;
                    client.ack(&p).await.expect("ack");
                }
                Event::Outgoing(rumqttc::Outgoing::PubAck(_)) => {
                    last = at;
                    acked += 1;
                    if acked >= expected && expected > 0 {
                        break;
                    }
                }
                _ => {}
            }
        }
        let _ = client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), poller).await;
        Drain {
            messages,
            span: first.map_or(Duration::ZERO, |f| last - f),
        }
    }
}

/// One value from a `/metrics` page (0 when absent).
pub async fn metric(http: &reqwest::Client, base: &str, series: &str) -> f64 {
    let Ok(resp) = http.get(format!("{base}/metrics")).send().await else {
        return 0.0;
    };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Polls `{base}/readyz` until it answers 200.
pub async fn wait_ready(
    http: &reqwest::Client,
    base: &str,
    d: &mut crate::process::DispatcherProcess,
) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        assert!(d.running(), "the dispatcher exited: {}", d.log_text());
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "the dispatcher never got ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A process's memory and CPU, from /proc.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStats {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    /// User plus system time.
    pub cpu: Duration,
}

pub fn proc_stats(pid: u32) -> ProcStats {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and
    // stime are the 14th and 15th fields overall.
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            let f: Vec<&str> = rest.split_whitespace().collect();
            f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
                + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        })
        .unwrap_or(0);
    ProcStats {
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
        // USER_HZ is 100 on Linux.
        cpu: Duration::from_millis(ticks * 10),
    }
}

/// Percentile of sorted samples.
pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    device_sim::load::quantile(sorted, p).unwrap_or_default()
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The median of samples.
pub fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Runs one statement of a generated site on PostgreSQL and says how many
/// rows it wrote in how long; a statement that fails ends the bench,
/// naming `what`.
pub async fn generating(
    pool: &sqlx::PgPool,
    what: &str,
    query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
) {
    let started = Instant::now();
    let done = query
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    println!(
        "  {what}: {} rows in {:.1} s",
        done.rows_affected(),
        started.elapsed().as_secs_f64()
    );
}

/// A whole number from the environment, else `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How many rounds each benchmark runs (`ELDERCARE_BENCH_ROUNDS`, default 2).
pub fn rounds() -> usize {
    std::env::var("ELDERCARE_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2)
}
