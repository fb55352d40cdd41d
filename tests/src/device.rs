//! A home device speaking PROTOCOL.md over a real MQTT connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use dispatcher::clock::Clock;
use protocol::{DeviceId, StatusMessage, Topics};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// A connected device. Counts the broker's PUBACKs: a message the broker
/// acknowledged is one it accepted and must not lose.
///
/// Dropped, it says goodbye with a DISCONNECT, so the broker discards its
/// last will: a test done with a device must not raise a "device offline"
/// incident behind the test's back. `vanish` is the way to go silent.
pub struct TestDevice {
    pub id: DeviceId,
    client: AsyncClient,
    /// Where the event loop sends commands and SUBACKs, once `commands`
    /// subscribed.
    ears: Arc<Mutex<Ears>>,
    topics: Topics,
    /// The dispatcher's clock, so `ts` agrees with it when tests move time.
    clock: Clock,
    acked: Arc<AtomicU64>,
    published: u64,
    task: JoinHandle<()>,
    vanished: bool,
}

/// How a test device identifies itself to the broker.
#[derive(Debug, Clone)]
pub enum Login {
    /// A client id of its own and no credentials: the machine's
    /// Mosquitto, shared by parallel tests, allows anyone.
    Anonymous,
    /// client id = username = the device id, and its secret: what the
    /// embedded broker requires (PROTOCOL.md, Transport).
    Device { secret: String },
}

/// What the event loop hands a test: commands, and the SUBACK a
/// subscription waits for.
#[derive(Default)]
struct Ears {
    commands: Option<tokio::sync::mpsc::UnboundedSender<Value>>,
    subscribed: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The options a device connects with.
pub fn device_options(host: &str, port: u16, id: &DeviceId, login: &Login) -> MqttOptions {
    match login {
        Login::Anonymous => MqttOptions::new(
            format!("{id}-{}", uuid::Uuid::new_v4().simple()),
            host,
            port,
        ),
        Login::Device { secret } => {
            let mut opts = MqttOptions::new(id.as_str(), host, port);
            opts.set_credentials(id.as_str(), secret.clone());
            opts
        }
    }
}

impl TestDevice {
    /// Connects anonymously (a client id of its own; for Mosquitto) with
    /// a last will of `{"online": false}` on its status topic.
    pub async fn connect(host: &str, port: u16, topics: &Topics, id: &str, clock: Clock) -> Self {
        Self::connect_as(host, port, topics, id, clock, Login::Anonymous).await
    }

