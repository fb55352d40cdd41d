//! rumqttd itself, on an internal loopback port nobody else should use.
//!
//! Whoever reaches that port anyway gets nothing: rumqttd's
//! `external_auth` lets in only passwords made with a key this process
//! drew at start and never shows: HMAC-SHA256 of the client id, one
//! purpose for the gate's device connections, one for the dispatcher's
//! own, one for the readiness probe. The gate gives a device's connection
//! its password only after checking the device's own secret, so no one
//! outside the process can make one.
//!
//! rumqttd's `Broker::start` blocks and has no shutdown call, so it runs
//! on its own thread for the life of the process; it cannot bind port 0,
//! so a free port is picked first and the broker is awaited (a real MQTT
//! connection, so rumqttd sees a well-behaved client, not a half-open
//! socket it would log as an error).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::BytesMut;
use hmac::{Hmac, KeyInit, Mac};
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Login, Packet};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::settings::EmbeddedBrokerSettings;

/// The client id of the readiness probe; the gate never lets a device
/// use it.
pub const PROBE_CLIENT_ID: &str = "eldercare-embedded-probe";
/// The client id that publishes devices' last wills ([`super::wills`]).
pub const WILLS_CLIENT_ID: &str = "eldercare-embedded-wills";

#[derive(Clone, Copy)]
enum Purpose {
    Device,
    Dispatcher,
    Probe,
    Wills,
}

impl Purpose {
    fn tag(self) -> &'static [u8] {
        match self {
            Purpose::Device => b"device\0",
            Purpose::Dispatcher => b"dispatcher\0",
            Purpose::Probe => b"probe\0",
            Purpose::Wills => b"wills\0",
        }
    }
}

/// The per-process key behind every password rumqttd accepts.
pub struct InternalKey {
    key: [u8; 32],
    dispatcher_id: String,
}

impl InternalKey {
    pub fn new(dispatcher_id: &str) -> Self {
        Self {
            key: rand::random(),
            dispatcher_id: dispatcher_id.to_owned(),
        }
    }

