//! The embedded MQTT broker (rumqttd) for a single site: zero setup, bound
//! to loopback by default. Production uses Mosquitto or EMQX instead
//! (`ELDERCARE_MQTT_URL`).
//!
//! rumqttd's `Broker::start` blocks and has no shutdown call, so it runs on
//! its own thread for the life of the process; it cannot bind port 0, so
//! the port is checked free first and the broker is awaited until it
//! accepts connections.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// A running embedded broker.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedBroker {
    pub addr: SocketAddr,
}

/// Whether something already listens on `addr`.
pub fn port_is_free(addr: SocketAddr) -> bool {
    TcpListener::bind(addr).is_ok()
}

/// Starts the broker on `addr` and waits until it accepts connections.
pub fn start(addr: SocketAddr) -> anyhow::Result<EmbeddedBroker> {
    if !port_is_free(addr) {
        bail!(
            "ELDERCARE_EMBEDDED_MQTT_ADDR {addr} is in use (a Mosquitto already running?); \
             set ELDERCARE_EMBEDDED_MQTT_ADDR to a free address, or ELDERCARE_MQTT_URL=mqtt://{addr} to use that broker"
        );
    }
    let mut broker = Broker::new(config(addr));
    std::thread::Builder::new()
        .name("embedded-mqtt".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "the embedded MQTT broker stopped");
            }
        })
        .context("could not start the embedded broker's thread")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            bail!("the embedded MQTT broker did not start listening on {addr} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(EmbeddedBroker { addr })
}

fn config(addr: SocketAddr) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        // Above the protocol's 4 KiB so oversized events reach the
        // dispatcher and are rejected and counted, not silently dropped.
        max_payload_size: 256 * 1024,
        max_inflight_count: 500,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "v4".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 0,
        connections,
    };
    let router = RouterConfig {
        max_connections: 100_000,
        max_outgoing_packet_count: 500,
        max_segment_size: 100 * 1024 * 1024,
        max_segment_count: 10,
        custom_segment: None,
        initialized_filters: None,
        shared_subscriptions_strategy: Default::default(),
    };
    Config {
        id: 0,
        router,
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        v5: None,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    }
}
