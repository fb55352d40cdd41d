//! Scale: memory and CPU of one dispatcher supervising 1,000,000
//! registered devices at a 60 s heartbeat, over several heartbeat
//! intervals, against the same dispatcher idle with no devices (the
//! baseline, measured first in the same run). Goal: under 1 GiB RSS and
//! no false offline alarms.
//!
//! ```sh
//! cargo build --release -p eldercare-dispatcher
//! cargo bench -p eldercare-tests --bench scale
//! ```
//!
//! `ELDERCARE_BENCH_DEVICES` (default 1,000,000), `ELDERCARE_BENCH_SCALE_S`
//! (seconds of load, default 300: five intervals),
//! `ELDERCARE_BENCH_IDLE_S` (seconds of the idle baseline, default 60),
//! `ELDERCARE_BENCH_HEARTBEAT_QOS0=1` for QoS 0 heartbeats (default QoS 1).
//!
//! Memory is VmRSS and VmHWM from /proc/PID/status, CPU the process's
//! user plus system ticks from /proc/PID/stat. A false offline alarm is a
//! `device.offline` incident opened while every device is heartbeating.

use std::time::{Duration, Instant};

use device_sim::load::{self, LoadConfig};
use eldercare_tests::app::free_port;
use eldercare_tests::bench::{self, ProcStats, proc_stats};
use eldercare_tests::process::{DispatcherProcess, Mosquitto};
use protocol::Topics;

const OFFLINE: &str =
    "dispatcher_incidents_opened_total{kind=\"device.offline\",priority=\"technical\"}";

fn env_num(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let devices = env_num("ELDERCARE_BENCH_DEVICES", 1_000_000.0) as usize;
    let load_s = env_num("ELDERCARE_BENCH_SCALE_S", 300.0);
    let idle_s = env_num("ELDERCARE_BENCH_IDLE_S", 60.0);
    let qos0 = std::env::var("ELDERCARE_BENCH_HEARTBEAT_QOS0").is_ok_and(|v| v == "1");
    let dir = tempfile::tempdir().expect("temp dir");
    let topics = Topics::new("bench/eldercare/v1");
    let http = reqwest::Client::new();

    for round in 1..=bench::rounds() {
        // A fresh broker each round: no retained status from the last.
        let mosquitto = Mosquitto::start_with(free_port(), "max_queued_messages 2000000");
        // The baseline: the same dispatcher, no devices.
        let idle = measure(
            &dir,
            round,
            "idle",
            mosquitto.port,
            &topics,
            &http,
            None,
            idle_s,
        )
        .await;
        let site_started = Instant::now();
        let site = bench::write_site(dir.path(), devices, 0);
        let generated = site_started.elapsed();
        let db = format!("sqlite://{}/scale-{round}.db", dir.path().display());
        let imported = bench::import(&db, &site);
        println!(
            "round {round}: generated a site of {devices} devices in {:.1} s; `dispatcher import` registered it in {:.1} s ({:.0} devices/s)",
            generated.as_secs_f64(),
            imported.as_secs_f64(),
            devices as f64 / imported.as_secs_f64()
        );
        let mut config = LoadConfig::new("127.0.0.1", mosquitto.port, devices);
        config.topic_root = topics.root().to_owned();
        config.prefix = bench::PREFIX.into();
        config.heartbeat_s = 60.0;
        config.heartbeat_qos0 = qos0;
        config.connections = 32;
        let busy = measure(
            &dir,
            round,
            "loaded",
            mosquitto.port,
            &topics,
            &http,
            Some((db, config)),
            load_s,
        )
        .await;
        let marginal = (busy.rss_kib as f64 - idle.rss_kib as f64) * 1024.0 / devices as f64;
        println!(
            "round {round}: idle {:.0} MiB RSS, {:.1} % CPU; with {devices} devices {:.0} MiB RSS (peak {:.0} MiB), {:.1} % CPU; \
             {marginal:.0} bytes per device; {} offline incidents; goal (< 1 GiB, 0 false alarms): {}",
            idle.rss_kib as f64 / 1024.0,
            idle.cpu_pct,
            busy.rss_kib as f64 / 1024.0,
            busy.hwm_kib as f64 / 1024.0,
            busy.cpu_pct,
            busy.offline,
            if busy.hwm_kib < 1024 * 1024 && busy.offline == 0 {
                "met"
            } else {
                "NOT met"
            }
        );
    }
}

