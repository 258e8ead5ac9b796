//! The etcd backend: the file store's records, one key per record under a prefix
//! (`/jwtgate/users/ann` holds ann's JSON), so several jwtgate servers share one etcd cluster.
//! A record's revision is its key's etcd `mod_revision` (from etcd's one store-wide counter,
//! so a record deleted and created again never reuses one, as in the file store), and every
//! write is a transaction conditioned on it. docs/storage.md describes the layout.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KeyValue, SortOrder,
    SortTarget, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{check_name, Change, Event, Expect, Kind, Record, Store, StoreError};

/// How long connecting to an etcd member may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one request to etcd may take before it fails as unavailable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a request is tried again when etcd did not answer: the client's balancer picks
/// among all members, a dead one too, so a request that reached a dead member goes on to
/// another (those fail at once), and a leader election (about a second) is waited out.
const RETRY_FOR: Duration = Duration::from_secs(6);

/// How long `/readyz`'s probe may take.
const PROBE_FOR: Duration = Duration::from_secs(2);

/// The pause between tries.
const RETRY: Duration = Duration::from_millis(50);

/// How often the watch asks etcd to confirm it is up to date (the watch lag's resolution).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The pause before watching again after the watch broke (etcd unreachable).
const REWATCH: Duration = Duration::from_millis(250);

/// Where the cluster is and how to log in to it.
#[derive(Clone, PartialEq, Eq)]
pub struct EtcdSettings {
    /// Client URLs of the members, `http://host:2379`, or all `https://`.
    pub endpoints: Vec<String>,
    /// The key prefix, `/jwtgate`: leading `/`, no trailing `/`.
    pub prefix: String,
    /// etcd's own authentication, when it is on.
    pub user: Option<(String, String)>,
    /// How to check the members and prove who we are: set exactly when the endpoints are
    /// `https://`.
    pub tls: Option<EtcdTls>,
}

/// TLS to the members.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EtcdTls {
    /// The CA certificates (PEM) the members' certificates must chain to; without them, the
    /// system's trusted certificates (as etcdctl without `--cacert`).
    pub ca: Option<String>,
    /// A client certificate chain and its private key (PEM), for an etcd that asks for one
    /// (`--client-cert-auth`).
    pub identity: Option<(String, String)>,
}

impl std::fmt::Debug for EtcdSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password or a private key: settings end up in debug logs and panics.
        f.debug_struct("EtcdSettings")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .field("user", &self.user.as_ref().map(|(user, _)| user))
            .field("tls", &self.tls)
            .finish()
    }
}

impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdTls")
            .field("ca", &self.ca.as_ref().map(|_| "PEM"))
            .field("client_certificate", &self.identity.is_some())
            .finish()
    }
}

impl EtcdSettings {
    /// Refuses a prefix that is not `/segment[/segment…]`, no endpoints, or a mix of `http`
    /// and `https` members.
    pub fn check(&self) -> Result<(), String> {
        if self.endpoints.is_empty() {
            return Err("store.endpoints: name at least one etcd member".into());
        }
        let https = self.endpoints.iter().filter(|e| e.starts_with("https://"));
        match https.count() {
            0 if self.tls.is_some() => {
                return Err(
                    "TLS settings for etcd need https:// members (https://HOST:PORT)".into(),
                )
            }
            0 => {}
            n if n < self.endpoints.len() => {
                return Err("the etcd members are either all http:// or all https://".into())
            }
            _ if self.tls.is_none() => return Err("https:// members need TLS settings".into()),
            _ => {}
        }
        let prefix = &self.prefix;
        if !prefix.starts_with('/')
            || prefix.ends_with('/')
            || prefix.contains("//")
            || prefix.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "store.prefix {prefix:?} must look like /jwtgate (a leading '/', no trailing '/')"
            ));
        }
        Ok(())
    }
}

/// The password in `path` (its first line), for etcd's authentication.
pub fn read_password(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the etcd password file {}: {e}", path.display()))?;
    let password = text.lines().next().unwrap_or_default();
    if password.is_empty() {
        return Err(format!(
            "the etcd password file {} is empty",
            path.display()
        ));
    }
    Ok(password.to_owned())
}

