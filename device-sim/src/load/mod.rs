//! Load mode: N devices (up to a million) at a heartbeat interval and an
//! event rate, optionally with stewards answering through the HTTP API,
//! and a report of what was sent and measured.
//!
//! - [`site`]: the generated site (homes of five devices, stewards with
//!   logins) as a `dispatcher import` file; ids follow from numbers.
//! - [`mix`]: which events the homes send, and their data.
//! - [`fleet`]: the publishers: many device ids over a few connections,
//!   heartbeats spread evenly over the interval, events paced.
//! - [`stewards`]: stewards that answer every offer at once and time it
//!   from the press.
//!
//! The library entry is [`start`]; the `device-sim load` command and the
//! benchmarks use it.

pub mod fleet;
pub mod mix;
pub mod site;
pub mod stewards;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use fleet::Counters;
pub use mix::Mix;
pub use stewards::StewardCounters;

/// What to drive.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub broker_host: String,
    pub broker_port: u16,
    pub topic_root: String,
    /// Device ids are `{prefix}d0000000`… as in the generated site.
    pub prefix: String,
    pub devices: usize,
    /// Seconds between one device's heartbeats; 0 sends none.
    pub heartbeat_s: f64,
    /// Heartbeats at QoS 0 (PROTOCOL.md allows 0 or 1; events are always 1).
    pub heartbeat_qos0: bool,
    /// Events per second across all devices.
    pub event_rate: f64,
    pub mix: Mix,
    /// MQTT connections the devices are spread over.
    pub connections: usize,
    /// Unacknowledged QoS 1 publishes per connection.
    pub inflight: u16,
    pub seed: u64,
    /// Makes event ids and client ids unique to this run.
    pub run_id: String,
    /// Stewards answering offers, if any.
    pub stewards: Option<StewardsConfig>,
}

/// Stewards of the generated site, played through the HTTP API.
#[derive(Debug, Clone)]
pub struct StewardsConfig {
    /// The dispatcher's HTTP base, e.g. `http://127.0.0.1:8080`; several,
    /// comma-separated, for several instances without a balancer: each
    /// steward starts on one (steward k on the k-th, round) and moves to
    /// the next when its stream is lost, as a phone behind a balancer
    /// would.
    pub api: String,
    pub count: usize,
    /// The generated site's steward password.
    pub password: String,
}

impl LoadConfig {
    /// A run against `host:port` with the default mix, no events and no
    /// stewards.
    pub fn new(host: &str, port: u16, devices: usize) -> Self {
        Self {
            broker_host: host.into(),
            broker_port: port,
            topic_root: protocol::Topics::DEFAULT_ROOT.into(),
            prefix: "ld-".into(),
            devices,
            heartbeat_s: 60.0,
            heartbeat_qos0: false,
            event_rate: 0.0,
            mix: Mix::default(),
            connections: devices.clamp(1, 32),
            inflight: 100,
            seed: 1,
            run_id: format!("{:08x}", rand::random::<u32>()),
            stewards: None,
        }
    }
}

/// A running load; [`LoadHandle::finish`] stops it and reports.
pub struct LoadHandle {
    pub counters: Arc<Counters>,
    pub steward_counters: Arc<StewardCounters>,
    samples: stewards::Samples,
    stop: CancellationToken,
    publishers: Vec<JoinHandle<std::collections::HashMap<&'static str, u64>>>,
    stewards: Vec<JoinHandle<()>>,
    started: Instant,
    config: Arc<LoadConfig>,
}

/// Starts publishing (and the stewards) on tokio tasks.
pub fn start(config: LoadConfig) -> LoadHandle {
    let config = Arc::new(config);
    let stop = CancellationToken::new();
    let counters = Arc::new(Counters::default());
    let steward_counters = Arc::new(StewardCounters::default());
    let samples = stewards::Samples::default();
    let presses = config.stewards.as_ref().map(|_| fleet::Presses::default());
    let stewards = match &config.stewards {
        Some(s) => (0..s.count)
            .map(|k| {
                tokio::spawn(
                    stewards::LoadSteward {
                        bases: s
                            .api
                            .split(',')
                            .map(|b| b.trim().trim_end_matches('/').to_owned())
                            .filter(|b| !b.is_empty())
                            .collect(),
                        prefix: config.prefix.clone(),
                        k,
                        password: s.password.clone(),
                        seed: config.seed,
                        presses: presses.clone().unwrap_or_default(),
                        samples: samples.clone(),
                        counters: steward_counters.clone(),
                        stop: stop.clone(),
                    }
                    .run(),
                )
            })
            .collect(),
        None => Vec::new(),
    };
    let publishers = (0..config.connections.max(1))
        .map(|conn| {
            tokio::spawn(
                fleet::Publisher {
                    conn,
                    config: config.clone(),
                    counters: counters.clone(),
                    presses: presses.clone(),
                    stop: stop.clone(),
                    by_type: Default::default(),
                }
                .run(),
            )
        })
        .collect();
    LoadHandle {
        counters,
        steward_counters,
        samples,
        stop,
        publishers,
        stewards,
        started: Instant::now(),
        config,
    }
}

