//! The publishers of a load run: many device ids over few connections.
//!
//! A million devices cannot each hold a connection from one process (nor
//! would one broker on this machine take them), so each connection speaks
//! for every C-th device: connection `c` of `C` owns devices `c`, `c + C`,
//! `c + 2C`… It sends each of its devices' retained status once per
//! heartbeat interval, spread evenly over the interval, and its share of
//! the events. What this gives up is per-device last wills (a will belongs
//! to a connection); load runs measure steady traffic, not disconnects.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use protocol::{DeviceId, EventId, EventMessage, EventType, StatusMessage, Topics};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::LoadConfig;
use super::mix::{data_for, device_slot};
use super::site::{DEVICES_PER_HOME, device_id, elder_id};

/// How often a publisher checks what is due. Short enough that a
/// 10,000 msgs/s run sends in small even bursts.
const PACE: Duration = Duration::from_millis(5);

/// Totals shared by all connections, readable while the run goes on.
#[derive(Debug, Default)]
pub struct Counters {
    pub heartbeats: AtomicU64,
    pub events: AtomicU64,
    /// QoS 1 publishes handed to the client: each should get a PUBACK.
    pub qos1_sent: AtomicU64,
    pub acked: AtomicU64,
    /// Connection errors (each followed by a reconnect).
    pub errors: AtomicU64,
}

impl Counters {
    pub fn sent(&self) -> u64 {
        self.heartbeats.load(Ordering::Relaxed) + self.events.load(Ordering::Relaxed)
    }
}

/// When each elder last pressed, for press-to-offer latency.
pub type Presses = Arc<Mutex<HashMap<String, Instant>>>;

/// One connection's share of the run.
pub(crate) struct Publisher {
    pub conn: usize,
    pub config: Arc<LoadConfig>,
    pub counters: Arc<Counters>,
    pub presses: Option<Presses>,
    pub stop: CancellationToken,
    /// Per-type event counts, merged into the report at the end.
    pub by_type: HashMap<&'static str, u64>,
}

impl Publisher {
    /// Connects, publishes until `stop`, waits for outstanding PUBACKs
    /// (at most a few seconds) and disconnects.
    pub async fn run(mut self) -> HashMap<&'static str, u64> {
        let c = &self.config;
        let mut opts = MqttOptions::new(
            format!("{}load-{}-{}", c.prefix, c.run_id, self.conn),
            c.broker_host.clone(),
            c.broker_port,
        );
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_inflight(c.inflight);
        let (client, mut eventloop) = AsyncClient::new(opts, 1000);
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        eventloop.set_network_options(net);
        let counters = self.counters.clone();
        let poller = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        counters.acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    Err(e) => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("load connection: {e}; reconnecting");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        self.publish(&client).await;
        // Let the acknowledgements of what was sent arrive.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && self.counters.acked.load(Ordering::Relaxed)
                < self.counters.qos1_sent.load(Ordering::Relaxed)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), poller).await;
        self.by_type
    }

    async fn publish(&mut self, client: &AsyncClient) {
        let c = self.config.clone();
        let conns = c.connections.max(1);
        // Devices this connection owns: conn, conn + C, …
        let owned = (c.devices + conns - 1 - self.conn) / conns;
        let homes = c.devices.div_ceil(DEVICES_PER_HOME);
        let topics = Topics::new(c.topic_root.clone());
        let hb_rate = if c.heartbeat_s > 0.0 {
            owned as f64 / c.heartbeat_s
        } else {
            0.0
        };
        let ev_rate = c.event_rate / conns as f64;
        let hb_qos = if c.heartbeat_qos0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        let mut rng = StdRng::seed_from_u64(c.seed.wrapping_add(self.conn as u64));
        let mut tick = tokio::time::interval(PACE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let started = Instant::now();
        let (mut hb_sent, mut ev_sent) = (0u64, 0u64);
        let mut seq = 0u64;
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let t = started.elapsed().as_secs_f64();
            let hb_due = (t * hb_rate) as u64;
            let ev_due = (t * ev_rate) as u64;
            while (hb_sent < hb_due || ev_sent < ev_due) && !self.stop.is_cancelled() {
                // Interleave, so events never wait behind a backlog of
                // heartbeats (or the other way round).
                if hb_sent < hb_due {
                    let local = (hb_sent % owned.max(1) as u64) as usize;
                    let n = self.conn + local * conns;
                    hb_sent += 1;
                    if n < c.devices {
                        self.heartbeat(client, &topics, n, hb_qos, &mut rng).await;
                    }
                }
                if ev_sent < ev_due && homes > 0 {
                    ev_sent += 1;
                    seq += 1;
                    let kind = c.mix.pick(&mut rng);
                    // A random home among those whose slot device this
                    // connection owns is too fiddly; any home will do, the
                    // broker does not check who speaks for whom.
                    let home = rng.random_range(0..homes);
                    let n = (home * DEVICES_PER_HOME + device_slot(kind)).min(c.devices - 1);
                    self.event(client, &topics, n, kind, seq, &mut rng).await;
                }
            }
        }
    }

    async fn heartbeat(
        &mut self,
        client: &AsyncClient,
        topics: &Topics,
        n: usize,
        qos: QoS,
        rng: &mut StdRng,
    ) {
        let c = &self.config;
        let Ok(id) = DeviceId::parse(device_id(&c.prefix, n)) else {
            return;
        };
        let status = StatusMessage {
            battery_pct: Some(rng.random_range(40..100)),
            rssi_dbm: Some(-rng.random_range(50..90)),
            fw: Some("1.4.2".into()),
            heartbeat_s: Some(c.heartbeat_s.round() as u32),
            ..StatusMessage::online(Utc::now())
        };
        let Ok(payload) = serde_json::to_vec(&status) else {
            return;
        };
        if client
            .publish(topics.status(&id), qos, true, payload)
            .await
            .is_ok()
        {
            self.counters.heartbeats.fetch_add(1, Ordering::Relaxed);
            if qos == QoS::AtLeastOnce {
                self.counters.qos1_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    async fn event(
        &mut self,
        client: &AsyncClient,
        topics: &Topics,
        n: usize,
        kind: &'static str,
        seq: u64,
        rng: &mut StdRng,
    ) {
        let c = &self.config;
        let (Ok(id), Ok(event_id)) = (
            DeviceId::parse(device_id(&c.prefix, n)),
            EventId::parse(format!("{}-{}-{seq}", c.run_id, self.conn)),
        ) else {
            return;
        };
        let mut message = EventMessage::new(event_id, EventType::from(kind), Utc::now());
        message.data = data_for(kind, rng);
        let Ok(payload) = serde_json::to_vec(&message) else {
            return;
        };
        if kind == "call.pressed"
            && let Some(presses) = &self.presses
        {
            presses
                .lock()
                .await
                .insert(elder_id(&c.prefix, n), Instant::now());
        }
        if client
            .publish(topics.events(&id), QoS::AtLeastOnce, false, payload)
            .await
            .is_ok()
        {
            self.counters.events.fetch_add(1, Ordering::Relaxed);
            self.counters.qos1_sent.fetch_add(1, Ordering::Relaxed);
            *self.by_type.entry(kind).or_default() += 1;
        }
    }
}
