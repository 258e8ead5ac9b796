//! Cluster mode end to end: two jwtgate servers and the CLI on one real three-member etcd
//! cluster (`--store etcd:…`), sharing users, revocations and keys.

use std::time::{Duration, Instant};

use base64::Engine;

use crate::etcd_cluster::Cluster;
use crate::harness::{Cli, Server};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn login(server: &Server, credentials: &str) -> Result<String, u16> {
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    );
    let r = server.request("POST", "/login", &[("Authorization", basic.as_str())], "");
    match r.status {
        200 => Ok(r.json()["access_token"].as_str().unwrap().to_owned()),
        status => Err(status),
    }
}

fn auth(server: &Server, token: &str) -> u16 {
    let bearer = format!("Bearer {token}");
    server
        .request("GET", "/auth", &[("Authorization", bearer.as_str())], "")
        .status
}

/// Polls `probe` every 20 ms until it holds; returns how long that took (fails after 10 s).
fn within(what: &str, probe: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !probe() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: not after 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

#[test]
fn two_servers_on_one_etcd_share_users_revocations_and_keys() {
    let rt = runtime();
    let cluster = rt.block_on(Cluster::start(3));
    let store = format!("etcd:{}/jwtgate-it", cluster.endpoints().join(","));
    let env = [
        ("JWTGATE_STORE", store.as_str()),
        ("JWTGATE_ADMIN_PASSWORD", "admin-pw"),
    ];
    let cli = Cli::new();
    // The CLI initialises the cluster's store as it would a directory.
    cli.run_with_env(&["user", "add", "ann:user:ann-pw"], &env)
        .ok();
    let a = cli.serve_with_env(&[], &env);
    let b = cli.serve_with_env(&[], &env);

    // A user added through A's admin API logs in on B.
    let admin = login(&a, "admin:admin-pw").unwrap();
    let r = a.request(
        "PUT",
        "/users/bob",
        &[
            ("Authorization", format!("Bearer {admin}").as_str()),
            ("Content-Type", "application/json"),
        ],
        r#"{"password": "bob-pw", "roles": ["user"]}"#,
    );
    assert_eq!(r.status, 201, "{r:?}");
    within("bob logs in on B", || login(&b, "bob:bob-pw").is_ok());

    // A revocation on A is honoured by B within a second.
    let ann = login(&b, "ann:ann-pw").unwrap();
    assert_eq!(auth(&b, &ann), 200);
    let r = a.request(
        "POST",
        "/users/ann/revoke",
        &[("Authorization", format!("Bearer {admin}").as_str())],
        "",
    );
    assert!(r.status < 300, "{r:?}");
    let took = within("B refuses ann's revoked token", || auth(&b, &ann) == 401);
    assert!(took < Duration::from_secs(1), "took {took:?}");

    // A key rotation on A: tokens signed with the new key verify on B.
    let r = a.request("GET", "/jwks", &[], "");
    let before = r.json()["keys"].as_array().unwrap().len();
    cli.run_with_env(&["key", "rotate"], &env).ok();
    within("A publishes the new key", || {
        a.get("/jwks").json()["keys"].as_array().unwrap().len() > before
    });
    let bob = login(&a, "bob:bob-pw").unwrap();
    within("B verifies a token signed with the new key", || {
        auth(&b, &bob) == 200
    });
    drop(cluster);
}

#[test]
fn the_servers_ride_out_etcd_failures_and_lose_nothing() {
    let rt = runtime();
    let mut cluster = rt.block_on(Cluster::start(3));
    let store = format!("etcd:{}/jwtgate-it", cluster.endpoints().join(","));
    let env = [
        ("JWTGATE_STORE", store.as_str()),
        ("JWTGATE_ADMIN_PASSWORD", "admin-pw"),
    ];
    let cli = Cli::new();
    cli.run_with_env(&["user", "add", "ann:user:ann-pw"], &env)
        .ok();
    cli.run_with_env(&["user", "add", "bob:user:bob-pw"], &env)
        .ok();
    let a = cli.serve_with_env(&[], &env);
    let b = cli.serve_with_env(&[], &env);
    let admin = login(&a, "admin:admin-pw").unwrap();
    let as_admin = |server: &Server, method: &str, path: &str, body: &str| {
        let bearer = format!("Bearer {admin}");
        server.request(
            method,
            path,
            &[
                ("Authorization", bearer.as_str()),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    };

    // One member of three down: logins, revocations and verification go on.
    cluster.kill_member(0);
    let ann = login(&a, "ann:ann-pw").unwrap();
    let bob = login(&b, "bob:bob-pw").unwrap();
    assert_eq!(auth(&b, &ann), 200);
    let r = as_admin(&a, "POST", "/users/ann/revoke", "");
    assert!(r.status < 300, "{r:?}");
    within("B refuses ann's revoked token", || auth(&b, &ann) == 401);
    let r = as_admin(
        &b,
        "PUT",
        "/users/carl",
        r#"{"password": "carl-pw", "roles": ["user"]}"#,
    );
    assert_eq!(r.status, 201, "{r:?}");

    // Every member down: tokens still verify from the servers' views; writes answer 503.
    cluster.kill_member(1);
    cluster.kill_member(2);
    assert_eq!(auth(&a, &bob), 200);
    assert_eq!(auth(&b, &bob), 200);
    assert_eq!(auth(&b, &ann), 401, "still revoked");
    let r = as_admin(
        &a,
        "PUT",
        "/users/dora",
        r#"{"password": "dora-pw", "roles": ["user"]}"#,
    );
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.json()["error"], "store_unavailable", "{r:?}");
    let message = r.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("the store is unavailable: no etcd member answered (http://127.0.0.1:"),
        "{message}"
    );
    let r = as_admin(&b, "POST", "/users/bob/revoke", "");
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(
        auth(&b, &bob),
        200,
        "a revocation that failed is not half-applied"
    );

    // etcd back: what was acknowledged is there, the watches resume, the views converge.
    for i in 0..3 {
        cluster.start_member(i);
    }
    rt.block_on(cluster.healthy());
    within("carl logs in on A", || login(&a, "carl:carl-pw").is_ok());
    let r = as_admin(
        &a,
        "PUT",
        "/users/dora",
        r#"{"password": "dora-pw", "roles": ["user"]}"#,
    );
    assert_eq!(r.status, 201, "{r:?}");
    within("dora logs in on B", || login(&b, "dora:dora-pw").is_ok());
    let r = as_admin(&b, "POST", "/users/bob/revoke", "");
    assert!(r.status < 300, "{r:?}");
    within("A refuses bob's revoked token", || auth(&a, &bob) == 401);
}
