//! A provider's remote JWKS (`jwks_url`): fetched when first needed and again after
//! `cache_duration`; refetched once when a token names a `kid` it does not hold, with every
//! request waiting on one fetch (single flight) and at most one such fetch per cooldown, so a
//! flood of made-up kids costs one fetch; the last good keys keep serving for `max_stale` while
//! the JWKS server fails. Each provider has its own `RemoteKeys`, so keys never mix.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jwtgate_core::key::Jwks;
use jwtgate_core::KeySet;

/// A JWKS larger than this is refused (a real one is a few KiB).
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Kids found unknown are remembered this long, and fetches for unknown kids are this far
/// apart at least.
pub const COOLDOWN: Duration = Duration::from_secs(10);

/// Unknown kids remembered at most (a flood of random kids must not grow memory).
const UNKNOWN_KIDS: usize = 1024;

pub type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Why no keys can be given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// The JWKS could not be fetched or read, and no keys fetched within `max_stale` remain.
    #[error("the provider's JWKS is unavailable: {0}")]
    Unavailable(String),
}

pub struct RemoteKeys {
    url: hyper::Uri,
    client: HttpsClient,
    cache_duration: Duration,
    timeout: Duration,
    max_stale: Duration,
    cooldown: Duration,
    state: Mutex<State>,
    /// Held by the one task fetching; the others wait for its result.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    keys: Option<Arc<KeySet>>,
    /// When the keys held were fetched.
    good: Option<Instant>,
    /// When a fetch was last started, successful or not.
    attempted: Option<Instant>,
    /// After a failed fetch: no new one before this.
    next_try: Option<Instant>,
    /// Counts fetches started (for tests and metrics), and finished.
    fetches: u64,
    finished: u64,
    unknown_kids: HashMap<String, Instant>,
    last_error: Option<String>,
}