impl LoadHandle {
    /// Stops publishing, waits for outstanding acknowledgements and the
    /// stewards, and reports.
    pub async fn finish(self) -> LoadReport {
        self.stop.cancel();
        let elapsed = self.started.elapsed();
        let mut by_type = BTreeMap::new();
        for p in self.publishers {
            if let Ok(counts) = p.await {
                for (k, v) in counts {
                    *by_type.entry(k.to_owned()).or_default() += v;
                }
            }
        }
        for s in self.stewards {
            let _ = s.await;
        }
        let c = &self.counters;
        let s = &self.steward_counters;
        let mut samples = self.samples.lock().await.clone();
        samples.sort();
        LoadReport {
            devices: self.config.devices,
            connections: self.config.connections,
            elapsed,
            heartbeats: c.heartbeats.load(Ordering::Relaxed),
            events: c.events.load(Ordering::Relaxed),
            by_type,
            qos1_sent: c.qos1_sent.load(Ordering::Relaxed),
            acked: c.acked.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            stewards: self.config.stewards.as_ref().map(|_| StewardReport {
                offers: s.offers.load(Ordering::Relaxed),
                accepted: s.accepted.load(Ordering::Relaxed),
                resolved: s.resolved.load(Ordering::Relaxed),
                unmatched: s.unmatched.load(Ordering::Relaxed),
                api_errors: s.api_errors.load(Ordering::Relaxed),
                press_to_offer: samples,
            }),
        }
    }
}

/// What a load run sent and measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub devices: usize,
    pub connections: usize,
    /// From start to the end of publishing.
    pub elapsed: Duration,
    pub heartbeats: u64,
    pub events: u64,
    pub by_type: BTreeMap<String, u64>,
    pub qos1_sent: u64,
    /// PUBACKs from the broker; short of `qos1_sent` means the broker fell
    /// behind or lost them.
    pub acked: u64,
    pub errors: u64,
    pub stewards: Option<StewardReport>,
}

/// What the stewards saw.
#[derive(Debug, Clone)]
pub struct StewardReport {
    pub offers: u64,
    pub accepted: u64,
    pub resolved: u64,
    pub unmatched: u64,
    pub api_errors: u64,
    /// Sorted.
    pub press_to_offer: Vec<Duration>,
}

/// The `p`-th quantile (0 to 1) of sorted samples.
pub fn quantile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    })
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let sent = self.heartbeats + self.events;
        writeln!(
            f,
            "load: {} devices over {} connections for {:.1} s",
            self.devices, self.connections, secs
        )?;
        writeln!(
            f,
            "sent: {sent} messages ({:.0} msgs/s): {} heartbeats ({:.0}/s), {} events ({:.1}/s)",
            sent as f64 / secs,
            self.heartbeats,
            self.heartbeats as f64 / secs,
            self.events,
            self.events as f64 / secs
        )?;
        let types: Vec<String> = self
            .by_type
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        writeln!(f, "events by type: {}", types.join(", "))?;
        writeln!(
            f,
            "broker: {} of {} QoS 1 publishes acknowledged, {} connection errors",
            self.acked, self.qos1_sent, self.errors
        )?;
        if let Some(s) = &self.stewards {
            let p = &s.press_to_offer;
            writeln!(
                f,
                "stewards: {} offers ({} matched to a press), {} accepted, {} resolved, {} API errors",
                s.offers,
                p.len(),
                s.accepted,
                s.resolved,
                s.api_errors
            )?;
            writeln!(
                f,
                "press to offer: p50 {}, p90 {}, p99 {}, max {}",
                ms(quantile(p, 0.5)),
                ms(quantile(p, 0.9)),
                ms(quantile(p, 0.99)),
                ms(p.last().copied())
            )?;
        }
        Ok(())
    }
}
