//! The remote JWKS client against a real local JWKS server (HTTP over loopback): a rotated key
//! is found with one refetch, a stopped server leaves the cached keys working until max-stale,
//! a flood of made-up kids costs one fetch per cooldown, and a slow server meets the timeout.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jwtgate::gateway::jwks::{JwksError, RemoteKeys};
use jwtgate_core::{sign, verify, Algorithm, Key, KeySet, Rules};
use serde_json::json;

/// A JWKS server: serves `jwks`, after `delay_ms`, counting requests, until stopped.
pub struct JwksServer {
    port: u16,
    jwks: Arc<Mutex<String>>,
    delay_ms: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    stopped: Arc<AtomicBool>,
}

impl JwksServer {
    pub fn start(jwks: String) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = JwksServer {
            port,
            jwks: Arc::new(Mutex::new(jwks)),
            delay_ms: Arc::default(),
            requests: Arc::default(),
            stopped: Arc::default(),
        };
        let (jwks, delay, requests, stopped) = (
            Arc::clone(&server.jwks),
            Arc::clone(&server.delay_ms),
            Arc::clone(&server.requests),
            Arc::clone(&server.stopped),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return; // drops the listener: connections are refused from now on
                }
                let Ok(mut stream) = stream else { continue };
                let (jwks, delay, requests) =
                    (Arc::clone(&jwks), Arc::clone(&delay), Arc::clone(&requests));
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf);
                    requests.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(delay.load(Ordering::SeqCst)));
                    let body = jwks.lock().unwrap().clone();
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/jwks", self.port)
    }

    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        // Wait until connections are refused.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "the JWKS server did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn key(kid: &str) -> Key {
    Key::generate(Algorithm::ES256, None, Some(kid.to_owned())).unwrap()
}

pub fn jwks_of(keys: &[&Key]) -> String {
    let jwks = jwtgate_core::key::Jwks {
        keys: keys.iter().filter_map(|k| k.to_jwk(false)).collect(),
    };
    jwks.to_json_pretty()
}

fn token(key: &Key) -> String {
    let claims = json!({"sub": "ann", "exp": 4_000_000_000i64, "iss": "https://idp.example"});
    sign(claims.as_object().unwrap(), key).unwrap()
}

