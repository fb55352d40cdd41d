//! The site's devices: one MQTT connection each (client id = device id),
//! a retained heartbeat every `heartbeat_s` (jittered, the first at once)
//! and a last will of `{"online": false}`.
//!
//! Each device also has power ([`Fleet::set_power`]): without it the
//! connection drops with no DISCONNECT, as when the mains fail, so the
//! broker publishes the last will; heartbeats and events stop until power
//! returns, when the device reconnects and heartbeats at once.
//!
//! Each device listens on its commands topic. A `test.ack` (the answer to
//! its scheduled `test.call`, docs/PROTOCOL-EXTENSIONS.md) lights its
//! lamp and it sends `test.confirmed` naming the test, unless its lamp is
//! broken ([`Fleet::break_lamp`]): then the dispatcher counts the test as
//! failed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use protocol::{DeviceId, EventId, EventMessage, EventType, StatusMessage, Topics};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::journal::Journal;
use crate::site::Site;

/// The heartbeat period of a device that names none (the protocol's default).
pub const DEFAULT_HEARTBEAT_S: u32 = 60;

/// Waits until the power is `on` (or off); false if the fleet is gone.
async fn powered(power: &mut watch::Receiver<bool>, on: bool) -> bool {
    power.wait_for(|p| *p == on).await.is_ok()
}

/// One running device.
struct Running {
    id: DeviceId,
    client: AsyncClient,
    /// True while the device has power; its tasks watch it.
    power: watch::Sender<bool>,
}

/// All devices of a site, connected once `ready` fires.
pub struct Fleet {
    topics: Topics,
    devices: HashMap<String, Running>,
    tasks: Vec<JoinHandle<()>>,
    /// Events published by type, and what the scenario did: what
    /// `GET /api/v1/sim` shows and tests compare with what was stored.
    pub journal: Arc<Journal>,
    /// Devices whose lamp never lights: they never confirm a test.
    broken_lamps: Arc<Mutex<HashSet<String>>>,
}

