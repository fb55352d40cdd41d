//! The embedded broker's public listener: every device connection passes
//! here before rumqttd sees it.
//!
//! rumqttd can check a password but not what a client publishes or
//! subscribes to, so the gate reads the device's side of the connection
//! packet by packet (rumqttc's MQTT 3.1.1 parser) and:
//! - admits a CONNECT only with client id = username = a registered
//!   device's id and that device's current secret, and a last will (if
//!   any) on its own `status` topic; it hands rumqttd the CONNECT with
//!   the device's password replaced by the process's own (see
//!   [`super::inner`]);
//! - forwards a PUBLISH only to the device's own `events` or `status`, a
//!   SUBSCRIBE or UNSUBSCRIBE only for its own `commands`;
//! - closes the connection on anything else, counting the reason
//!   (`dispatcher_broker_refused_total`) and logging it at WARN.
//!
//! A device's QoS 1 publish is acknowledged by the gate, not rumqttd, and
//! only once ingest has stored it ([`super::held`], [`super::receipts`]);
//! rumqttd's PUBACKs stop here. The rest of the broker's side flows back
//! untouched. A rotation or revocation of the secret a connection used
//! closes it ([`DeviceLinks`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use protocol::Topics;
use rumqttc::mqttbytes::v4::{ConnAck, ConnectReturnCode, Packet, PubAck};
use rumqttc::mqttbytes::{self, Error as MqttError, QoS};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::acl::{self, DeviceTopics, Refusal};
use super::held::{Budget, Held};
use super::inner::{InternalKey, PROBE_CLIENT_ID, WILLS_CLIENT_ID};
use super::receipts::Receipts;
use super::wills::Wills;
use crate::credentials::{self, DeviceLinks};
use crate::domain::DeviceId;
use crate::metrics::Metrics;
use crate::store::Store;

/// What the gate needs, shared by every connection.
pub struct Gate {
    pub store: Arc<dyn Store>,
    pub links: Arc<DeviceLinks>,
    pub metrics: Arc<Metrics>,
    pub key: Arc<InternalKey>,
    pub topics: Topics,
    /// The dispatcher's client id: no device may take it.
    pub dispatcher_id: String,
    /// rumqttd.
    pub internal: SocketAddr,
    pub max_packet_bytes: usize,
    pub connect_timeout: Duration,
    pub permits: Arc<Semaphore>,
    /// What ingest has stored.
    pub receipts: Arc<Receipts>,
    /// Unstored bytes all devices together may have in rumqttd.
    pub budget: Budget,
    /// Unstored messages one device may have in rumqttd.
    pub max_inflight: usize,
    pub redeliver_after: Duration,
    pub wills: Wills,
    /// Ends every connection and the listeners.
    pub stop: CancellationToken,
}

/// A way to make a connection's stream readable: plain TCP, or TLS.
pub type Handshake = Arc<
    dyn Fn(TcpStream) -> futures::future::BoxFuture<'static, std::io::Result<Box<dyn Stream>>>
        + Send
        + Sync,
>;