fn verifies(keys: &KeySet, token: &str) -> bool {
    let rules = Rules::default().issuer("https://idp.example");
    verify(token, keys, &rules, 1_800_000_000).is_ok()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn remote(
    server: &JwksServer,
    cache: u64,
    timeout: u64,
    stale: u64,
    cooldown: u64,
) -> Arc<RemoteKeys> {
    RemoteKeys::with_cooldown(
        &server.url(),
        Duration::from_millis(cache),
        Duration::from_millis(timeout),
        Duration::from_millis(stale),
        Duration::from_millis(cooldown),
    )
    .unwrap()
}

#[test]
fn a_rotated_key_is_found_with_one_refetch_shared_by_every_request() {
    let (a, b) = (key("a"), key("b"));
    let server = JwksServer::start(jwks_of(&[&a]));
    let remote = remote(&server, 600_000, 2000, 3_600_000, 500);
    runtime().block_on(async {
        let keys = remote.keys_for(Some("a")).await.unwrap();
        assert!(verifies(&keys, &token(&a)));
        assert_eq!(remote.fetches(), 1);
        remote.keys_for(Some("a")).await.unwrap();
        assert_eq!(remote.fetches(), 1, "cached: no fetch for a known kid");
        // The issuer rotates to b. Past the cooldown, tokens with kid b arrive at once, among
        // a flood of made-up kids: one fetch serves them all, and every b token verifies.
        *server.jwks.lock().unwrap() = jwks_of(&[&b]);
        server.delay_ms.store(200, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(600)).await;
        let token_b = token(&b);
        let mut tasks = Vec::new();
        for i in 0..300 {
            let (remote, token_b) = (Arc::clone(&remote), token_b.clone());
            tasks.push(tokio::spawn(async move {
                if i % 10 == 0 {
                    let keys = remote.keys_for(Some("b")).await.unwrap();
                    assert!(verifies(&keys, &token_b), "request {i}");
                } else {
                    remote
                        .keys_for(Some(&format!("made-up-{i}")))
                        .await
                        .unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(remote.fetches(), 2);
        let keys = remote.keys_for(Some("b")).await.unwrap();
        assert!(
            !verifies(&keys, &token(&a)),
            "a is gone from the issuer's JWKS"
        );
    });
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
}

#[test]
fn a_stopped_jwks_server_leaves_the_cached_keys_working_until_max_stale() {
    let a = key("a");
    let server = JwksServer::start(jwks_of(&[&a]));
    let remote = remote(&server, 1000, 1000, 2000, 5000);
    runtime().block_on(async {
        assert!(verifies(
            &remote.keys_for(Some("a")).await.unwrap(),
            &token(&a)
        ));
        server.stop();
        // Past cache_duration: the keys are answered at once while one background fetch
        // fails; then the backoff keeps the server from being asked again.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let started = Instant::now();
        let keys = remote.keys_for(Some("a")).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "no request waits on the fetch"
        );
        assert!(verifies(&keys, &token(&a)));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let tried = remote.fetches();
        assert_eq!(tried, 2, "one background refetch");
        for _ in 0..50 {
            assert!(verifies(
                &remote.keys_for(Some("a")).await.unwrap(),
                &token(&a)
            ));
        }
        assert_eq!(remote.fetches(), tried, "backing off: no fetch per request");
        // Past cache_duration + max_stale (3 s): no key is trusted any more, and with the
        // server down and the backoff running, the answer comes at once.
        tokio::time::sleep(Duration::from_millis(2000)).await;
        let err = remote.keys_for(Some("a")).await.unwrap_err();
        let JwksError::Unavailable(why) = err;
        assert!(!why.is_empty());
        let before = remote.fetches();
        for _ in 0..20 {
            assert!(remote.keys_for(Some("a")).await.is_err());
        }
        assert_eq!(remote.fetches(), before, "no hammering while down");
    });
}

#[test]
fn five_hundred_made_up_kids_cost_one_fetch_per_cooldown() {
    let a = key("a");
    let server = JwksServer::start(jwks_of(&[&a]));
    let remote = remote(&server, 600_000, 2000, 3_600_000, 2000);
    runtime().block_on(async {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..500 {
            let remote = Arc::clone(&remote);
            tasks.push(tokio::spawn(async move {
                let keys = remote.keys_for(Some(&format!("random-{i}"))).await.unwrap();
                assert!(keys.get(&format!("random-{i}")).is_none());
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        // However long the flood took, at most one fetch per cooldown started.
        let cooldowns = started.elapsed().as_millis() as u64 / 2000;
        let fetches = remote.fetches();
        assert!(
            fetches <= 1 + cooldowns,
            "{fetches} fetches in {:?}",
            started.elapsed()
        );
        assert!(verifies(
            &remote.keys_for(Some("a")).await.unwrap(),
            &token(&a)
        ));
    });
}

/// After the first fetch has finished, made-up kids arriving one after another (not all
/// waiting on one fetch) still cost at most one fetch per cooldown, and a kid found unknown is
/// remembered: asking again within the cooldown fetches nothing.
#[test]
fn made_up_kids_one_after_another_cost_one_fetch_per_cooldown() {
    let a = key("a");
    let server = JwksServer::start(jwks_of(&[&a]));
    let remote = remote(&server, 600_000, 2000, 3_600_000, 1500);
    runtime().block_on(async {
        // The keys are fetched once (for a known kid), then the flood comes, one at a time.
        assert!(verifies(
            &remote.keys_for(Some("a")).await.unwrap(),
            &token(&a)
        ));
        assert_eq!(remote.fetches(), 1);
        // Within the cooldown of that fetch an unknown kid fetches nothing; after it, once.
        assert!(remote
            .keys_for(Some("early"))
            .await
            .unwrap()
            .get("early")
            .is_none());
        assert_eq!(remote.fetches(), 1, "no refetch within the cooldown");
        tokio::time::sleep(Duration::from_millis(1600)).await;
        let first = remote.keys_for(Some("made-up-0")).await.unwrap();
        assert!(first.get("made-up-0").is_none());
        assert_eq!(remote.fetches(), 2, "an unknown kid refetches once");
        let started = Instant::now();
        for i in 1..200 {
            let keys = remote
                .keys_for(Some(&format!("made-up-{i}")))
                .await
                .unwrap();
            assert!(keys.get(&format!("made-up-{i}")).is_none());
        }
        // Again the first unknown kid: remembered, no fetch.
        remote.keys_for(Some("made-up-0")).await.unwrap();
        let cooldowns = started.elapsed().as_millis() as u64 / 1500;
        assert!(
            remote.fetches() <= 2 + cooldowns,
            "{} fetches in {:?}",
            remote.fetches(),
            started.elapsed()
        );
        // After the cooldown, a new unknown kid may fetch again (once).
        tokio::time::sleep(Duration::from_millis(1600)).await;
        let before = remote.fetches();
        remote.keys_for(Some("made-up-late")).await.unwrap();
        assert_eq!(remote.fetches(), before + 1, "one fetch after the cooldown");
        remote.keys_for(Some("made-up-later")).await.unwrap();
        assert_eq!(remote.fetches(), before + 1, "and then a cooldown again");
    });
}

#[test]
fn a_slow_jwks_server_meets_the_timeout_and_cached_keys_do_not_wait_for_it() {
    let a = key("a");
    let server = JwksServer::start(jwks_of(&[&a]));
    // Cached first, then the server turns slow.
    let warm = remote(&server, 1000, 300, 3_600_000, 5000);
    runtime().block_on(async {
        let remote = warm;
        remote.keys_for(Some("a")).await.unwrap();
        server.delay_ms.store(3000, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let started = Instant::now();
        assert!(verifies(
            &remote.keys_for(Some("a")).await.unwrap(),
            &token(&a)
        ));
        assert!(
            started.elapsed() < Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
    });
    // No keys yet, slow server: the error comes when the timeout ends.
    let cold = remote(&server, 1000, 300, 3_600_000, 5000);
    runtime().block_on(async {
        let started = Instant::now();
        let err = cold.keys_for(Some("a")).await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_millis(2000),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            err,
            JwksError::Unavailable("no answer within 300 ms".into())
        );
    });
}

#[test]
fn hmac_keys_in_a_jwks_are_refused() {
    let secret = Key::generate(Algorithm::HS256, None, Some("h".into())).unwrap();
    let jwks = format!(
        "{{\"keys\": [{}]}}",
        serde_json::to_string(&secret.to_jwk(true).unwrap()).unwrap()
    );
    let server = JwksServer::start(jwks);
    let remote = remote(&server, 1000, 1000, 1000, 1000);
    runtime().block_on(async {
        let err = remote.keys_for(Some("h")).await.unwrap_err();
        assert_eq!(
            err,
            JwksError::Unavailable("the JWKS holds no usable public key".into())
        );
    });
}
