//! The dispatcher's MQTT connection: where the broker is and how to talk
//! to it safely (QoS 1, persistent session, manual acks, no Nagle).

use std::time::Duration;

use rumqttc::{MqttOptions, NetworkOptions};

use crate::settings::{MqttSettings, Secret};

/// A broker address from `ELDERCARE_MQTT_URL`: `mqtt://host:port` or
/// `tcp://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
}

impl BrokerUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
            .ok_or_else(|| format!("{url:?} must start with mqtt:// (TLS is not built in yet)"))?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("{url:?} has a bad port {p:?}"))?,
            ),
            None => (rest, 1883),
        };
        if host.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        Ok(Self {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
        })
    }
}

/// Options for a client that must not lose a QoS 1 message: a persistent
/// session (the broker queues what arrives while we are away) and manual
/// acknowledgements (PUBACK only after the store commits).
pub fn dispatcher_options(settings: &MqttSettings, broker: &BrokerUrl) -> MqttOptions {
    let mut opts = MqttOptions::new(settings.client_id.clone(), broker.host.clone(), broker.port);
    opts.set_keep_alive(Duration::from_secs(u64::from(settings.keep_alive_s.max(5))));
    opts.set_clean_session(false);
    opts.set_manual_acks(true);
    opts.set_inflight(settings.inflight);
    // Oversized events must reach us to be rejected and acknowledged: a
    // packet over the client's limit would drop the connection, the broker
    // would redeliver it, and ingestion would loop on it forever. The
    // broker's own limit (config/mosquitto.conf) sits below this one.
    opts.set_max_packet_size(16 * 1024 * 1024, 64 * 1024);
    if let (Some(user), Some(pass)) = (&settings.username, &settings.password) {
        opts.set_credentials(user.clone(), Secret::expose(pass).to_owned());
    }
    opts
}

/// Latency matters more than packing: Nagle costs tens of milliseconds at
/// moderate load (PERFORMANCE.md).
pub fn network_options() -> NetworkOptions {
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(5);
    net
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        assert_eq!(
            BrokerUrl::parse("mqtt://127.0.0.1:1883").unwrap(),
            BrokerUrl {
                host: "127.0.0.1".into(),
                port: 1883
            }
        );
        assert_eq!(BrokerUrl::parse("tcp://broker").unwrap().port, 1883);
        assert!(BrokerUrl::parse("http://x:1").is_err());
        assert!(BrokerUrl::parse("mqtt://x:notaport").is_err());
        assert!(BrokerUrl::parse("mqtt://:1883").is_err());
    }
}