    /// Connects as `login` says, with a last will of `{"online": false}`
    /// on its status topic.
    pub async fn connect_as(
        host: &str,
        port: u16,
        topics: &Topics,
        id: &str,
        clock: Clock,
        login: Login,
    ) -> Self {
        let id = DeviceId::parse(id).expect("valid device id");
        let mut opts = device_options(host, port, &id, &login);
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_inflight(1000);
        opts.set_last_will(LastWill::new(
            topics.status(&id),
            serde_json::to_vec(&StatusMessage::offline()).expect("serializable"),
            QoS::AtLeastOnce,
            true,
        ));
        let (client, mut eventloop) = AsyncClient::new(opts, 10_000);
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        eventloop.set_network_options(net);
        let acked = Arc::new(AtomicU64::new(0));
        let ears = Arc::new(Mutex::new(Ears::default()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = {
            let acked = acked.clone();
            let ears = ears.clone();
            tokio::spawn(async move {
                let mut ready = Some(ready_tx);
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            if let Some(r) = ready.take() {
                                let _ = r.send(());
                            }
                        }
                        Ok(Event::Incoming(Packet::PubAck(_))) => {
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            let mut ears = ears.lock().unwrap();
                            if let Some(s) = ears.subscribed.take() {
                                let _ = s.send(());
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let ears = ears.lock().unwrap();
                            if let (Some(tx), Ok(v)) =
                                (&ears.commands, serde_json::from_slice(&p.payload))
                            {
                                let _ = tx.send(v);
                            }
                        }
                        // Written to the socket: the broker drops the will.
                        Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            })
        };
        tokio::time::timeout(crate::wait::PATIENCE, ready_rx)
            .await
            .expect("device connects to the broker")
            .expect("event loop alive");
        Self {
            id,
            client,
            ears,
            topics: topics.clone(),
            clock,
            acked,
            published: 0,
            task,
            vanished: false,
        }
    }

    /// Publishes an event (QoS 1) with the given id and type.
    pub async fn event(&mut self, event_id: &str, kind: &str, data: Value) {
        let body = json!({
            "event_id": event_id,
            "type": kind,
            "ts": self.clock.now().to_rfc3339(),
            "data": data,
        });
        self.raw_event(serde_json::to_vec(&body).expect("json"))
            .await;
    }

    /// Publishes any payload on the events topic (QoS 1).
    pub async fn raw_event(&mut self, payload: Vec<u8>) {
        self.client
            .publish(
                self.topics.events(&self.id),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .expect("publish queued");
        self.published += 1;
    }

    /// Publishes a retained status (QoS 1).
    pub async fn status(&mut self, online: bool, ts: DateTime<Utc>) {
        let status = if online {
            StatusMessage {
                battery_pct: Some(81),
                rssi_dbm: Some(-67),
                fw: Some("1.4.2".into()),
                ..StatusMessage::online(ts)
            }
        } else {
            StatusMessage::offline()
        };
        self.client
            .publish(
                self.topics.status(&self.id),
                QoS::AtLeastOnce,
                true,
                serde_json::to_vec(&status).expect("json"),
            )
            .await
            .expect("publish queued");
        self.published += 1;
    }

    /// Subscribes (QoS 1) to the device's commands topic on this
    /// connection and waits for the broker's SUBACK: a device hears
    /// commands where it sends its events.
    pub async fn commands(&mut self) -> CommandListener {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
        {
            let mut ears = self.ears.lock().unwrap();
            ears.commands = Some(tx);
            ears.subscribed = Some(subscribed_tx);
        }
        self.client
            .subscribe(self.topics.commands(&self.id), QoS::AtLeastOnce)
            .await
            .expect("subscribe queued");
        tokio::time::timeout(crate::wait::PATIENCE, subscribed_rx)
            .await
            .expect("subscribed to the commands topic")
            .expect("event loop alive");
        CommandListener { rx, task: None }
    }

    /// PUBACKs received so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    /// Waits until the broker has acknowledged everything published.
    pub async fn flushed(&self) {
        let want = self.published;
        crate::wait::until("the broker to acknowledge every publish", || async {
            (self.acked() >= want).then_some(())
        })
        .await;
    }

    /// Drops the connection without a DISCONNECT, so the broker publishes
    /// the last will.
    pub fn vanish(mut self) {
        self.task.abort();
        self.vanished = true;
    }
}

impl Drop for TestDevice {
    fn drop(&mut self) {
        // Queued behind any publish still in flight; the event loop ends
        // once it has sent it. Fails only if the loop is gone (`vanish`).
        if !self.vanished {
            let _ = self.client.try_disconnect();
        }
    }
}

/// A device's ear: subscribed to its commands topic.
pub struct CommandListener {
    rx: tokio::sync::mpsc::UnboundedReceiver<Value>,
    /// Its own connection's loop, when it has one.
    task: Option<JoinHandle<()>>,
}

impl CommandListener {
    /// Subscribes (QoS 1) on a connection of its own, anonymously, and
    /// waits for the broker's SUBACK. Only an open broker (the machine's
    /// Mosquitto) allows it; on the embedded broker use
    /// [`TestDevice::commands`].
    pub async fn subscribe(host: &str, port: u16, topics: &Topics, device: &str) -> Self {
        let id = DeviceId::parse(device).expect("valid device id");
        let mut opts =
            MqttOptions::new(format!("ear-{}", uuid::Uuid::new_v4().simple()), host, port);
        opts.set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = AsyncClient::new(opts, 100);
        client
            .subscribe(topics.commands(&id), QoS::AtLeastOnce)
            .await
            .expect("subscribe queued");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let _client = client;
            let mut ready = Some(ready_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if let Ok(v) = serde_json::from_slice(&p.payload) {
                            let _ = tx.send(v);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        tokio::time::timeout(crate::wait::PATIENCE, ready_rx)
            .await
            .expect("subscribed to the commands topic")
            .expect("listener alive");
        Self {
            rx,
            task: Some(task),
        }
    }

    /// The next command, or a panic after the usual patience.
    pub async fn next(&mut self) -> Value {
        tokio::time::timeout(crate::wait::PATIENCE, self.rx.recv())
            .await
            .expect("a command arrives")
            .expect("listener alive")
    }
}

impl Drop for CommandListener {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
