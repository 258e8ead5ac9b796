//! HTTPS for `jwtgate serve`: the certificate chain and key from PEM files (rustls with the
//! aws-lc-rs provider, TLS 1.2 and 1.3). The handshakes happen in `server`, each in its own
//! task, so a slow or silent client never holds up the next one.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

/// The server side of TLS from a PEM certificate chain (leaf first) and a PEM private key
/// (PKCS#8, PKCS#1 or SEC1).
pub fn server_config(cert: &Path, key_path: &Path) -> Result<Arc<ServerConfig>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read tls_cert {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("tls_cert {} is not valid PEM", cert.display()))?;
    if chain.is_empty() {
        bail!("tls_cert {} holds no CERTIFICATE block", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => anyhow::anyhow!(
            "tls_key {} holds no private key (PKCS#8, PKCS#1 or SEC1 PEM)",
            key_path.display()
        ),
        other => anyhow::anyhow!("cannot read tls_key {}: {other}", key_path.display()),
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("no TLS protocol version available")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| {
            format!(
                "tls_key {} does not fit tls_cert {}",
                key_path.display(),
                cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