/// What one dispatcher run measured.
struct Measured {
    rss_kib: u64,
    hwm_kib: u64,
    /// Of one core, over the measured window.
    cpu_pct: f64,
    offline: u64,
}

/// Runs a dispatcher (on an empty database, or on `db` with the load
/// running) for `secs` after it is ready, printing a line every
/// interval, and returns its figures at the end.
#[allow(clippy::too_many_arguments)]
async fn measure(
    dir: &tempfile::TempDir,
    round: usize,
    what: &str,
    mqtt_port: u16,
    topics: &Topics,
    http: &reqwest::Client,
    load: Option<(String, LoadConfig)>,
    secs: f64,
) -> Measured {
    let http_port = free_port();
    let base = format!("http://127.0.0.1:{http_port}");
    let db = load.as_ref().map_or_else(
        || format!("sqlite://{}/idle-{round}.db", dir.path().display()),
        |(db, _)| db.clone(),
    );
    let env = bench::dispatcher_env(
        &format!("mqtt://127.0.0.1:{mqtt_port}"),
        &db,
        http_port,
        topics,
        &format!("bench-{what}-{round}"),
    );
    let log = dir.path().join(format!("{what}-{round}.log"));
    let started = Instant::now();
    let mut d = DispatcherProcess::serve(&env, &log);
    bench::wait_ready(http, &base, &mut d).await;
    let pid = d.pid();
    println!(
        "round {round} {what}: ready in {:.1} s, {:.0} MiB RSS",
        started.elapsed().as_secs_f64(),
        proc_stats(pid).rss_kib as f64 / 1024.0
    );
    let running = load.map(|(_, config)| load::start(config));
    // CPU is counted after the first interval: start-up (loading the
    // registry, the first heartbeat of every device) is not steady state.
    let warmup = Duration::from_secs_f64((secs / 5.0).min(60.0));
    let window = Instant::now();
    let mut from: Option<(Instant, ProcStats)> = None;
    let mut last_print = Instant::now();
    while window.elapsed().as_secs_f64() < secs {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if from.is_none() && window.elapsed() >= warmup {
            from = Some((Instant::now(), proc_stats(pid)));
        }
        if last_print.elapsed() >= Duration::from_secs(30) {
            last_print = Instant::now();
            let s = proc_stats(pid);
            let sent = running.as_ref().map_or(0, |r| r.counters.sent());
            println!(
                "  [{:>4.0} s] RSS {:.0} MiB (peak {:.0}), CPU {:.1} s, sent {sent}, status received {}, offline incidents {}",
                window.elapsed().as_secs_f64(),
                s.rss_kib as f64 / 1024.0,
                s.hwm_kib as f64 / 1024.0,
                s.cpu.as_secs_f64(),
                bench::metric(
                    http,
                    &base,
                    "dispatcher_messages_received_total{topic=\"status\"}"
                )
                .await,
                bench::metric(http, &base, OFFLINE).await,
            );
        }
    }
    let end = proc_stats(pid);
    let (t0, s0) = from.unwrap_or((window, ProcStats::default()));
    let cpu_pct = (end.cpu - s0.cpu).as_secs_f64() / t0.elapsed().as_secs_f64() * 100.0;
    let offline = bench::metric(http, &base, OFFLINE).await as u64;
    if let Some(r) = running {
        print!("{}", r.finish().await);
    }
    d.terminate();
    Measured {
        rss_kib: end.rss_kib,
        hwm_kib: end.hwm_kib,
        cpu_pct,
        offline,
    }
}
