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
struct JwksServer {
    port: u16,
    jwks: Arc<Mutex<String>>,
    delay_ms: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    stopped: Arc<AtomicBool>,
}

impl JwksServer {
    fn start(jwks: String) -> JwksServer {
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

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/jwks", self.port)
    }

    fn stop(&self) {
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

fn key(kid: &str) -> Key {
    Key::generate(Algorithm::ES256, None, Some(kid.to_owned())).unwrap()
}

fn jwks_of(keys: &[&Key]) -> String {
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

#[test]
fn a_rotated_key_is_found_with_one_refetch() {
    let (a, b) = (key("a"), key("b"));
    let server = JwksServer::start(jwks_of(&[&a]));
    let remote = RemoteKeys::new(
        &server.url(),
        Duration::from_secs(600),
        Duration::from_secs(2),
        Duration::from_secs(3600),
    )
    .unwrap()
    .with_cooldown(Duration::from_millis(200));
    runtime().block_on(async {
        let keys = remote.keys_for(Some("a")).await.unwrap();
        assert!(verifies(&keys, &token(&a)));
        assert_eq!(remote.fetches(), 1);
        // Cached: no fetch for a known kid.
        remote.keys_for(Some("a")).await.unwrap();
        assert_eq!(remote.fetches(), 1);
        // The issuer rotates to b; a token with kid b arrives.
        *server.jwks.lock().unwrap() = jwks_of(&[&b]);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let keys = remote.keys_for(Some("b")).await.unwrap();
        assert!(verifies(&keys, &token(&b)));
        assert!(
            !verifies(&keys, &token(&a)),
            "a is gone from the issuer's JWKS"
        );
        assert_eq!(remote.fetches(), 2);
    });
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
}

#[test]
fn a_stopped_jwks_server_leaves_the_cached_keys_working_until_max_stale() {
    let a = key("a");
    let server = JwksServer::start(jwks_of(&[&a]));
    let remote = RemoteKeys::new(
        &server.url(),
        Duration::from_millis(300),
        Duration::from_secs(1),
        Duration::from_millis(1500),
    )
    .unwrap()
    .with_cooldown(Duration::from_millis(100));
    runtime().block_on(async {
        assert!(verifies(
            &remote.keys_for(Some("a")).await.unwrap(),
            &token(&a)
        ));
        server.stop();
        // Past cache_duration: the refetch fails, the last good keys still verify.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let keys = remote.keys_for(Some("a")).await.unwrap();
        assert!(verifies(&keys, &token(&a)));
        let tried = remote.fetches();
        assert!(tried >= 2, "a refetch was tried: {tried}");
        // Past cache_duration + max_stale (1.8 s): no key is trusted any more.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let err = remote.keys_for(Some("a")).await.unwrap_err();
        let JwksError::Unavailable(why) = err;
        assert!(!why.is_empty());
    });
}

#[test]
fn five_hundred_made_up_kids_cost_one_fetch_per_cooldown() {
    let a = key("a");
    let server = JwksServer::start(jwks_of(&[&a]));
    let remote = Arc::new(
        RemoteKeys::new(
            &server.url(),
            Duration::from_secs(600),
            Duration::from_secs(2),
            Duration::from_secs(3600),
        )
        .unwrap()
        .with_cooldown(Duration::from_millis(800)),
    );
    runtime().block_on(async {
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
        // The first one fetched; everyone else shared it or found the cooldown running.
        assert_eq!(remote.fetches(), 1, "one fetch for the whole flood");
        // After the cooldown, the next unknown kid may fetch once more.
        tokio::time::sleep(Duration::from_millis(900)).await;
        for i in 0..100 {
            remote.keys_for(Some(&format!("later-{i}"))).await.unwrap();
        }
        assert_eq!(remote.fetches(), 2);
        // The known key still verifies throughout.
        assert!(verifies(
            &remote.keys_for(Some("a")).await.unwrap(),
            &token(&a)
        ));
    });
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
}

#[test]
fn a_slow_jwks_server_meets_the_timeout() {
    let a = key("a");
    let server = JwksServer::start(jwks_of(&[&a]));
    server.delay_ms.store(3000, Ordering::SeqCst);
    let remote = RemoteKeys::new(
        &server.url(),
        Duration::from_secs(600),
        Duration::from_millis(300),
        Duration::from_secs(3600),
    )
    .unwrap();
    runtime().block_on(async {
        let started = Instant::now();
        let err = remote.keys_for(Some("a")).await.unwrap_err();
        let waited = started.elapsed();
        assert!(waited < Duration::from_millis(2000), "waited {waited:?}");
        assert_eq!(
            err,
            JwksError::Unavailable("no answer within 300 ms".into())
        );
    });
}