/// A client's byte stream.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl Gate {
    fn refuse(&self, reason: Refusal) {
        self.metrics.broker_refused(reason.as_str());
    }

    /// Accepts connections on `listener` until the gate stops.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, handshake: Option<Handshake>) {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = self.stop.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, most likely: wait
                        // rather than spin; the connections that hold
                        // them will end.
                        tracing::warn!(error = %e, "the embedded broker cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                self.refuse(Refusal::TooManyConnections);
                tracing::warn!(%peer, "embedded broker: connection refused, embedded_broker.max_connections reached");
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let gate = self.clone();
            let handshake = handshake.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let stream: Box<dyn Stream> = match handshake {
                    None => Box::new(tcp),
                    Some(h) => match tokio::time::timeout(gate.connect_timeout, h(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "embedded broker: TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            gate.refuse(Refusal::ConnectTimeout);
                            return;
                        }
                    },
                };
                gate.connection(stream, peer).await;
            });
        }
    }

    /// One client, from its CONNECT to its end.
    async fn connection(&self, mut client: Box<dyn Stream>, peer: SocketAddr) {
        let mut buf = BytesMut::with_capacity(1024);
        let first = tokio::select! {
            _ = self.stop.cancelled() => return,
            r = tokio::time::timeout(self.connect_timeout, read_packet(&mut client, &mut buf, self.max_packet_bytes)) => r,
        };
        let connect = match first {
            Err(_) => {
                self.refuse(Refusal::ConnectTimeout);
                tracing::debug!(%peer, "embedded broker: no CONNECT in time");
                return;
            }
            Ok(Err(ReadError::Closed)) => return,
            Ok(Err(ReadError::Refused(reason))) => {
                self.refuse(reason);
                tracing::warn!(%peer, %reason, "embedded broker: refused a connection before CONNECT");
                return;
            }
            Ok(Ok((Packet::Connect(c), _))) => c,
            Ok(Ok(_)) => {
                self.refuse(Refusal::Malformed);
                tracing::warn!(%peer, reason = %Refusal::Malformed, "embedded broker: the first packet was not CONNECT");
                return;
            }
        };
        let (device, secret_hash) = match self.admit(&connect).await {
            Ok(admitted) => admitted,
            Err(reason) => {
                self.refuse(reason);
                tracing::warn!(
                    %peer, %reason, client_id = %acl::loggable(&connect.client_id),
                    "embedded broker: connection refused"
                );
                let code = match reason {
                    Refusal::NoCredentials | Refusal::BadCredentials => {
                        ConnectReturnCode::BadUserNamePassword
                    }
                    Refusal::ClientId => ConnectReturnCode::BadClientId,
                    _ => ConnectReturnCode::NotAuthorized,
                };
                let mut out = BytesMut::new();
                if ConnAck::new(code, false).write(&mut out).is_ok() {
                    let _ = client.write_all(&out).await;
                }
                let _ = client.shutdown().await;
                return;
            }
        };
        let link = self.links.register(&device, secret_hash);
        // rumqttd would otherwise see a takeover, which it handles badly
        // (see super::wills).
        self.links.older_gone(&link, Duration::from_secs(1)).await;
        let _counted = Counted::new(&self.metrics);
        let topics = DeviceTopics::new(&self.topics, &device);

        let mut upstream = match TcpStream::connect(self.internal).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, device = %device, "the embedded broker's internal listener is unreachable");
                return;
            }
        };
        let _ = upstream.set_nodelay(true);
        let mut connect = connect;
        if let Some(login) = &mut connect.login {
            login.password = self.key.device_password(device.as_str());
        }
        let will = connect.last_will.take();
        let mut out = BytesMut::new();
        if Packet::Connect(connect)
            .write(&mut out, self.max_packet_bytes + 1024)
            .is_err()
            || upstream.write_all(&out).await.is_err()
        {
            tracing::error!(device = %device, "could not hand a device's CONNECT to the embedded broker");
            return;
        }
        tracing::debug!(device = %device, %peer, "device connected to the embedded broker");

        let (mut up_read, mut up_write) = upstream.into_split();
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let held = Held::new(self.max_inflight);
        let mut receipts = self.receipts.listen(&device);
        let mut redeliver = tokio::time::interval(REDELIVERY_CHECK);
        redeliver.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Ok(true): it said goodbye (DISCONNECT); Ok(false): it went.
        let from_device = async {
            loop {
                let read = tokio::select! {
                    read = read_packet(&mut client_read, &mut buf, self.max_packet_bytes) => read,
                    _ = redeliver.tick() => {
                        if self.redeliver(&held, &device, &mut up_write).await.is_err() {
                            return Ok(false);
                        }
                        continue;
                    }
                };
                let (packet, frame) = match read {
                    Ok(p) => p,
                    Err(ReadError::Closed) => return Ok(false),
                    Err(ReadError::Refused(reason)) => return Err(reason),
                };
                let allowed = match &packet {
                    Packet::Publish(p) => topics
                        .may_publish(&p.topic)
                        .then_some(())
                        .ok_or(Refusal::PublishTopic),
                    Packet::Subscribe(s) => s
                        .filters
                        .iter()
                        .all(|f| topics.may_subscribe(&f.path))
                        .then_some(())
                        .ok_or(Refusal::SubscribeTopic),
                    Packet::Unsubscribe(u) => u
                        .topics
                        .iter()
                        .all(|t| topics.may_subscribe(t))
                        .then_some(())
                        .ok_or(Refusal::UnsubscribeTopic),
                    Packet::PubAck(_)
                    | Packet::PubRec(_)
                    | Packet::PubRel(_)
                    | Packet::PubComp(_)
                    | Packet::PingReq
                    | Packet::Disconnect => Ok(()),
                    Packet::Connect(_)
                    | Packet::ConnAck(_)
                    | Packet::SubAck(_)
                    | Packet::UnsubAck(_)
                    | Packet::PingResp => Err(Refusal::Malformed),
                };
                if let Err(reason) = allowed {
                    if let Packet::Publish(p) = &packet {
                        tracing::warn!(device = %device, %reason, topic = %acl::loggable(&p.topic), "embedded broker: device disconnected");
                    }
                    return Err(reason);
                }
                // A goodbye ends the connection here: rumqttd has no will
                // to drop (the gate keeps it), and a DISCONNECT would make
                // it log an ERROR for an ordinary end.
                if matches!(packet, Packet::Disconnect) {
                    let _ = up_write.shutdown().await;
                    return Ok(true);
                }
                if let Packet::Publish(p) = &packet
                    && p.qos == QoS::AtLeastOnce
                {
                    // Room first: a device this far ahead is not read
                    // until ingest catches up. Meanwhile what it has
                    // waiting may need handing over again.
                    let room = held.room(&self.budget, frame.len());
                    tokio::pin!(room);
                    let room = loop {
                        tokio::select! {
                            room = &mut room => break room,
                            _ = redeliver.tick() => {
                                if self.redeliver(&held, &device, &mut up_write).await.is_err() {
                                    return Ok(false);
                                }
                            }
                        }
                    };
                    held.hold(
                        room,
                        self.receipts.digest(&p.topic, &p.payload),
                        p.pkid,
                        &frame,
                    );
                }
                if up_write.write_all(&frame).await.is_err() {
                    return Ok(false);
                }
            }
        };
        let to_device = async {
            let mut from_broker = BytesMut::with_capacity(1024);
            loop {
                tokio::select! {
                    read = read_packet(&mut up_read, &mut from_broker, self.max_packet_bytes) => match read {
                        // rumqttd's receipt means "in memory": the device
                        // hears ours, which means "stored".
                        Ok((Packet::PubAck(_), _)) => {}
                        Ok((_, frame)) => {
                            if client_write.write_all(&frame).await.is_err() {
                                break;
                            }
                        }
                        Err(_) => break,
                    },
                    Some(digest) = receipts.rx.recv() => {
                        let Some(pkid) = held.settle(digest) else { continue };
                        let mut ack = BytesMut::with_capacity(4);
                        if PubAck::new(pkid).write(&mut ack).is_err()
                            || client_write.write_all(&ack).await.is_err()
                        {
                            break;
                        }
                    }
                }
            }
            let _ = client_write.shutdown().await;
        };
        let will_due = tokio::select! {
            _ = self.stop.cancelled() => false,
            _ = link.close.cancelled() => {
                if link.superseded() {
                    tracing::debug!(device = %device, "device connected again; its older connection closed");
                    false
                } else {
                    tracing::info!(device = %device, "device disconnected: its secret was rotated or revoked");
                    true
                }
            }
            _ = to_device => {
                tracing::debug!(device = %device, "device disconnected by the embedded broker");
                !link.superseded()
            }
            ended = from_device => match ended {
                Ok(true) => {
                    tracing::debug!(device = %device, "device said goodbye");
                    false
                }
                Ok(false) => {
                    tracing::debug!(device = %device, "device connection lost");
                    true
                }
                Err(reason) => {
                    self.refuse(reason);
                    if !matches!(reason, Refusal::PublishTopic) {
                        tracing::warn!(device = %device, %reason, "embedded broker: device disconnected");
                    }
                    true
                }
            },
        };
        if will_due
            && !link.superseded()
            && let Some(will) = will
        {
            self.wills.publish(device.as_str(), will);
        }
    }

    /// Hands rumqttd again what `held` has had waiting too long: rumqttd
    /// may have dropped it from a log that outgrew its segments.
    async fn redeliver(
        &self,
        held: &Held,
        device: &DeviceId,
        upstream: &mut tokio::net::tcp::OwnedWriteHalf,
    ) -> std::io::Result<()> {
        let overdue = held.overdue(Instant::now(), self.redeliver_after);
        if overdue.is_empty() {
            return Ok(());
        }
        self.metrics
            .broker_redelivered
            .fetch_add(overdue.len() as u64, Ordering::Relaxed);
        tracing::warn!(
            device = %device,
            messages = overdue.len(),
            after_s = self.redeliver_after.as_secs(),
            "embedded broker: a device's messages are not stored yet; handing them over again"
        );
        for frame in overdue {
            upstream.write_all(&frame).await?;
        }
        Ok(())
    }

    /// Who the CONNECT is, if it may come in: the device and the hash of
    /// the secret it proved.
    async fn admit(
        &self,
        connect: &rumqttc::mqttbytes::v4::Connect,
    ) -> Result<(DeviceId, String), Refusal> {
        let login = connect.login.as_ref().ok_or(Refusal::NoCredentials)?;
        if login.password.is_empty() {
            return Err(Refusal::NoCredentials);
        }
        let device = acl::claimed_device(
            &connect.client_id,
            &login.username,
            &[
                self.dispatcher_id.as_str(),
                PROBE_CLIENT_ID,
                WILLS_CLIENT_ID,
            ],
        )?;
        if let Some(will) = &connect.last_will
            && !DeviceTopics::new(&self.topics, &device).may_will(&will.topic)
        {
            return Err(Refusal::WillTopic);
        }
        let stored = match self.store.device_secret(&device).await {
            Ok(s) => s,
            Err(e) => {
                // The device is not at fault: it retries, and the
                // operator sees why.
                tracing::error!(device = %device, error = %e, "embedded broker: cannot read the device's secret");
                return Err(Refusal::BadCredentials);
            }
        };
        match stored {
            Some(hash) if credentials::verify(&login.password, &hash) => Ok((device, hash)),
            _ => Err(Refusal::BadCredentials),
        }
    }
}