impl EtcdTls {
    /// Reads the CA file and the client certificate and key files (PEM), any of them `None`;
    /// `names` are how messages call the three (config keys or environment variables).
    pub fn read(
        ca: Option<&std::path::Path>,
        cert: Option<&std::path::Path>,
        key: Option<&std::path::Path>,
        names: [&str; 3],
    ) -> Result<EtcdTls, String> {
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let read = |name: &str, path: &std::path::Path| {
            std::fs::read_to_string(path)
                .map_err(|e| format!("{name}: cannot read {}: {e}", path.display()))
        };
        let certificates = |name: &str, path: &std::path::Path| {
            let pem = read(name, path)?;
            let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{name}: {} is not valid PEM: {e}", path.display()))?;
            if chain.is_empty() {
                return Err(format!(
                    "{name}: {} holds no CERTIFICATE block",
                    path.display()
                ));
            }
            Ok((pem, chain))
        };
        let [ca_name, cert_name, key_name] = names;
        let ca = ca
            .map(|path| certificates(ca_name, path).map(|(pem, _)| pem))
            .transpose()?;
        let identity = match (cert, key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let (chain_pem, chain) = certificates(cert_name, cert)?;
                let pem = read(key_name, key)?;
                let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| {
                    format!(
                        "{key_name}: {} holds no private key (PKCS#8, PKCS#1 or SEC1 PEM)",
                        key.display()
                    )
                })?;
                // Now rather than at the first handshake, where it would read as "no etcd
                // member answered". Only a proven mismatch is refused: a certificate webpki
                // cannot parse (X.509 v1) may still be one etcd accepts.
                use tokio_rustls::rustls::{sign::CertifiedKey, Error, InconsistentKeys};
                let provider = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider();
                let signing = provider
                    .key_provider
                    .load_private_key(der)
                    .map_err(|e| format!("{key_name}: {}: {e}", key.display()))?;
                let mismatch = Error::InconsistentKeys(InconsistentKeys::KeyMismatch);
                if CertifiedKey::new(chain, signing).keys_match() == Err(mismatch) {
                    return Err(format!(
                        "{key_name}: {} is not the key of {cert_name} {}",
                        key.display(),
                        cert.display()
                    ));
                }
                Some((chain_pem, pem))
            }
            _ => return Err(format!("{cert_name} and {key_name} go together")),
        };
        Ok(EtcdTls { ca, identity })
    }
}

/// The store on an etcd cluster. Cloning shares the connection.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    /// The endpoints and prefix, and for messages whether TLS is on (its Debug hides secrets).
    settings: Arc<EtcdSettings>,
    /// When the watch last knew it was up to date (an answer from etcd on the watch stream).
    current: Arc<Mutex<Option<Instant>>>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("settings", &self.settings)
            .finish()
    }
}

