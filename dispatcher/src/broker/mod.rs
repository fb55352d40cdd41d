//! The embedded MQTT broker for a single site: zero setup, bound to
//! loopback by default. Production may use Mosquitto or EMQX instead
//! (`ELDERCARE_MQTT_URL`), and then nothing here runs.
//!
//! Devices never talk to rumqttd directly. rumqttd ([`inner`]) listens on
//! an internal loopback port and admits only passwords this process made;
//! the public listener (`ELDERCARE_EMBEDDED_MQTT_ADDR`, and optionally a
//! TLS one) is the [`gate`], which checks each device's own credentials
//! and keeps it to its own topics ([`acl`]) before forwarding its bytes.
//! The dispatcher's own connection goes straight to rumqttd with a
//! credential of its own no device can take.

pub mod acl;
mod gate;
mod held;
mod inner;
mod receipts;
mod tls;
mod wills;

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use chrono::Utc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::credentials::DeviceLinks;
use crate::metrics::Metrics;
use crate::settings::{EmbeddedBrokerSettings, Secret};
use crate::store::Store;

/// A running embedded broker.
#[derive(Clone)]
pub struct EmbeddedBroker {
    /// Where devices connect (plain MQTT).
    pub addr: SocketAddr,
    /// Where devices connect over TLS, when configured.
    pub tls_addr: Option<SocketAddr>,
    /// rumqttd itself, for the dispatcher's own connection only.
    pub internal: SocketAddr,
    /// The dispatcher's username (its client id) and password there.
    pub dispatcher_username: String,
    pub dispatcher_password: Secret,
    /// Cancel to close the listeners and every device connection.
    pub stop: CancellationToken,
    /// Ingest tells the gate here what it stored.
    pub receipts: Arc<dyn crate::ingest::StoredReceipts>,
}

/// What the gate needs from the rest of the dispatcher.
pub struct BrokerDeps {
    pub store: Arc<dyn Store>,
    pub links: Arc<DeviceLinks>,
    pub metrics: Arc<Metrics>,
    pub topic_root: String,
    /// The dispatcher's MQTT client id (`mqtt.client_id`).
    pub dispatcher_id: String,
}

/// Whether something already listens on `addr`.
pub fn port_is_free(addr: SocketAddr) -> bool {
    StdListener::bind(addr).is_ok()
}

/// How often the gate looks for secrets rotated or revoked by another
/// process (`dispatcher device-secret`), to close connections using the
/// old one. The API's own rotations close them at once.
const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// Starts rumqttd, then the gate on `addr` (and the TLS listener), and
/// waits until devices can connect.
pub async fn start(
    addr: SocketAddr,
    settings: &EmbeddedBrokerSettings,
    deps: BrokerDeps,
) -> anyhow::Result<EmbeddedBroker> {
    let listener = bind(addr, "ELDERCARE_EMBEDDED_MQTT_ADDR").await?;
    let addr = listener.local_addr()?;
    let tls = match settings.tls_addr {
        Some(tls_addr) => {
            let (Some(cert), Some(key)) = (&settings.tls_cert, &settings.tls_key) else {
                bail!(
                    "embedded_broker.tls_addr is set without tls_cert and tls_key; set both PEM files"
                );
            };
            let acceptor = tls::acceptor(cert, key)?;
            let listener = bind(tls_addr, "embedded_broker.tls_addr").await?;
            Some((listener, acceptor))
        }
        None => None,
    };
    let tls_addr = match &tls {
        Some((l, _)) => Some(l.local_addr()?),
        None => None,
    };

    let key = Arc::new(inner::InternalKey::new(&deps.dispatcher_id));
    let internal = inner::start(settings, key.clone()).await?;
    let stop = CancellationToken::new();
    let topics = protocol::Topics::new(deps.topic_root);
    let receipts = Arc::new(receipts::Receipts::new(topics.clone()));
    // rumqttd keeps `segments` whole segments of a log besides the one it
    // writes: one less is what may safely be unread.
    let budget = settings.segments.saturating_sub(1).max(1) * settings.segment_kib * 1024;
    let gate = Arc::new(gate::Gate {
        store: deps.store.clone(),
        links: deps.links.clone(),
        metrics: deps.metrics,
        key: key.clone(),
        topics,
        dispatcher_id: deps.dispatcher_id.clone(),
        internal,
        max_packet_bytes: settings.max_packet_bytes,
        connect_timeout: Duration::from_secs(settings.connect_timeout_s.max(1)),
        permits: Arc::new(Semaphore::new(settings.max_connections)),
        receipts: receipts.clone(),
        budget: held::Budget::new(budget),
        max_inflight: settings.max_inflight,
        redeliver_after: Duration::from_secs(settings.redeliver_after_s),
        wills: wills::Wills::start(internal, key.wills_password(), stop.clone()),
        stop: stop.clone(),
    });
    tokio::spawn(gate.clone().serve(listener, None));
    if let Some((listener, acceptor)) = tls {
        tokio::spawn(gate.clone().serve(listener, Some(tls::handshake(acceptor))));
    }
    tokio::spawn(sweep(deps.store, deps.links, stop.clone()));
    tokio::spawn(crate::memory::trim_after_large_work(stop.clone()));
    Ok(EmbeddedBroker {
        addr,
        tls_addr,
        internal,
        dispatcher_username: deps.dispatcher_id,
        dispatcher_password: Secret::new(key.dispatcher_password()),
        stop,
        receipts,
    })
}

async fn bind(addr: SocketAddr, setting: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "{setting} {addr} is in use (a Mosquitto already running?); \
                 set {setting} to a free address, or ELDERCARE_MQTT_URL=mqtt://{addr} to use that broker"
            )
        } else {
            anyhow::anyhow!("{setting} {addr}: cannot listen ({e})")
        }
    })
}

/// Closes connections whose secret another process rotated or revoked.
async fn sweep(store: Arc<dyn Store>, links: Arc<DeviceLinks>, stop: CancellationToken) {
    // Overlapping windows: a change committed while a sweep runs is seen
    // by the next one; seeing one twice closes nothing twice.
    let mut since = Utc::now() - chrono::Duration::seconds(1);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
        if links.count() == 0 {
            since = Utc::now() - chrono::Duration::seconds(1);
            continue;
        }
        let started = Utc::now();
        match store.device_secrets_changed(since).await {
            Ok(changed) => {
                for (device, hash) in changed {
                    let closed = links.close_stale(&device, hash.as_deref());
                    if closed > 0 {
                        tracing::info!(device = %device, closed, "closing connections whose device secret changed");
                    }
                }
                since = started - chrono::Duration::seconds(1);
            }
            Err(e) => tracing::warn!(error = %e, "could not check for rotated device secrets"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_taken_port_is_not_free() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(!super::port_is_free(held.local_addr().unwrap()));
    }
}