impl RemoteKeys {
    pub fn new(
        url: &str,
        cache_duration: Duration,
        timeout: Duration,
        max_stale: Duration,
    ) -> Result<RemoteKeys, String> {
        let url: hyper::Uri = url.parse().map_err(|e| format!("{url:?}: {e}"))?;
        let client = client()?;
        Ok(RemoteKeys {
            url,
            client,
            cache_duration,
            timeout,
            max_stale,
            cooldown: COOLDOWN,
            state: Mutex::default(),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The same, with another cooldown (tests).
    pub fn with_cooldown(mut self, cooldown: Duration) -> RemoteKeys {
        self.cooldown = cooldown;
        self
    }

    /// How many fetches were started so far.
    pub fn fetches(&self) -> u64 {
        self.lock().fetches
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Keys to verify a token naming `kid` with: the cached ones while fresh (or while a
    /// failed fetch backs off, within `max_stale`) and holding the kid; otherwise after at most
    /// one fetch. A kid still unknown after it is remembered for the cooldown, and the keys
    /// returned simply lack it (verification then says "unknown kid").
    pub async fn keys_for(&self, kid: Option<&str>) -> Result<Arc<KeySet>, JwksError> {
        let now = Instant::now();
        let seen = {
            let mut state = self.lock();
            if let Some(keys) = state.keys.clone() {
                let age = state.good.map_or(Duration::MAX, |t| now.duration_since(t));
                let fresh = age < self.cache_duration;
                let usable = age < self.cache_duration.saturating_add(self.max_stale);
                let backing_off = state.next_try.is_some_and(|t| now < t);
                let has_kid = kid.is_none_or(|k| keys.get(k).is_some());
                let recently_tried = state
                    .attempted
                    .is_some_and(|t| now.duration_since(t) < self.cooldown);
                if !usable {
                    // Past max_stale: no key is trusted any more (fail closed).
                    state.keys = None;
                } else if has_kid && (fresh || backing_off) {
                    return Ok(keys);
                } else if !has_kid && (fresh || backing_off) {
                    let kid = kid.unwrap_or_default();
                    let seen = state
                        .unknown_kids
                        .get(kid)
                        .is_some_and(|t| now.duration_since(*t) < self.cooldown);
                    if seen || recently_tried || backing_off {
                        remember_unknown(&mut state, kid, now, self.cooldown);
                        return Ok(keys);
                    }
                }
            } else if state.next_try.is_some_and(|t| now < t) {
                return Err(JwksError::Unavailable(
                    state.last_error.clone().unwrap_or_default(),
                ));
            }
            state.finished
        };
        self.refresh(seen).await?;
        let mut state = self.lock();
        let keys = state
            .keys
            .clone()
            .ok_or_else(|| JwksError::Unavailable(state.last_error.clone().unwrap_or_default()))?;
        if let Some(kid) = kid {
            if keys.get(kid).is_none() {
                remember_unknown(&mut state, kid, Instant::now(), self.cooldown);
            }
        }
        Ok(keys)
    }

    /// Fetches the JWKS, once for everyone waiting: a task that waited while another fetched
    /// (`seen`: the count of finished fetches when it looked) uses that result. A failed fetch keeps the last good keys while they are within
    /// `max_stale`, and the next fetch waits for the cooldown.
    async fn refresh(&self, seen: u64) -> Result<(), JwksError> {
        let _flight = self.fetching.lock().await;
        {
            let state = self.lock();
            // A fetch finished since this request looked (it may have been running then):
            // its result is ours.
            if state.finished != seen {
                return match &state.keys {
                    Some(_) => Ok(()),
                    None => Err(JwksError::Unavailable(
                        state.last_error.clone().unwrap_or_default(),
                    )),
                };
            }
        }
        let started = Instant::now();
        {
            let mut state = self.lock();
            state.attempted = Some(started);
            state.fetches += 1;
        }
        let result = tokio::time::timeout(self.timeout, self.fetch())
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} ms", self.timeout.as_millis())));
        let mut state = self.lock();
        state.finished += 1;
        match result {
            Ok(keys) => {
                state.keys = Some(Arc::new(keys));
                state.good = Some(started);
                state.next_try = None;
                state.last_error = None;
                state.unknown_kids.clear();
                Ok(())
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "JWKS fetch failed");
                state.last_error = Some(e.clone());
                state.next_try = Some(started + self.cooldown);
                let usable = state.good.is_some_and(|t| {
                    started.duration_since(t) < self.cache_duration.saturating_add(self.max_stale)
                });
                if usable && state.keys.is_some() {
                    Ok(())
                } else {
                    state.keys = None;
                    Err(JwksError::Unavailable(e))
                }
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let jwks = fetch_jwks(&self.client, &self.url).await?;
        let (keys, skipped) = jwks.to_keys(None);
        for why in &skipped {
            tracing::debug!(url = %self.url, reason = %why, "JWKS key skipped");
        }
        if keys.is_empty() {
            return Err("the JWKS holds no usable key".to_owned());
        }
        KeySet::new(keys).map_err(|e| format!("the JWKS: {e}"))
    }
}

/// An HTTP(S) client for JWKS servers: rustls with the aws-lc-rs provider and the webpki
/// roots, HTTP/1.1, pooled connections.
pub fn client() -> Result<HttpsClient, String> {
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(provider)
        .map_err(|e| format!("TLS: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// GETs and parses a JWKS (a 2xx answer of at most 1 MiB).
pub async fn fetch_jwks(client: &HttpsClient, url: &hyper::Uri) -> Result<Jwks, String> {
    let request = hyper::Request::get(url.clone())
        .header(hyper::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = client.request(request).await.map_err(|e| format!("{e}"))?;
    if !response.status().is_success() {
        return Err(format!("the JWKS server answered {}", response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the JWKS: {e}"))?
        .to_bytes();
    let text = std::str::from_utf8(&body).map_err(|_| "the JWKS is not UTF-8".to_owned())?;
    Jwks::parse(text).map_err(|e| format!("the JWKS: {e}"))
}

fn remember_unknown(state: &mut State, kid: &str, now: Instant, cooldown: Duration) {
    if state.unknown_kids.len() >= UNKNOWN_KIDS {
        state
            .unknown_kids
            .retain(|_, t| now.duration_since(*t) < cooldown);
        if state.unknown_kids.len() >= UNKNOWN_KIDS {
            state.unknown_kids.clear();
        }
    }
    state.unknown_kids.insert(kid.to_owned(), now);
}
