//! A provider's remote JWKS (`jwks_url`): fetched when first needed and renewed in the
//! background after `cache_duration`; refetched when a token names a `kid` it does not hold,
//! every such request waiting on one fetch (single flight) and at most one per cooldown, so a
//! flood of made-up kids costs one fetch; the last good keys keep serving for `max_stale` while
//! the JWKS server fails, then nothing does. HMAC keys in a JWKS are refused (a JWKS is
//! public). Each provider has its own `RemoteKeys`, so keys never mix.

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

/// Unknown kids remembered at most (a flood of random kids must not grow memory), and the
/// longest remembered.
const UNKNOWN_KIDS: usize = 1024;
const MAX_KID_LEN: usize = 256;

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
    /// The count of finished fetches, for requests waiting on the one in flight.
    finished: tokio::sync::watch::Sender<u64>,
    /// Where fetches run: the runtime that made the provider (the server's main thread, which
    /// lives as long as the server), not the worker whose request started the fetch.
    runtime: Option<tokio::runtime::Handle>,
}

#[derive(Default)]
struct State {
    keys: Option<Arc<KeySet>>,
    /// When the keys held were fetched.
    good: Option<Instant>,
    /// When the last fetch started.
    attempted: Option<Instant>,
    /// After a failed fetch: no new one before this (counted from when it ended).
    next_try: Option<Instant>,
    in_flight: bool,
    /// Fetches started (for tests and metrics) and finished.
    fetches: u64,
    finished: u64,
    unknown_kids: HashMap<String, Instant>,
    last_error: Option<String>,
}

/// Held by a fetch until it reports; dropped with it otherwise.
struct Unfinished(Option<Arc<RemoteKeys>>);

impl Unfinished {
    /// The fetch reported: nothing to do on drop.
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(keys) = self.0.take() {
            keys.abandon();
        }
    }
}

/// What a request does after looking at the state.
enum Step {
    Done(Result<Arc<KeySet>, JwksError>),
    /// Wait for the fetch in flight (started now or earlier), then answer from the state.
    Wait {
        finished: u64,
    },
}

impl RemoteKeys {
    pub fn new(
        url: &str,
        cache_duration: Duration,
        timeout: Duration,
        max_stale: Duration,
    ) -> Result<Arc<RemoteKeys>, String> {
        Self::with_cooldown(url, cache_duration, timeout, max_stale, COOLDOWN)
    }