impl EtcdStore {
    /// Connects to the cluster (any member that answers; requests go on to the others when one
    /// fails).
    pub async fn connect(settings: &EtcdSettings) -> Result<EtcdStore, StoreError> {
        settings.check().map_err(StoreError::Unavailable)?;
        let mut options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(3))
            // A member cut off from the majority answers "no leader" at once (and breaks its
            // watches) instead of holding requests until they time out.
            .with_require_leader(true)
            // etcd forgets login tokens when it restarts: log in again rather than fail.
            .with_auto_token_refresh(true);
        if let Some((user, password)) = &settings.user {
            options = options.with_user(user.clone(), password.clone());
        }
        if let Some(tls) = &settings.tls {
            let mut config = etcd_client::TlsOptions::new();
            config = match &tls.ca {
                Some(ca) => config.ca_certificate(etcd_client::Certificate::from_pem(ca)),
                None => config.with_native_roots(),
            };
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(etcd_client::Identity::from_pem(cert, key));
            }
            options = options.with_tls(config);
        }
        let client = Client::connect(&settings.endpoints, Some(options))
            .await
            .map_err(|e| unavailable(settings, &e))?;
        Ok(EtcdStore {
            client,
            settings: Arc::new(settings.clone()),
            current: Arc::default(),
        })
    }

    fn key(&self, kind: Kind, name: &str) -> String {
        format!("{}/{}/{name}", self.settings.prefix, kind.dir())
    }

    fn collection(&self, kind: Kind) -> String {
        format!("{}/{}/", self.settings.prefix, kind.dir())
    }

    fn unavailable(&self, e: &etcd_client::Error) -> StoreError {
        unavailable(&self.settings, e)
    }

    /// Runs `request` until etcd answers, or for `budget` (a try under way may take up to
    /// `REQUEST_TIMEOUT` more).
    async fn retrying<T, F, Fut>(&self, budget: Duration, mut request: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let started = tokio::time::Instant::now();
        let mut attempt = 1;
        loop {
            match request().await {
                Ok(answer) => return Ok(answer),
                // A certificate refused by the only member will not change; with several, the
                // next try may go to one whose certificate is good (a renewal under way).
                Err(e)
                    if started.elapsed() >= budget
                        || !transient(&e)
                        || (self.settings.endpoints.len() == 1
                            && certificate_trouble(&cause(&e))) =>
                {
                    return Err(self.unavailable(&e))
                }
                Err(e) => {
                    tracing::debug!(error = %e, attempt, "etcd request failed; trying again");
                    attempt += 1;
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    /// A conditional transaction, tried again when etcd did not answer (the condition makes a
    /// second try harmless); also says whether a try had failed, so that a failed condition
    /// can be checked against this write's own earlier try.
    async fn txn(&self, txn: Txn) -> Result<(etcd_client::TxnResponse, bool), StoreError> {
        let mut tries = 0;
        let response = self
            .retrying(RETRY_FOR, || {
                tries += 1;
                let mut kv = self.client.kv_client();
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await?;
        Ok((response, tries > 1))
    }

    /// The record a key holds.
    fn record(&self, name: &str, kv: &KeyValue) -> Result<Record, StoreError> {
        let value: Value = serde_json::from_slice(kv.value()).map_err(|e| StoreError::Corrupt {
            path: PathBuf::from(String::from_utf8_lossy(kv.key()).into_owned()),
            reason: format!("not JSON: {e}"),
        })?;
        Ok(Record {
            name: name.to_owned(),
            revision: revision_of(kv),
            value,
        })
    }

    /// After a transaction's condition failed: the record's revision now (`None`: absent).
    fn revision_now(response: &etcd_client::TxnResponse) -> Option<u64> {
        response
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Get(get) => Some(get.kvs().first().map(revision_of)),
                _ => None,
            })
            .flatten()
    }
}

/// etcd did not answer: which members were asked, and the cause in a few words (gRPC's
/// status text and the root cause, not the whole error chain).
fn unavailable(settings: &EtcdSettings, e: &etcd_client::Error) -> StoreError {
    let endpoints = &settings.endpoints;
    if let etcd_client::Error::GRpcStatus(status) = e {
        if matches!(
            status.code(),
            tonic::Code::Unauthenticated
                | tonic::Code::PermissionDenied
                | tonic::Code::InvalidArgument
        ) {
            return StoreError::Unavailable(format!(
                "etcd ({}) refused: {} (check store.user and the password, and the user's permissions on the prefix)",
                endpoints.join(", "),
                status.message()
            ));
        }
    }
    let mut cause = cause(e);
    // TLS trouble: we refuse etcd's certificate (rustls: "invalid peer certificate: …"), or
    // etcd refuses ours or its absence (an alert, or the connection closed): say where to look.
    if let Some(tls) = &settings.tls {
        let alert = cause.contains("received fatal alert");
        let closed = ["connection closed", "broken pipe", "reset by peer"]
            .iter()
            .any(|c| cause.contains(c));
        let files =
            "store.cert_file and key_file, or JWTGATE_ETCD_CERT_FILE and JWTGATE_ETCD_KEY_FILE";
        if cause.contains("no native certs") {
            cause.push_str(" (this system has no trusted certificates: install ca-certificates, or set store.ca_file or JWTGATE_ETCD_CA_FILE)");
        } else if cause.contains("invalid peer certificate") {
            cause.push_str(
                " (check the members' certificates against the CA file: store.ca_file or JWTGATE_ETCD_CA_FILE)",
            );
        } else if alert && tls.identity.is_none() {
            cause.push_str(&format!(" (etcd asks for a client certificate: {files})"));
        } else if alert {
            cause.push_str(" (etcd refused the client certificate: is it signed by the CA etcd trusts, --trusted-ca-file?)");
        } else if closed {
            // A refused handshake may show only as a closed connection (so may a crash).
            cause.push_str(&format!(
                " (if etcd refused the TLS handshake, it may want a client certificate signed by a CA it trusts: {files})"
            ));
        }
    }
    StoreError::Unavailable(format!(
        "no etcd member answered ({}): {cause}",
        endpoints.join(", ")
    ))
}

/// The cause in a few words: gRPC's status text and each distinct cause below it (etcd-client's
/// and tonic's own texts would repeat them, with debug dumps).
fn cause(e: &etcd_client::Error) -> String {
    use std::error::Error as _;
    let (mut text, mut next) = match e {
        etcd_client::Error::GRpcStatus(status) => (status.message().to_owned(), status.source()),
        etcd_client::Error::TransportError(t) => (t.to_string(), t.source()),
        other => (other.to_string(), None),
    };
    while let Some(err) = next {
        let part = match err.downcast_ref::<tonic::Status>() {
            Some(status) => status.message().to_owned(),
            None => err.to_string(),
        };
        if !part.is_empty() && !text.contains(&part) {
            text = format!("{text}: {part}");
        }
        next = err.source();
    }
    text
}

/// Whether a TLS handshake failed over a certificate (rustls: `invalid peer certificate:
/// UnknownIssuer`, `NotValidForName`, `Expired`, or an alert such as `BadCertificate`).
fn certificate_trouble(cause: &str) -> bool {
    cause.to_ascii_lowercase().contains("certificate")
}

/// Whether etcd may answer a second try: it could not be reached or did not answer, as
/// opposed to refusing the request.
fn transient(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(status) => matches!(
            status.code(),
            tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Cancelled
                | tonic::Code::Unknown
        ),
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    }
}

fn revision_of(kv: &KeyValue) -> u64 {
    u64::try_from(kv.mod_revision()).unwrap_or(0)
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, kind: Kind, name: &str) -> Result<Option<Record>, StoreError> {
        check_name(kind, name)?;
        let key = self.key(kind, name);
        let response = self
            .retrying(RETRY_FOR, || {
                let mut kv = self.client.kv_client();
                let key = key.clone();
                async move { kv.get(key, None).await }
            })
            .await?;
        response
            .kvs()
            .first()
            .map(|kv| self.record(name, kv))
            .transpose()
    }

    async fn list(&self, kind: Kind) -> Result<Vec<Record>, StoreError> {
        let collection = self.collection(kind);
        let options = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Key, SortOrder::Ascend);
        let response = self
            .retrying(RETRY_FOR, || {
                let mut kv = self.client.kv_client();
                let (collection, options) = (collection.clone(), options.clone());
                async move { kv.get(collection, Some(options)).await }
            })
            .await?;
        let mut records = Vec::with_capacity(response.kvs().len());
        for kv in response.kvs() {
            let name = kv
                .key()
                .strip_prefix(collection.as_bytes())
                .and_then(|n| std::str::from_utf8(n).ok());
            match name {
                // jwtgate writes only names that pass check_name; anything else under the
                // prefix was put there by someone else and is not a record.
                Some(name) if check_name(kind, name).is_ok() => {
                    records.push(self.record(name, kv)?);
                }
                _ => tracing::warn!(
                    key = %String::from_utf8_lossy(kv.key()),
                    "ignoring a key under the store's prefix that is not a record"
                ),
            }
        }
        Ok(records)
    }

    async fn put(
        &self,
        kind: Kind,
        name: &str,
        value: Value,
        expect: Expect,
    ) -> Result<u64, StoreError> {
        check_name(kind, name)?;
        let key = self.key(kind, name);
        let conflict = || StoreError::Conflict {
            kind,
            name: name.to_owned(),
        };
        let condition = match expect {
            Expect::Absent => Compare::version(key.as_str(), CompareOp::Equal, 0),
            // Revisions start at 1.
            Expect::Revision(0) => return Err(conflict()),
            Expect::Revision(r) => {
                let r = i64::try_from(r).map_err(|_| conflict())?;
                Compare::mod_revision(key.as_str(), CompareOp::Equal, r)
            }
        };
        let bytes = serde_json::to_vec(&value)
            .map_err(|e| StoreError::Task(format!("cannot encode: {e}")))?;
        let txn = Txn::new()
            .when([condition])
            .and_then([TxnOp::put(key.as_str(), bytes, None)])
            .or_else([TxnOp::get(key.as_str(), None)]);
        let (response, retried) = self.txn(txn).await?;
        if response.succeeded() {
            // The transaction's revision is the one the record now has.
            return response
                .header()
                .and_then(|h| u64::try_from(h.revision()).ok())
                .ok_or_else(|| StoreError::Task("etcd answered without a revision".into()));
        }
        // An earlier try got no answer and may have been applied, so a failed condition now
        // does not say whether this write happened (another writer may have written the same
        // bytes, as two logins with one TOTP code would): the outcome is unknown, not a
        // success and not a conflict to retry on top of.
        if retried {
            return Err(StoreError::Unavailable(format!(
                "etcd did not confirm the write of {} '{name}'; it may or may not have been applied",
                kind.noun()
            )));
        }
        Err(match (expect, Self::revision_now(&response)) {
            (Expect::Absent, _) => StoreError::Exists {
                kind,
                name: name.to_owned(),
            },
            (Expect::Revision(_), None) => StoreError::NotFound {
                kind,
                name: name.to_owned(),
            },
            (Expect::Revision(_), Some(_)) => conflict(),
        })
    }

    async fn delete(&self, kind: Kind, name: &str, revision: u64) -> Result<(), StoreError> {
        check_name(kind, name)?;
        let key = self.key(kind, name);
        let conflict = || StoreError::Conflict {
            kind,
            name: name.to_owned(),
        };
        let expected = match i64::try_from(revision) {
            Ok(0) | Err(_) => return Err(conflict()),
            Ok(r) => r,
        };
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key.as_str(),
                CompareOp::Equal,
                expected,
            )])
            .and_then([TxnOp::delete(key.as_str(), None)])
            .or_else([TxnOp::get(key.as_str(), None)]);
        let (response, retried) = self.txn(txn).await?;
        if response.succeeded() {
            return Ok(());
        }
        Err(match Self::revision_now(&response) {
            // Gone after a try that may have deleted it: it is deleted.
            None if retried => return Ok(()),
            None => StoreError::NotFound {
                kind,
                name: name.to_owned(),
            },
            Some(_) => conflict(),
        })
    }

    /// Changes under the prefix, from etcd's watch. When the watch breaks (a member down, the
    /// cluster unreachable) it starts again from the revision after the last one seen, so no
    /// change is missed; if etcd compacted that revision away, it starts from now and says
    /// `Reload` (as it does when it first starts).
    fn watch(&self) -> mpsc::Receiver<Event> {
        let (tx, rx) = mpsc::channel(1024);
        let store = self.clone();
        tokio::spawn(async move {
            let mut next: Option<i64> = None;
            loop {
                match store.watch_once(&tx, &mut next).await {
                    Ok(Ended::Receiver) => return,
                    Ok(Ended::Stream) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "the etcd watch broke; watching again");
                    }
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(REWATCH).await;
            }
        });
        rx
    }

    async fn probe(&self, kind: Kind, name: &str) -> Result<bool, StoreError> {
        check_name(kind, name)?;
        let key = self.key(kind, name);
        // Tried again within the budget: a try may reach a dead member while others answer.
        // The key only: the keyset's value holds private keys, and a health check needs none.
        let get = self.retrying(PROBE_FOR, || {
            let mut kv = self.client.kv_client();
            let key = key.clone();
            async move { kv.get(key, Some(GetOptions::new().with_keys_only())).await }
        });
        let response = tokio::time::timeout(PROBE_FOR, get).await.map_err(|_| {
            StoreError::Unavailable(format!(
                "no etcd member answered within {} s ({})",
                PROBE_FOR.as_secs(),
                self.settings.endpoints.join(", ")
            ))
        })??;
        Ok(!response.kvs().is_empty())
    }

    fn watch_lag(&self) -> Option<Duration> {
        let current = *self.current.lock().unwrap_or_else(|p| p.into_inner());
        current.map(|at| at.elapsed())
    }
}

