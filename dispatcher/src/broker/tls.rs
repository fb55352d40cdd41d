//! The embedded broker's TLS listener: a certificate chain and key from
//! PEM files (`embedded_broker.tls_cert`, `tls_key`), rustls with ring.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::gate::{Handshake, Stream};

/// Reads the files and makes the acceptor; errors name the setting.
pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| {
            format!(
                "embedded_broker.tls_cert {}: cannot read a PEM certificate chain",
                cert.display()
            )
        })?;
    if chain.is_empty() {
        anyhow::bail!(
            "embedded_broker.tls_cert {}: no certificate in the file (PEM, leaf first)",
            cert.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| {
            format!(
                "embedded_broker.tls_key {}: cannot read a PEM private key (PKCS#8, PKCS#1 or SEC1)",
                key.display()
            )
        })?;
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("embedded_broker.tls_cert and tls_key do not make a usable pair")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The gate's handshake for the TLS listener.
pub fn handshake(acceptor: TlsAcceptor) -> Handshake {
    Arc::new(move |tcp| {
        let acceptor = acceptor.clone();
        Box::pin(async move {
            let stream = acceptor.accept(tcp).await?;
            Ok(Box::new(stream) as Box<dyn Stream>)
        })
    })
}