    /// `new` with another cooldown (tests).
    pub fn with_cooldown(
        url: &str,
        cache_duration: Duration,
        timeout: Duration,
        max_stale: Duration,
        cooldown: Duration,
    ) -> Result<Arc<RemoteKeys>, String> {
        let url: hyper::Uri = url.parse().map_err(|e| format!("{url:?}: {e}"))?;
        Ok(Arc::new(RemoteKeys {
            url,
            client: client()?,
            cache_duration,
            timeout,
            max_stale,
            cooldown,
            state: Mutex::default(),
            finished: tokio::sync::watch::Sender::new(0),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }))
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

    /// Keys to verify a token naming `kid` with.
    ///
    /// - Keys within `cache_duration` that hold the kid: at once.
    /// - Older keys (within `max_stale`) that hold it: at once, while one background fetch
    ///   renews them (no request waits on a slow or dead JWKS server).
    /// - A kid the keys lack: the requests wait on one fetch (the one in flight, or a new one
    ///   unless one started within the cooldown); a kid still unknown is remembered for the
    ///   cooldown and the keys returned lack it (verification says "unknown kid").
    /// - No usable keys: wait on one fetch; while a failed fetch backs off, refuse at once.
    pub async fn keys_for(self: &Arc<Self>, kid: Option<&str>) -> Result<Arc<KeySet>, JwksError> {
        let step = self.step(kid, Instant::now());
        let finished = match step {
            Step::Done(result) => return result,
            Step::Wait { finished } => finished,
        };
        let mut changes = self.finished.subscribe();
        // A fetch that ended between the look and the subscription counts too. The fetch has
        // its own timeout; this one only bounds the wait should the fetch never report.
        let waited = changes.wait_for(|n| *n > finished);
        let _ = tokio::time::timeout(self.timeout + Duration::from_secs(1), waited).await;
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

    fn step(self: &Arc<Self>, kid: Option<&str>, now: Instant) -> Step {
        let mut state = self.lock();
        let backing_off = state.next_try.is_some_and(|t| now < t);
        let age = state.good.map(|t| now.duration_since(t));
        let usable = age.is_some_and(|a| a < self.cache_duration.saturating_add(self.max_stale));
        if !usable {
            // Past max_stale (or never fetched): no key is trusted (fail closed).
            state.keys = None;
        }
        let Some(keys) = state.keys.clone() else {
            if backing_off && !state.in_flight {
                return Step::Done(Err(JwksError::Unavailable(
                    state.last_error.clone().unwrap_or_default(),
                )));
            }
            return self.fetch_and_wait(&mut state);
        };
        let fresh = age.is_some_and(|a| a < self.cache_duration);
        let has_kid = kid.is_none_or(|k| keys.get(k).is_some());
        if has_kid {
            if !fresh && !backing_off && !state.in_flight {
                self.start_fetch(&mut state);
            }
            return Step::Done(Ok(keys));
        }
        if state.in_flight {
            return Step::Wait {
                finished: state.finished,
            };
        }
        let kid = kid.unwrap_or_default();
        let seen = state
            .unknown_kids
            .get(kid)
            .is_some_and(|t| now.duration_since(*t) < self.cooldown);
        let recently_tried = state
            .attempted
            .is_some_and(|t| now.duration_since(t) < self.cooldown);
        if seen || recently_tried || backing_off {
            remember_unknown(&mut state, kid, now, self.cooldown);
            return Step::Done(Ok(keys));
        }
        self.fetch_and_wait(&mut state)
    }

    fn fetch_and_wait(self: &Arc<Self>, state: &mut State) -> Step {
        if !state.in_flight {
            self.start_fetch(state);
        }
        Step::Wait {
            finished: state.finished,
        }
    }

    /// Starts the one fetch, in its own task: a request that goes away does not cancel it.
    fn start_fetch(self: &Arc<Self>, state: &mut State) {
        state.in_flight = true;
        state.fetches += 1;
        let started = Instant::now();
        state.attempted = Some(started);
        let this = Arc::clone(self);
        // Should the task be dropped before it reports (its runtime stopping, even before it
        // ran), the waiting requests are released and the next request may fetch again.
        let mut unfinished = Unfinished(Some(Arc::clone(self)));
        let fetch = async move {
            let result = tokio::time::timeout(this.timeout, this.fetch())
                .await
                .unwrap_or_else(|_| {
                    Err(format!("no answer within {} ms", this.timeout.as_millis()))
                });
            let finished = {
                let mut state = this.lock();
                let ended = Instant::now();
                match result {
                    Ok(keys) => {
                        state.keys = Some(Arc::new(keys));
                        state.good = Some(started);
                        state.next_try = None;
                        state.last_error = None;
                        state.unknown_kids.clear();
                    }
                    Err(e) => {
                        tracing::warn!(url = %this.url, error = %e, "JWKS fetch failed");
                        state.last_error = Some(e);
                        state.next_try = Some(ended + this.cooldown);
                    }
                }
                state.in_flight = false;
                state.finished += 1;
                state.finished
            };
            unfinished.disarm();
            this.finished.send_replace(finished);
        };
        match &self.runtime {
            Some(runtime) => drop(runtime.spawn(fetch)),
            None => drop(tokio::spawn(fetch)),
        }
    }

    /// Ends a fetch that was dropped before it finished.
    fn abandon(&self) {
        let finished = {
            let mut state = self.lock();
            state.in_flight = false;
            state.last_error = Some("the fetch was cancelled".to_owned());
            state.finished += 1;
            state.finished
        };
        self.finished.send_replace(finished);
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let jwks = fetch_jwks(&self.client, &self.url).await?;
        let (mut keys, skipped) = jwks.to_keys(None);
        for why in &skipped {
            tracing::debug!(url = %self.url, reason = %why, "JWKS key skipped");
        }
        // A JWKS is public: an HMAC key in one is a secret everybody knows.
        keys.retain(|k| k.alg().key_type() != jwtgate_core::KeyType::Oct);
        if keys.is_empty() {
            return Err("the JWKS holds no usable public key".to_owned());
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
    // A kid longer than any real one is not worth remembering (memory stays bounded).
    if kid.len() > MAX_KID_LEN {
        return;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event_loop() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_fetch_dropped_with_its_runtime_releases_the_requests_waiting_on_it() {
        // A JWKS server that accepts and never answers: the fetch could only time out (30 s).
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/jwks", silent.local_addr().unwrap());
        let second = Duration::from_secs(1);
        let home = event_loop();
        let keys =
            home.block_on(async { RemoteKeys::new(&url, 60 * second, 30 * second, 60 * second) });
        let keys = keys.unwrap();
        // The fetch is queued on `home`, which stops before it ever runs it.
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(home);
        });
        let started = Instant::now();
        let result = event_loop().block_on(keys.keys_for(Some("k1")));
        stopper.join().unwrap();
        assert_eq!(
            result.unwrap_err(),
            JwksError::Unavailable("the fetch was cancelled".into())
        );
        assert!(started.elapsed() < 10 * second, "{:?}", started.elapsed());
        assert!(!keys.lock().in_flight, "the next request may fetch again");
        drop(silent);
    }
}
