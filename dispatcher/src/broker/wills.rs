//! Devices' last wills, published by the gate rather than by rumqttd.
//!
//! rumqttd keeps a will by client id and fires it when a connection's
//! link ends: when a device reconnects before its old connection is fully
//! gone (a takeover, or a goodbye racing a reconnect), it fires the *new*
//! connection's will, and a device that is right there shows offline.
//! So the gate takes the will out of the CONNECT it forwards and, when a
//! device's connection ends without a DISCONNECT (lost, silent past its
//! keep-alive, closed for breaking the rules or for a rotated secret),
//! publishes it here, on a connection of its own. A connection replaced
//! by the same device's newer one, or closed because the dispatcher is
//! stopping, publishes nothing.

use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::mqttbytes::v4::LastWill;
use rumqttc::{AsyncClient, MqttOptions};
use tokio_util::sync::CancellationToken;

use super::inner::WILLS_CLIENT_ID;

/// The wills connection.
pub struct Wills {
    client: AsyncClient,
}

impl Wills {
    /// Connects to rumqttd (retrying in the background until `stop`).
    pub fn start(internal: SocketAddr, password: String, stop: CancellationToken) -> Self {
        let mut opts =
            MqttOptions::new(WILLS_CLIENT_ID, internal.ip().to_string(), internal.port());
        opts.set_credentials(WILLS_CLIENT_ID, password);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
        let (client, mut eventloop) = AsyncClient::new(opts, 1_000);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    polled = eventloop.poll() => if let Err(e) = polled {
                        tracing::warn!(error = %e, "the embedded broker's wills connection failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    },
                }
            }
        });
        Self { client }
    }

    /// Publishes `will` as its device's last word.
    pub fn publish(&self, device: &str, will: LastWill) {
        if let Err(e) = self
            .client
            .try_publish(will.topic, will.qos, will.retain, will.message)
        {
            tracing::warn!(device, error = %e, "could not publish a device's last will");
        }
    }
}