/// Why one watch stream ended.
enum Ended {
    /// Nobody reads the changes any more.
    Receiver,
    /// The stream ended or was cancelled; watch again.
    Stream,
}

impl EtcdStore {
    /// One watch stream, until it ends; `next` is the revision to resume from (`None`: from
    /// now, and then the stream's first event is `Reload`).
    async fn watch_once(
        &self,
        tx: &mpsc::Sender<Event>,
        next: &mut Option<i64>,
    ) -> Result<Ended, etcd_client::Error> {
        let root = format!("{}/", self.settings.prefix);
        let mut options = WatchOptions::new().with_prefix().with_progress_notify();
        if let Some(revision) = *next {
            options = options.with_start_revision(revision);
        }
        let (mut requests, mut stream) = self
            .client
            .watch_client()
            .watch(root.as_str(), Some(options))
            .await?
            .split();
        let mut progress = tokio::time::interval(PROGRESS_EVERY);
        loop {
            let response = tokio::select! {
                response = stream.message() => response?,
                _ = progress.tick() => {
                    // etcd answers with a response that says up to where the watch is current.
                    requests.request_progress().await?;
                    continue;
                }
            };
            let Some(response) = response else { break };
            if response.compact_revision() > 0 {
                tracing::warn!(
                    compacted = response.compact_revision(),
                    "etcd compacted the revisions the watch needed; watching from now"
                );
                *next = None;
                return Ok(Ended::Stream);
            }
            if response.canceled() {
                tracing::warn!(
                    reason = response.cancel_reason(),
                    "etcd cancelled the watch; watching again"
                );
                return Ok(Ended::Stream);
            }
            // Up to date: a progress answer, events, or the creation of a watch from now. Not
            // the creation of a resumed watch, whose backlog is still to come. (etcd before
            // 3.4.24 and 3.5.8 may answer a progress request before that backlog too, which
            // follows at once: the lag says how long etcd has been silent, not more.)
            if !response.created() || next.is_none() {
                *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
            }
            if response.events().is_empty() {
                // A watch from "now" starts after the revision its creation reports. Nothing
                // else moves the resume point: a resumed watch's backlog comes after its
                // creation, and etcd 3.4 may confirm progress before delivering it.
                if response.created() && next.is_none() {
                    *next = response.header().map(|h| h.revision() + 1);
                    // Every change after that revision comes on this stream: what the reader
                    // reads now misses nothing.
                    if tx.send(Event::Reload).await.is_err() {
                        return Ok(Ended::Receiver);
                    }
                }
                continue;
            }
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let after = kv.mod_revision() + 1;
                *next = Some(next.map_or(after, |n| n.max(after)));
                let Some(change) = change_of(&root, event.event_type(), kv) else {
                    continue;
                };
                if tx.send(Event::Changed(change)).await.is_err() {
                    return Ok(Ended::Receiver);
                }
            }
        }
        Ok(Ended::Stream)
    }
}