impl Fleet {
    /// Connects every device of the site (in the background: each keeps
    /// reconnecting until stopped) and starts their heartbeats.
    pub fn start(
        host: &str,
        port: u16,
        topics: Topics,
        site: &Site,
        seed: u64,
        ready: CancellationToken,
        stop: CancellationToken,
    ) -> anyhow::Result<Self> {
        let mut devices = HashMap::new();
        let mut tasks = Vec::new();
        let journal = Arc::new(Journal::default());
        let broken_lamps: Arc<Mutex<HashSet<String>>> = Arc::default();
        for (n, d) in site.devices.iter().enumerate() {
            let id = DeviceId::parse(d.id.clone())
                .map_err(|e| anyhow::anyhow!("device {:?}: {e}", d.id))?;
            let mut opts = MqttOptions::new(id.to_string(), host, port);
            // client id = username = the device id, and its own secret
            // (PROTOCOL.md, Transport).
            if let Some(secret) = &d.secret {
                opts.set_credentials(id.to_string(), secret.clone());
            }
            opts.set_keep_alive(Duration::from_secs(30));
            opts.set_last_will(LastWill::new(
                topics.status(&id),
                serde_json::to_vec(&StatusMessage::offline())?,
                QoS::AtLeastOnce,
                true,
            ));
            let (client, mut eventloop) = AsyncClient::new(opts, 64);
            let (power, _) = watch::channel(true);
            // The connection: poll forever, reconnecting after errors.
            {
                let stop = stop.clone();
                let client = client.clone();
                let name = d.id.clone();
                let ready = ready.clone();
                let mut power = power.subscribe();
                let lamp = Lamp {
                    id: id.clone(),
                    commands: topics.commands(&id),
                    events: topics.events(&id),
                    journal: journal.clone(),
                    broken: broken_lamps.clone(),
                };
                tasks.push(tokio::spawn(async move {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = ready.cancelled() => {}
                    }
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => break,
                            // (false: the fleet is gone; the branch is off.)
                            true = powered(&mut power, false) => {
                                // The mains failed: the socket closes with
                                // no DISCONNECT, so the broker publishes
                                // the last will. Polling again reconnects.
                                eventloop.clean();
                                tokio::select! {
                                    // No goodbye either: it has no power.
                                    _ = stop.cancelled() => return,
                                    _ = powered(&mut power, true) => {}
                                }
                            }
                            polled = eventloop.poll() => match polled {
                                // Connected (again): listen for commands.
                                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                                    let _ = client.try_subscribe(lamp.commands.clone(), QoS::AtLeastOnce);
                                }
                                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == lamp.commands => {
                                    lamp.heard(&client, &p.payload);
                                }
                                Ok(_) => {}
                                Err(e) => {
                                    tracing::debug!(device = %name, "MQTT: {e}; reconnecting");
                                    tokio::select! {
                                        _ = stop.cancelled() => break,
                                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                                    }
                                }
                            }
                        }
                    }
                    // A clean goodbye: no last will.
                    let _ = client.try_disconnect();
                    let _ = tokio::time::timeout(Duration::from_secs(1), async {
                        while eventloop.poll().await.is_ok() {}
                    })
                    .await;
                }));
            }
            // The heartbeat.
            {
                let stop = stop.clone();
                let client = client.clone();
                let topic = topics.status(&id);
                let period = d.heartbeat_s.unwrap_or(DEFAULT_HEARTBEAT_S).max(1);
                let mut rng = StdRng::seed_from_u64(seed ^ (n as u64).wrapping_mul(0x9E37_79B9));
                let mut battery: f64 = rng.random_range(55.0..100.0);
                let ready = ready.clone();
                let mut power = power.subscribe();
                tasks.push(tokio::spawn(async move {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = ready.cancelled() => {}
                    }
                    loop {
                        // Without power, wait; back, heartbeat at once so
                        // the dispatcher clears the offline incident.
                        tokio::select! {
                            _ = stop.cancelled() => break,
                            ok = powered(&mut power, true) => if !ok { break },
                        }
                        let status = StatusMessage {
                            battery_pct: Some(battery.round() as u8),
                            rssi_dbm: Some(rng.random_range(-85..-50)),
                            fw: Some("1.4.2".into()),
                            heartbeat_s: Some(period),
                            ..StatusMessage::online(Utc::now())
                        };
                        if let Ok(payload) = serde_json::to_vec(&status) {
                            let _ = client
                                .publish(topic.clone(), QoS::AtLeastOnce, true, payload)
                                .await;
                        }
                        battery = (battery - rng.random_range(0.0..0.05)).max(20.0);
                        // Jittered, never later than promised.
                        let next = f64::from(period) * rng.random_range(0.85..1.0);
                        tokio::select! {
                            _ = stop.cancelled() => break,
                            _ = tokio::time::sleep(Duration::from_secs_f64(next)) => {}
                            _ = powered(&mut power, false) => {}
                        }
                    }
                }));
            }
            devices.insert(d.id.clone(), Running { id, client, power });
        }
        Ok(Self {
            topics,
            devices,
            tasks,
            journal,
            broken_lamps,
        })
    }

    /// The device's lamp stops working: it hears `test.ack` but never
    /// confirms a test.
    pub fn break_lamp(&self, device: &str) {
        self.broken_lamps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(device.to_owned());
    }

    /// Cuts (`false`) or restores (`true`) a device's power; false if
    /// there is no such device.
    pub fn set_power(&self, device: &str, on: bool) -> bool {
        match self.devices.get(device) {
            Some(d) => {
                d.power.send_replace(on);
                true
            }
            None => false,
        }
    }

    /// Whether the device has power; None if there is no such device.
    pub fn powered(&self, device: &str) -> Option<bool> {
        self.devices.get(device).map(|d| *d.power.borrow())
    }

    /// The devices without power now, sorted.
    pub fn unpowered(&self) -> Vec<String> {
        let mut off: Vec<String> = self
            .devices
            .iter()
            .filter(|(_, d)| !*d.power.borrow())
            .map(|(id, _)| id.clone())
            .collect();
        off.sort();
        off
    }

    /// Events published so far, by type.
    pub fn sent(&self) -> BTreeMap<String, u64> {
        self.journal.sent()
    }

    /// Publishes an event as `device` (QoS 1, not retained).
    pub async fn event(
        &self,
        device: &str,
        kind: EventType,
        data: serde_json::Map<String, serde_json::Value>,
    ) -> anyhow::Result<()> {
        let d = self
            .devices
            .get(device)
            .ok_or_else(|| anyhow::anyhow!("no simulated device {device}"))?;
        if !*d.power.borrow() {
            anyhow::bail!("simulated device {device} has no power");
        }
        let type_name = kind.to_string();
        let id =
            EventId::parse(uuid::Uuid::new_v4().to_string()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut message = EventMessage::new(id, kind, Utc::now());
        message.data = data;
        d.client
            .publish(
                self.topics.events(&d.id),
                QoS::AtLeastOnce,
                false,
                serde_json::to_vec(&message)?,
            )
            .await?;
        self.journal.count_sent(&type_name);
        Ok(())
    }

    /// Waits for the device tasks to end (after the stop token fired).
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// A device's lamp: what it does with the commands it hears.
struct Lamp {
    id: DeviceId,
    commands: String,
    events: String,
    journal: Arc<Journal>,
    broken: Arc<Mutex<HashSet<String>>>,
}

impl Lamp {
    /// A command arrived: a `test.ack` lights the lamp and is confirmed
    /// (`test.confirmed` naming the test), unless the lamp is broken.
    /// Anything else (`incident.update`) only shows.
    fn heard(&self, client: &AsyncClient, payload: &[u8]) {
        let Ok(command) = serde_json::from_slice::<protocol::TestAck>(payload) else {
            return;
        };
        if command.command_type != protocol::TestAck::TYPE {
            return;
        }
        let broken = self
            .broken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(self.id.as_str());
        if broken {
            tracing::debug!(device = %self.id, test = %command.event_id, "lamp broken; the test goes unconfirmed");
            return;
        }
        let Ok(id) = EventId::parse(uuid::Uuid::new_v4().to_string()) else {
            return;
        };
        let mut message = EventMessage::new(id, EventType::TestConfirmed, Utc::now());
        message
            .data
            .insert("test_event_id".into(), command.event_id.into());
        let Ok(payload) = serde_json::to_vec(&message) else {
            return;
        };
        // From the event loop's own task: never wait on the queue it drains.
        if client
            .try_publish(self.events.clone(), QoS::AtLeastOnce, false, payload)
            .is_ok()
        {
            self.journal.count_sent(EventType::TestConfirmed.as_str());
        }
    }
}
