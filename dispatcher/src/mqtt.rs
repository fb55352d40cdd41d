//! The dispatcher's MQTT connection: where the broker is and how to talk
//! to it safely (QoS 1, persistent session, manual acks, no Nagle), over
//! TLS when the URL says `mqtts://`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rumqttc::{MqttOptions, NetworkOptions, TlsConfiguration, Transport};

pub use crate::settings::BrokerUrl;
use crate::settings::{MqttSettings, Secret};

/// Options for a client of `broker`: over TLS, with `ca_file`'s
/// roots (PEM) or else the system's, when the URL is `mqtts://`.
pub fn client_options(
    broker: &BrokerUrl,
    client_id: impl Into<String>,
    ca_file: Option<&Path>,
) -> anyhow::Result<MqttOptions> {
    let mut opts = MqttOptions::new(client_id, broker.host.clone(), broker.port);
    if broker.tls {
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls_client_config(ca_file)?),
        )));
    }
    Ok(opts)
}

/// A TLS client configuration trusting `ca_file` (PEM certificates) or,
/// without one, the system's roots.
pub fn tls_client_config(ca_file: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("mqtt.ca_file {}: cannot read it", path.display()))?;
            let mut added = 0;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.with_context(|| {
                    format!("mqtt.ca_file {}: not PEM certificates", path.display())
                })?;
                roots.add(cert).with_context(|| {
                    format!(
                        "mqtt.ca_file {}: a certificate rustls refuses",
                        path.display()
                    )
                })?;
                added += 1;
            }
            anyhow::ensure!(
                added > 0,
                "mqtt.ca_file {}: no certificate in it; give the PEM of the CA that signed the broker's certificate",
                path.display()
            );
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            anyhow::ensure!(
                !roots.is_empty(),
                "mqtts:// without mqtt.ca_file and no system CA certificates found; set mqtt.ca_file to the broker's CA (PEM)"
            );
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// Options for a client that must not lose a QoS 1 message: a persistent
/// session (the broker queues what arrives while we are away) and manual
/// acknowledgements (PUBACK only after the store commits).
pub fn dispatcher_options(
    settings: &MqttSettings,
    broker: &BrokerUrl,
) -> anyhow::Result<MqttOptions> {
    let mut opts = client_options(
        broker,
        settings.client_id.clone(),
        settings.ca_file.as_deref(),
    )?;
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
    Ok(opts)
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
            BrokerUrl::plain("127.0.0.1", 1883)
        );
        assert_eq!(BrokerUrl::parse("tcp://broker").unwrap().port, 1883);
        let tls = BrokerUrl::parse("mqtts://broker.example").unwrap();
        assert!(tls.tls);
        assert_eq!(tls.port, 8883);
        assert!(BrokerUrl::parse("ssl://broker:9883").unwrap().tls);
        assert!(BrokerUrl::parse("http://x:1").is_err());
        assert!(BrokerUrl::parse("mqtt://x:notaport").is_err());
        assert!(BrokerUrl::parse("mqtt://:1883").is_err());
    }
}
