//! Reaching the services behind routes: pooled keep-alive HTTP/1.1 clients (one per TLS
//! setting: the webpki roots, a route's own CA, or no verification; and per worker thread), and the service
//! credential a route sends instead of the client's (`upstream_bearer_file`), re-read in the
//! background because Kubernetes rotates service-account tokens.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::HeaderValue;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::TokioExecutor;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{
    aws_lc_rs, verify_tls12_signature, verify_tls13_signature, CryptoProvider,
};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{self, ClientConfig, DigitallySignedStruct, RootCertStore};

use super::config::{Route, Target};

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
type UpstreamClient = Client<Connector, Body>;

/// How long connecting to an upstream may take before the request fails with 502.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A route's service: where it is and the client that reaches it.
pub struct Upstream {
    pub client: PerThread,
    /// `http` or `https`.
    pub scheme: &'static str,
    pub authority: String,
    /// The upstream URL's path, without a trailing `/` (may be empty).
    pub base: String,
    /// How long the upstream may take to answer (its response headers).
    pub timeout: Duration,
}

impl Upstream {
    pub fn build(route: &Route, clients: &mut Clients) -> Result<Upstream, String> {
        let Target::Upstream {
            https,
            authority,
            base,
        } = &route.target
        else {
            return Err("not an upstream route".into());
        };
        let tls = match (&route.upstream_ca_file, route.upstream_insecure_skip_verify) {
            (Some(ca), _) => Tls::Ca(ca.clone()),
            (None, true) => Tls::Insecure,
            (None, false) => Tls::WebPki,
        };
        Ok(Upstream {
            client: clients.get(tls)?,
            scheme: if *https { "https" } else { "http" },
            authority: authority.clone(),
            base: base.clone(),
            timeout: route.timeout,
        })
    }
}

/// How an https upstream's certificate is checked.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Tls {
    WebPki,
    Ca(PathBuf),
    Insecure,
}

/// Clients shared by the routes with the same TLS setting.
#[derive(Default)]
pub struct Clients(HashMap<Tls, PerThread>);

impl Clients {
    fn get(&mut self, tls: Tls) -> Result<PerThread, String> {
        if let Some(client) = self.0.get(&tls) {
            return Ok(client.clone());
        }
        let client = PerThread {
            id: NEXT_CLIENT.fetch_add(1, Ordering::Relaxed),
            connector: connector(&tls)?,
        };
        self.0.insert(tls, client.clone());
        Ok(client)
    }
}

/// A client with a connection pool on each thread that uses it. A pooled connection is driven
/// by the event loop of the thread that opened it; with a pool per worker, a request and its
/// connection stay on one thread and never wake another.
#[derive(Clone)]
pub struct PerThread {
    /// Where this client's pool sits in each thread's `POOLS`.
    id: usize,
    connector: Connector,
}

static NEXT_CLIENT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static POOLS: RefCell<Vec<Option<UpstreamClient>>> = const { RefCell::new(Vec::new()) };
}

impl PerThread {
    /// Sends `request` on this thread's pool (made on first use).
    pub fn request(&self, request: axum::http::Request<Body>) -> ResponseFuture {
        POOLS.with_borrow_mut(|pools| {
            if pools.len() <= self.id {
                pools.resize_with(self.id + 1, || None);
            }
            pools[self.id]
                .get_or_insert_with(|| {
                    Client::builder(TokioExecutor::new())
                        .pool_timer(hyper_util::rt::TokioTimer::new())
                        .pool_idle_timeout(Duration::from_secs(60))
                        .build(self.connector.clone())
                })
                .request(request)
        })
    }
}

fn connector(tls: &Tls) -> Result<Connector, String> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let config = match tls {
        Tls::WebPki => {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Tls::Ca(path) => builder
            .with_root_certificates(ca_roots(path)?)
            .with_no_client_auth(),
        Tls::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth(),
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(https)
}

/// The certificates of a PEM CA file (`upstream_ca_file`).
fn ca_roots(path: &Path) -> Result<RootCertStore, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read upstream_ca_file {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("upstream_ca_file {} is not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "upstream_ca_file {} holds no CERTIFICATE block",
            path.display()
        ));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("upstream_ca_file {}: {e}", path.display()))?;
    }
    Ok(roots)
}

/// `upstream_insecure_skip_verify`: any certificate is taken (the handshake's signatures are
/// still checked, so the connection is encrypted to whoever holds the key it shows).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The credential a route sends upstream instead of the client's: `Authorization: Bearer`
/// with the file's content (trimmed).
pub struct BearerFile {
    path: PathBuf,
    value: RwLock<HeaderValue>,
}

/// How often a bearer file is re-read.
const BEARER_RELOAD: Duration = Duration::from_secs(30);

impl BearerFile {
    pub fn load(path: &Path) -> Result<BearerFile, String> {
        Ok(BearerFile {
            value: RwLock::new(read_bearer(path)?),
            path: path.to_owned(),
        })
    }

    /// The `Authorization` value to send.
    pub fn value(&self) -> HeaderValue {
        match self.value.read() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the file every 30 s; a failed read keeps the last good credential.
    pub fn spawn_reload(self: &Arc<Self>) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(BEARER_RELOAD);
            every.tick().await;
            loop {
                every.tick().await;
                match read_bearer(&this.path) {
                    Ok(value) => match this.value.write() {
                        Ok(mut slot) => *slot = value,
                        Err(poisoned) => *poisoned.into_inner() = value,
                    },
                    Err(e) => tracing::warn!(error = %e, "keeping the previous upstream bearer"),
                }
            }
        });
    }
}

fn read_bearer(path: &Path) -> Result<HeaderValue, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read upstream_bearer_file {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("upstream_bearer_file {} is empty", path.display()));
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        format!(
            "upstream_bearer_file {} holds characters a header cannot carry",
            path.display()
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}