/// Counts an open device connection for as long as it lives.
struct Counted<'a>(&'a Metrics);

impl<'a> Counted<'a> {
    fn new(metrics: &'a Metrics) -> Self {
        metrics.broker_connections.fetch_add(1, Ordering::Relaxed);
        Self(metrics)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.broker_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How often a connection looks for messages waiting too long.
const REDELIVERY_CHECK: Duration = Duration::from_secs(1);

enum ReadError {
    /// The client closed (or the socket failed): an ordinary end.
    Closed,
    Refused(Refusal),
}

/// Reads one whole packet: the packet and its bytes as they came.
/// A packet this large leaves buffers worth giving back ([`crate::memory`]).
const LARGE_PACKET: usize = 16 * 1024;

async fn read_packet<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> Result<(Packet, BytesMut), ReadError> {
    loop {
        match mqttbytes::check(buf.iter(), max) {
            Ok(header) => {
                let frame = buf.split_to(header.frame_length());
                if frame.len() >= LARGE_PACKET {
                    crate::memory::large_work_done();
                }
                let mut parse = frame.clone();
                return match Packet::read(&mut parse, max) {
                    Ok(packet) => Ok((packet, frame)),
                    Err(_) => Err(ReadError::Refused(Refusal::Malformed)),
                };
            }
            Err(MqttError::InsufficientBytes(_)) => {}
            Err(MqttError::PayloadSizeLimitExceeded(_)) => {
                return Err(ReadError::Refused(Refusal::PacketTooLarge));
            }
            Err(_) => return Err(ReadError::Refused(Refusal::Malformed)),
        }
        buf.reserve(8 * 1024);
        match reader.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(ReadError::Closed),
            Ok(_) => {}
        }
    }
}