/// The change an event under `root` means, if it is a record's.
fn change_of(root: &str, event: EventType, kv: &KeyValue) -> Option<Change> {
    let rest = std::str::from_utf8(kv.key().strip_prefix(root.as_bytes())?).ok()?;
    let (dir, name) = rest.split_once('/')?;
    let kind = Kind::ALL.into_iter().find(|k| k.dir() == dir)?;
    check_name(kind, name).ok()?;
    Some(Change {
        kind,
        name: name.to_owned(),
        revision: match event {
            EventType::Put => Some(revision_of(kv)),
            EventType::Delete => None,
        },
    })
}

// The real etcd cluster the end-to-end tests use too.
#[cfg(test)]
#[path = "../../tests/it/etcd_cluster.rs"]
mod etcd_cluster;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use std::path::Path;

    use super::etcd_cluster::Cluster;
    use super::*;

    async fn store(cluster: &Cluster) -> EtcdStore {
        connect(cluster.endpoints()).await
    }

    async fn connect(endpoints: Vec<String>) -> EtcdStore {
        let settings = EtcdSettings {
            endpoints,
            prefix: "/jwtgate-test".to_owned(),
            user: None,
            tls: None,
        };
        EtcdStore::connect(&settings).await.unwrap()
    }

    #[tokio::test]
    async fn records_keep_revisions_and_writes_are_conditional() {
        let cluster = Cluster::start(1).await;
        let s = store(&cluster).await;
        let ann = |value| s.put(Kind::User, "ann", value, Expect::Absent);
        let first = ann(json!({"n": 1})).await.unwrap();
        let second = s
            .put(Kind::User, "ann", json!({"n": 2}), Expect::Revision(first))
            .await
            .unwrap();
        assert!(second > first, "{first} then {second}");
        s.put(Kind::User, "bob", json!({}), Expect::Absent)
            .await
            .unwrap();
        s.put(Kind::Role, "admin", json!({}), Expect::Absent)
            .await
            .unwrap();
        let record = s.get(Kind::User, "ann").await.unwrap().unwrap();
        assert_eq!((record.revision, record.value), (second, json!({"n": 2})));
        let names: Vec<String> = s
            .list(Kind::User)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["ann", "bob"], "users only, by name");
        let refused = [
            s.put(Kind::User, "ann", json!({}), Expect::Absent).await,
            s.put(Kind::User, "ann", json!({}), Expect::Revision(first))
                .await,
            s.put(Kind::User, "cat", json!({}), Expect::Revision(first))
                .await,
        ];
        assert!(
            matches!(refused[0], Err(StoreError::Exists { .. })),
            "{refused:?}"
        );
        assert!(
            matches!(refused[1], Err(StoreError::Conflict { .. })),
            "{refused:?}"
        );
        assert!(
            matches!(refused[2], Err(StoreError::NotFound { .. })),
            "{refused:?}"
        );
        assert!(matches!(
            s.delete(Kind::User, "ann", first).await,
            Err(StoreError::Conflict { .. })
        ));
        s.delete(Kind::User, "ann", second).await.unwrap();
        assert!(s.get(Kind::User, "ann").await.unwrap().is_none());
        assert!(matches!(
            s.delete(Kind::User, "ann", second).await,
            Err(StoreError::NotFound { .. })
        ));
        // Created again: a new revision, never one the record had before.
        let again = ann(json!({})).await.unwrap();
        assert!(again > second, "{second} then {again}");
        assert!(matches!(
            s.get(Kind::User, "../x").await,
            Err(StoreError::InvalidName { .. })
        ));
    }

    #[tokio::test]
    async fn two_servers_updating_one_record_lose_no_update() {
        let cluster = Cluster::start(1).await;
        let a = store(&cluster).await;
        let b = store(&cluster).await;
        a.put(Kind::User, "count", json!({"n": 0}), Expect::Absent)
            .await
            .unwrap();
        let bump = |s: EtcdStore| async move {
            for _ in 0..50 {
                loop {
                    let record = s.get(Kind::User, "count").await.unwrap().unwrap();
                    let n = record.value["n"].as_u64().unwrap();
                    match s
                        .put(
                            Kind::User,
                            "count",
                            json!({"n": n + 1}),
                            Expect::Revision(record.revision),
                        )
                        .await
                    {
                        Ok(_) => break,
                        Err(StoreError::Conflict { .. }) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        };
        let (ra, rb) = tokio::join!(tokio::spawn(bump(a.clone())), tokio::spawn(bump(b)));
        ra.unwrap();
        rb.unwrap();
        let record = a.get(Kind::User, "count").await.unwrap().unwrap();
        assert_eq!(record.value["n"], 100);
    }

    async fn next_event(events: &mut mpsc::Receiver<Event>) -> Event {
        tokio::time::timeout(Duration::from_secs(20), events.recv())
            .await
            .expect("an event within 20 s")
            .expect("the watch is running")
    }

    fn changed(kind: Kind, name: &str, revision: Option<u64>) -> Event {
        Event::Changed(Change {
            kind,
            name: name.into(),
            revision,
        })
    }

    #[tokio::test]
    async fn the_watch_sees_other_servers_writes_and_resumes_after_etcd_restarts() {
        let mut cluster = Cluster::start(1).await;
        let a = store(&cluster).await;
        let b = store(&cluster).await;
        let old = a
            .put(Kind::User, "old", json!({}), Expect::Absent)
            .await
            .unwrap();
        let mut changes = a.watch();
        // What existed before is not a change: the reader reads it after `Reload`.
        assert_eq!(next_event(&mut changes).await, Event::Reload);
        let first = b
            .put(Kind::Role, "first", json!({}), Expect::Absent)
            .await
            .unwrap();
        assert_eq!(
            next_event(&mut changes).await,
            changed(Kind::Role, "first", Some(first))
        );
        b.delete(Kind::User, "old", old).await.unwrap();
        assert_eq!(
            next_event(&mut changes).await,
            changed(Kind::User, "old", None)
        );
        // etcd goes away: writes fail as unavailable, nothing hangs; the watch comes back.
        cluster.kill_member(0);
        let failed = b.put(Kind::Role, "lost", json!({}), Expect::Absent).await;
        assert!(
            matches!(failed, Err(StoreError::Unavailable(_))),
            "{failed:?}"
        );
        cluster.start_member(0);
        cluster.healthy().await;
        let after = b
            .put(Kind::Role, "after", json!({}), Expect::Absent)
            .await
            .unwrap();
        // Resumed where it was, not from now: no `Reload`.
        assert_eq!(
            next_event(&mut changes).await,
            changed(Kind::Role, "after", Some(after))
        );
    }

    #[tokio::test]
    async fn writes_made_while_the_watch_was_cut_off_arrive_through_it_when_it_resumes() {
        let mut cluster = Cluster::start(3).await;
        let endpoints = cluster.endpoints();
        // The watcher knows only member 0; the writer only the other two.
        let watcher = connect(endpoints[..1].to_vec()).await;
        let writer = connect(endpoints[1..].to_vec()).await;
        let mut changes = watcher.watch();
        assert_eq!(next_event(&mut changes).await, Event::Reload);
        let before = writer
            .put(Kind::Role, "before", json!({}), Expect::Absent)
            .await
            .unwrap();
        assert_eq!(
            next_event(&mut changes).await,
            changed(Kind::Role, "before", Some(before))
        );
        cluster.kill_member(0);
        let missed = writer
            .put(Kind::User, "missed", json!({}), Expect::Absent)
            .await
            .unwrap();
        writer.delete(Kind::Role, "before", before).await.unwrap();
        cluster.start_member(0);
        // Nothing but the resumed watch can report these here (no full reload at this layer),
        // in order, and without a `Reload`.
        assert_eq!(
            next_event(&mut changes).await,
            changed(Kind::User, "missed", Some(missed))
        );
        assert_eq!(
            next_event(&mut changes).await,
            changed(Kind::Role, "before", None)
        );
    }

    #[tokio::test]
    async fn a_watch_whose_history_was_compacted_away_starts_again_with_reload() {
        let cluster = Cluster::start(1).await;
        let s = store(&cluster).await;
        let first = s
            .put(Kind::Role, "gone", json!({}), Expect::Absent)
            .await
            .unwrap();
        let last = s
            .put(Kind::Role, "gone", json!({"v": 2}), Expect::Revision(first))
            .await
            .unwrap();
        s.client
            .clone()
            .compact(i64::try_from(last).unwrap(), None)
            .await
            .unwrap();
        // As after a reconnect that wants to resume from before the compaction.
        let (tx, mut events) = mpsc::channel(16);
        let mut next = Some(i64::try_from(first).unwrap());
        assert!(matches!(
            s.watch_once(&tx, &mut next).await,
            Ok(Ended::Stream)
        ));
        assert_eq!(next, None, "resumes from now");
        assert!(
            events.try_recv().is_err(),
            "no change reported from a lost history"
        );
        // The next stream (from now) begins with `Reload`, then reports changes again.
        let watcher = s.clone();
        tokio::spawn(async move {
            let _ = watcher.watch_once(&tx, &mut next).await;
        });
        assert_eq!(next_event(&mut events).await, Event::Reload);
        let after = s
            .put(Kind::Role, "after", json!({}), Expect::Absent)
            .await
            .unwrap();
        assert_eq!(
            next_event(&mut events).await,
            changed(Kind::Role, "after", Some(after))
        );
    }

    #[tokio::test]
    async fn a_watch_resumed_at_a_revision_replays_what_happened_since() {
        let cluster = Cluster::start(1).await;
        let s = store(&cluster).await;
        let written = s
            .put(Kind::Role, "missed", json!({}), Expect::Absent)
            .await
            .unwrap();
        // As after a reconnect: the last revision seen was the one before the write.
        let (tx, mut changes) = mpsc::channel(16);
        let watcher = s.clone();
        tokio::spawn(async move {
            let mut next = Some(written as i64);
            let _ = watcher.watch_once(&tx, &mut next).await;
        });
        assert_eq!(
            next_event(&mut changes).await,
            changed(Kind::Role, "missed", Some(written))
        );
    }

    #[tokio::test]
    async fn members_over_tls_are_reached_with_their_ca_and_a_client_certificate() {
        use super::etcd_cluster::tls_file;
        let cluster = Cluster::start_tls(1).await;
        let (ca, cert, key) = (
            tls_file("ca.pem"),
            tls_file("client.pem"),
            tls_file("client-key.pem"),
        );
        let names = ["ca", "cert", "key"];
        let connect = |tls: EtcdTls| {
            let settings = EtcdSettings {
                endpoints: cluster.endpoints(),
                prefix: "/tls".to_owned(),
                user: None,
                tls: Some(tls),
            };
            async move { EtcdStore::connect(&settings).await.unwrap() }
        };
        let full = EtcdTls::read(Some(&ca), Some(&cert), Some(&key), names).unwrap();
        let s = connect(full).await;
        s.put(Kind::User, "ann", json!({}), Expect::Absent)
            .await
            .unwrap();
        assert!(s.get(Kind::User, "ann").await.unwrap().is_some());
        // etcd asks for a client certificate; the system's roots do not know the test CA.
        let no_client_cert = EtcdTls::read(Some(&ca), None, None, names).unwrap();
        let public_roots = EtcdTls::read(None, Some(&cert), Some(&key), names).unwrap();
        for tls in [no_client_cert, public_roots] {
            let refused = connect(tls).await.probe(Kind::User, "ann").await;
            assert!(
                matches!(refused, Err(StoreError::Unavailable(_))),
                "{refused:?}"
            );
        }
        // Files are checked when read, with the name the user gave them.
        let mistakes = [
            EtcdTls::read(Some(&key), None, None, names),
            EtcdTls::read(None, Some(&cert), None, names),
            EtcdTls::read(None, Some(&cert), Some(&cert), names),
            EtcdTls::read(Some(Path::new("/nonexistent")), None, None, names),
            // The member's key is not the client certificate's.
            EtcdTls::read(None, Some(&cert), Some(&tls_file("server-key.pem")), names),
        ];
        let wants = [
            "ca: ",
            "cert and key go together",
            "key: ",
            "ca: cannot read /nonexistent",
            "key: ",
        ];
        let errors: Vec<String> = mistakes.into_iter().map(|m| m.unwrap_err()).collect();
        for (err, want) in errors.iter().zip(wants) {
            assert!(err.starts_with(want), "{err}");
        }
        assert!(
            errors[4].contains("is not the key of cert"),
            "{}",
            errors[4]
        );
    }

    #[tokio::test]
    async fn one_member_of_three_down_changes_nothing_for_clients() {
        let mut cluster = Cluster::start(3).await;
        let s = store(&cluster).await;
        s.put(Kind::User, "ann", json!({}), Expect::Absent)
            .await
            .unwrap();
        cluster.kill_member(0);
        // The client moves on to the members that answer.
        for i in 0..5 {
            let name = format!("u{i}");
            s.put(Kind::User, &name, json!({}), Expect::Absent)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert_eq!(s.list(Kind::User).await.unwrap().len(), 6);
        assert!(s.get(Kind::User, "ann").await.unwrap().is_some());
    }
}