    fn password(&self, purpose: Purpose, client_id: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(purpose.tag());
        mac.update(client_id.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// What the gate puts in a checked device's CONNECT.
    pub fn device_password(&self, device: &str) -> String {
        self.password(Purpose::Device, device)
    }

    /// The dispatcher's own password (its username is its client id).
    pub fn dispatcher_password(&self) -> String {
        self.password(Purpose::Dispatcher, &self.dispatcher_id)
    }

    fn probe_password(&self) -> String {
        self.password(Purpose::Probe, PROBE_CLIENT_ID)
    }

    /// The password of the connection that publishes last wills.
    pub fn wills_password(&self) -> String {
        self.password(Purpose::Wills, WILLS_CLIENT_ID)
    }

    /// rumqttd's `external_auth`: username = client id, and the password
    /// made for that client id and its purpose.
    fn admits(&self, client_id: &str, username: &str, password: &str) -> bool {
        if client_id != username {
            return false;
        }
        let purpose = if client_id == self.dispatcher_id {
            Purpose::Dispatcher
        } else if client_id == PROBE_CLIENT_ID {
            Purpose::Probe
        } else if client_id == WILLS_CLIENT_ID {
            Purpose::Wills
        } else {
            Purpose::Device
        };
        let want = self.password(purpose, client_id);
        want.as_bytes().ct_eq(password.as_bytes()).into()
    }
}

/// A loopback port free right now.
fn free_loopback_port() -> anyhow::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("no free loopback port for the embedded broker")
}

/// Starts rumqttd on a free loopback port and waits until it admits the
/// probe. Returns its address.
pub async fn start(
    limits: &EmbeddedBrokerSettings,
    key: Arc<InternalKey>,
) -> anyhow::Result<SocketAddr> {
    let addr = free_loopback_port()?;
    let mut broker = Broker::new(config(addr, limits, key.clone()));
    std::thread::Builder::new()
        .name("embedded-mqtt".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "the embedded MQTT broker stopped");
            }
        })
        .context("could not start the embedded broker's thread")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match probe(addr, &key).await {
            Ok(()) => return Ok(addr),
            Err(e) if Instant::now() > deadline => {
                bail!("the embedded MQTT broker did not start on {addr} within 10 s: {e:#}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// One clean MQTT session: CONNECT, CONNACK accepted, close.
async fn probe(addr: SocketAddr, key: &InternalKey) -> anyhow::Result<()> {
    let mut stream = tokio::time::timeout(
        Duration::from_millis(500),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .context("connect timed out")??;
    let mut connect = Connect::new(PROBE_CLIENT_ID);
    connect.clean_session = true;
    connect.login = Some(Login::new(PROBE_CLIENT_ID, key.probe_password()));
    let mut out = BytesMut::new();
    connect.write(&mut out)?;
    stream.write_all(&out).await?;
    let mut buf = BytesMut::with_capacity(64);
    let ack = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match Packet::read(&mut buf, 1024) {
                Ok(p) => return Ok(p),
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(e) => return Err(anyhow::anyhow!("bad answer: {e}")),
            }
            if stream.read_buf(&mut buf).await? == 0 {
                bail!("closed before CONNACK");
            }
        }
    })
    .await
    .context("no CONNACK within 2 s")??;
    match ack {
        Packet::ConnAck(a) if a.code == ConnectReturnCode::Success => {}
        other => bail!("refused: {other:?}"),
    }
    // Closed without a DISCONNECT, which rumqttd would log as an ERROR
    // (its router sees the connection end twice); a close it logs at INFO.
    let _ = stream.shutdown().await;
    Ok(())
}

fn config(addr: SocketAddr, limits: &EmbeddedBrokerSettings, key: Arc<InternalKey>) -> Config {
    let mut connections = ConnectionSettings {
        connection_timeout_ms: u16::try_from(limits.connect_timeout_s.saturating_mul(1000))
            .unwrap_or(u16::MAX),
        // The gate refuses anything over max_packet_bytes before rumqttd
        // sees it; this only has to let those through. Oversized events
        // (over the protocol's 4 KiB, under this) must reach the
        // dispatcher to be rejected and counted, not silently dropped.
        max_payload_size: limits.max_packet_bytes,
        max_inflight_count: limits.max_inflight,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    connections.set_auth_handler(
        move |client_id: String, username: String, password: String| {
            let admitted = key.admits(&client_id, &username, &password);
            async move { admitted }
        },
    );
    let server = ServerSettings {
        name: "v4-internal".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 0,
        connections,
    };
    let router = RouterConfig {
        // The gate's cap, plus the dispatcher and the probe.
        max_connections: limits.max_connections + 16,
        max_outgoing_packet_count: 500,
        // Each topic's payloads are kept in memory in segments until the
        // oldest is dropped: small segments keep what delivery needs (a
        // device's messages while the dispatcher restarts) and no more.
        max_segment_size: limits.segment_kib.max(1) * 1024,
        max_segment_count: limits.segments.max(1),
        custom_segment: None,
        initialized_filters: None,
        shared_subscriptions_strategy: Default::default(),
    };
    Config {
        id: 0,
        router,
        v4: Some(HashMap::from([("internal".to_owned(), server)])),
        v5: None,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_passwords_made_in_this_process_are_admitted() {
        let key = InternalKey::new("eldercare-dispatcher");
        let other = InternalKey::new("eldercare-dispatcher");
        let device = key.device_password("bed-1");
        assert!(key.admits("bed-1", "bed-1", &device));
        assert!(!key.admits("bed-2", "bed-2", &device), "another device's");
        assert!(!key.admits("bed-1", "bed-2", &device));
        assert!(
            !other.admits("bed-1", "bed-1", &device),
            "another process's"
        );
        let dispatcher = key.dispatcher_password();
        assert!(key.admits("eldercare-dispatcher", "eldercare-dispatcher", &dispatcher));
        // A device password for the dispatcher's client id is useless.
        assert!(!key.admits(
            "eldercare-dispatcher",
            "eldercare-dispatcher",
            &key.device_password("eldercare-dispatcher")
        ));
        assert!(!key.admits(
            PROBE_CLIENT_ID,
            PROBE_CLIENT_ID,
            &key.device_password(PROBE_CLIENT_ID)
        ));
        assert!(key.admits(PROBE_CLIENT_ID, PROBE_CLIENT_ID, &key.probe_password()));
    }
}
