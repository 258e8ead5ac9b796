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

/// `jwtgate_store_watch_lag_seconds` from the server's /metrics.
fn watch_lag(server: &Server) -> f64 {
    let metrics = server.get("/metrics").body;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("jwtgate_store_watch_lag_seconds "))
        .unwrap_or_else(|| panic!("no watch lag in\n{metrics}"))
        .parse()
        .unwrap()
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

/// Grants `permission` to the role `user` on `from`, and waits (up to 10 s) until `to` honours
/// it for `token` (a user with that role): `to`'s view took the change from its watch.
fn watch_delivers(s: &TwoServers, from: &Server, to: &Server, token: &str, permission: &str) {
    let body = serde_json::json!({ "permissions": [permission] }).to_string();
    let r = s.as_admin(from, "PUT", "/roles/user", &body);
    assert_eq!(r.status, 200, "{r:?}");
    let bearer = format!("Bearer {token}");
    let path = format!("/auth?permission={permission}");
    within(&format!("{permission} reaches the other server"), || {
        to.request("GET", &path, &[("Authorization", bearer.as_str())], "")
            .status
            == 200
    });
}

/// The `kid` in a token's header.
fn kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// The `kid`s a server publishes.
fn published(server: &Server) -> Vec<String> {
    let jwks = server.get("/jwks").json();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// A three-member etcd cluster, users added through the CLI (which initialises the store, as
/// it would a directory), two jwtgate servers on it, and the admin's token. The servers' full
/// reload (a backstop) is set to an hour: every change in these tests travels by the watch.
struct TwoServers {
    a: Server,
    b: Server,
    admin: String,
    cli: Cli,
    store: String,
    cluster: Cluster,
    rt: tokio::runtime::Runtime,
    /// One such setup at a time (three etcd members, two servers and argon2 share two cores
    /// in CI, and the tests hold changes to a second); dropped last.
    _serial: std::sync::MutexGuard<'static, ()>,
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl TwoServers {
    fn start(users: &[&str]) -> TwoServers {
        // A test that failed while holding it poisoned it; the next one may still run.
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let rt = runtime();
        let cluster = rt.block_on(Cluster::start(3));
        let store = format!("etcd:{}/jwtgate-it", cluster.endpoints().join(","));
        let cli = Cli::new();
        let env = [
            ("JWTGATE_STORE", store.as_str()),
            ("JWTGATE_ADMIN_PASSWORD", "admin-pw"),
        ];
        for user in users {
            cli.run_with_env(&["user", "add", user], &env).ok();
        }
        let config = cli.write("watch-only.toml", "[store]\nreload_seconds = 3600\n");
        let args = ["--config", crate::harness::s(&config)];
        let a = cli.serve_with_env(&args, &env);
        let b = cli.serve_with_env(&args, &env);
        let admin = login(&a, "admin:admin-pw").unwrap();
        TwoServers {
            a,
            b,
            admin,
            cli,
            store,
            cluster,
            rt,
            _serial: serial,
        }
    }

    /// A CLI command on the cluster's store.
    fn run(&self, args: &[&str]) -> crate::harness::Run {
        self.cli
            .run_with_env(args, &[("JWTGATE_STORE", self.store.as_str())])
    }

    /// A request to `server` with the admin's token.
    fn as_admin(
        &self,
        server: &Server,
        method: &str,
        path: &str,
        body: &str,
    ) -> crate::harness::Response {
        crate::harness::call(server, method, path, &self.admin, body)
    }
}

#[test]
fn two_servers_on_one_etcd_share_users_revocations_and_keys() {
    let s = TwoServers::start(&["ann:user:ann-pw", "carl:user:carl-pw"]);
    let (a, b) = (&s.a, &s.b);

    // A user added through A's admin API logs in on B.
    let r = s.as_admin(a, "PUT", "/roles/ops", r#"{"permissions": ["vm.view"]}"#);
    assert_eq!(r.status, 201, "{r:?}");
    let r = s.as_admin(
        a,
        "PUT",
        "/users/bob",
        r#"{"password": "bob-pw", "roles": ["user", "ops"]}"#,
    );
    assert_eq!(r.status, 201, "{r:?}");
    within("bob logs in on B", || login(b, "bob:bob-pw").is_ok());
    let bob = login(b, "bob:bob-pw").unwrap();
    let may_view = |token: &str| {
        let bearer = format!("Bearer {token}");
        b.request(
            "GET",
            "/auth?permission=vm.view",
            &[("Authorization", bearer.as_str())],
            "",
        )
        .status
    };
    within("B grants bob vm.view", || may_view(&bob) == 200);

    // A role change on A is honoured by B within a second.
    let r = s.as_admin(a, "PUT", "/roles/ops", r#"{"permissions": []}"#);
    assert_eq!(r.status, 200, "{r:?}");
    let took = within("B no longer grants vm.view", || may_view(&bob) == 403);
    assert!(took < Duration::from_secs(1), "took {took:?}");

    // So is a lock.
    assert_eq!(auth(b, &bob), 200);
    let r = s.as_admin(a, "POST", "/users/bob/lock", "");
    assert!(r.status < 300, "{r:?}");
    let took = within("B refuses locked bob's token", || auth(b, &bob) == 401);
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let r = s.as_admin(a, "POST", "/users/bob/unlock", "");
    assert!(r.status < 300, "{r:?}");

    // A revocation on A is honoured by B within a second.
    let ann = login(b, "ann:ann-pw").unwrap();
    assert_eq!(auth(b, &ann), 200);
    let r = s.as_admin(a, "POST", "/users/ann/revoke", "");
    assert!(r.status < 300, "{r:?}");
    let took = within("B refuses ann's revoked token", || auth(b, &ann) == 401);
    assert!(took < Duration::from_secs(1), "took {took:?}");

    // A key rotation (the CLI's, on the shared store): a token signed with the new key, made
    // as soon as the rotation is done, verifies on B within a second; A publishes the key too.
    let before = published(a);
    let rotate = s.run(&["key", "rotate"]).ok();
    let new_kid = rotate
        .strip_prefix("new active key '")
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("{rotate}"))
        .to_owned();
    assert!(!before.contains(&new_kid));
    // B's /jwks shows the keys B verifies with.
    let took = within("B has the new key", || published(b).contains(&new_kid));
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let carl = s.run(&["token", "issue", "carl"]).ok().trim().to_owned();
    assert_eq!(kid(&carl), new_kid, "signed with the new key");
    assert_eq!(auth(b, &carl), 200);
    within("A publishes the new key", || {
        published(a).contains(&new_kid)
    });
    let bob = login(a, "bob:bob-pw").unwrap();
    assert_eq!(kid(&bob), kid(&carl), "A signs with the new key too");
    assert_eq!(auth(b, &bob), 200);
}

#[test]
fn the_servers_ride_out_etcd_failures_and_lose_nothing() {
    let mut s = TwoServers::start(&["ann:user:ann-pw", "bob:user:bob-pw"]);
    within("B's watch is current", || {
        s.b.get("/metrics")
            .body
            .contains("jwtgate_store_watch_lag_seconds")
            && watch_lag(&s.b) < 1.5
    });
    let (a, b) = (&s.a, &s.b);

    // One member of three down: logins, revocations and verification go on.
    s.cluster.kill_member(0);
    let ann = login(a, "ann:ann-pw").unwrap();
    let bob = login(b, "bob:bob-pw").unwrap();
    assert_eq!(auth(b, &ann), 200);
    // B's watch may have been on the dead member and resumes on another. The backstop reload
    // is an hour away, so only the watch can bring B a permission granted on A.
    watch_delivers(&s, &s.a, &s.b, &bob, "warm.up");
    let r = s.as_admin(a, "POST", "/users/ann/revoke", "");
    assert!(r.status < 300, "{r:?}");
    let took = within("B refuses ann's revoked token", || auth(b, &ann) == 401);
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(a.get("/readyz").status, 200, "two members of three answer");
    let r = s.as_admin(
        b,
        "PUT",
        "/users/carl",
        r#"{"password": "carl-pw", "roles": ["user"]}"#,
    );
    assert_eq!(r.status, 201, "{r:?}");

    // Every member down: tokens still verify from the servers' views; writes answer 503.
    s.cluster.kill_member(1);
    s.cluster.kill_member(2);
    assert_eq!(auth(a, &bob), 200);
    assert_eq!(auth(b, &bob), 200);
    assert_eq!(auth(b, &ann), 401, "still revoked");
    let r = s.as_admin(
        a,
        "PUT",
        "/users/dora",
        r#"{"password": "dora-pw", "roles": ["user"]}"#,
    );
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.json()["error"], "store_unavailable", "{r:?}");
    // The client learns that the store failed; the cause (etcd's addresses) is for the log.
    assert_eq!(
        r.json()["message"],
        "the store is unavailable; the server log says why"
    );
    let r = s.as_admin(b, "POST", "/users/bob/revoke", "");
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(
        auth(b, &bob),
        200,
        "a revocation that failed is not half-applied"
    );
    // /metrics shows how stale the view may be: the watch has not heard from etcd since.
    let lag = watch_lag(b);
    assert!(lag > 2.0, "lag {lag}");
    // A login reads the user's current record, so it waits for etcd too.
    assert_eq!(login(b, "bob:bob-pw"), Err(503));
    // Load balancers learn it from /readyz, at once; /healthz (the process) stays up.
    let asked = Instant::now();
    let ready = a.get("/readyz");
    assert_eq!(ready.status, 503, "{ready:?}");
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(3), "readyz took {took:?}");
    assert_eq!(a.get("/healthz").status, 200);
    // Well into the outage (each 503 above waited 6 s for etcd), the views still hold.
    assert_eq!(auth(a, &bob), 200);
    assert_eq!(auth(b, &bob), 200);
    assert_eq!(auth(a, &ann), 401);

    // etcd back: what was acknowledged is there, the watches resume, the views converge.
    for i in 0..3 {
        s.cluster.start_member(i);
    }
    s.rt.block_on(s.cluster.healthy());
    within("A is ready again", || a.get("/readyz").status == 200);
    assert_eq!(
        auth(a, &ann),
        401,
        "the revocation acknowledged before the outage holds"
    );
    within("B's watch catches up", || watch_lag(b) < 1.5);
    // Both watches are back (a permission granted on one side reaches the other).
    watch_delivers(&s, &s.a, &s.b, &bob, "after.b");
    watch_delivers(&s, &s.b, &s.a, &bob, "after.a");
    within("carl logs in on A", || login(a, "carl:carl-pw").is_ok());
    let r = s.as_admin(
        a,
        "PUT",
        "/users/dora",
        r#"{"password": "dora-pw", "roles": ["user"]}"#,
    );
    assert_eq!(r.status, 201, "{r:?}");
    within("dora logs in on B", || login(b, "dora:dora-pw").is_ok());
    let r = s.as_admin(b, "POST", "/users/bob/revoke", "");
    assert!(r.status < 300, "{r:?}");
    let took = within("A refuses bob's revoked token", || auth(a, &bob) == 401);
    assert!(
        took < Duration::from_secs(1),
        "the watch is back: took {took:?}"
    );
}

/// Every record of a file store: kind directory and name → value (revisions aside: each
/// store counts its own).
fn records(dir: &std::path::Path) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut all = std::collections::BTreeMap::new();
    for kind in std::fs::read_dir(dir).unwrap() {
        let kind = kind.unwrap().path();
        if !kind.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&kind).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&file).unwrap();
                let record: serde_json::Value = serde_json::from_str(&text).unwrap();
                let name = file.strip_prefix(dir).unwrap().display().to_string();
                all.insert(name, record["value"].clone());
            }
        }
    }
    all
}

#[test]
fn store_copy_round_trips_a_populated_store_through_etcd() {
    let rt = runtime();
    let cluster = rt.block_on(Cluster::start(1));
    let etcd = format!("etcd:{}/copied", cluster.endpoints().join(","));
    let cli = Cli::new();
    cli.run(&["user", "add", "root:admin:root-pw"]).ok();
    cli.run(&["role", "set", "ops", "vm.view", "vm.console"])
        .ok();
    cli.run(&["user", "add", "bob:ops,user:bob-pw"]).ok();
    cli.run(&["user", "lock", "bob"]).ok();
    cli.run(&["token", "revoke", "--user", "root"]).ok();
    cli.run(&[
        "gatetoken",
        "create",
        "vm1",
        "--url",
        "/vnc/vm1",
        "--user",
        "root",
    ])
    .ok();
    cli.run(&["key", "rotate", "--alg", "EdDSA"]).ok();
    let original = records(&cli.path("jwtgate-data"));
    assert!(original.len() >= 8, "{original:?}");

    let to_etcd = cli.run(&[
        "store",
        "copy",
        "--from",
        "file:jwtgate-data",
        "--to",
        &etcd,
    ]);
    assert_eq!(to_etcd.code, 0, "{to_etcd:?}");
    assert!(
        to_etcd
            .stdout
            .starts_with(&format!("copied {} records", original.len())),
        "{to_etcd:?}"
    );
    // The copy is a working store.
    let users = cli.run(&["user", "list", "--store", &etcd]).ok();
    assert!(users.contains("bob") && users.contains("root"), "{users}");
    let back = cli.run(&["store", "copy", "--from", &etcd, "--to", "file:back"]);
    assert_eq!(back.code, 0, "{back:?}");
    assert_eq!(records(&cli.path("back")), original);

    // Nothing is overwritten, and a store is not copied onto itself.
    let again = cli.run(&[
        "store",
        "copy",
        "--from",
        "file:jwtgate-data",
        "--to",
        &etcd,
    ]);
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("already holds data"), "{again:?}");
    let same = cli.run(&["store", "copy", "--from", &etcd, "--to", &etcd]);
    assert_eq!(same.code, 2, "{same:?}");
    let missing = cli.run(&["store", "copy", "--from", "file:nowhere", "--to", "file:x"]);
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(
        !cli.path("nowhere").exists(),
        "a mistyped --from is not created"
    );
}

#[test]
fn servers_starting_at_once_on_an_empty_prefix_initialise_it_once() {
    let rt = runtime();
    let cluster = rt.block_on(Cluster::start(1));
    let store = format!("etcd:{}/fresh", cluster.endpoints().join(","));
    let cli = Cli::new();
    let env = [("JWTGATE_STORE", store.as_str())];
    // Each may find the store empty, or half initialised by the other (roles and the admin
    // written, the keyset not yet): both must come up on one keyset.
    let servers: Vec<Server> = std::thread::scope(|s| {
        let starts: Vec<_> = (0..3)
            .map(|_| s.spawn(|| cli.serve_with_env(&[], &env)))
            .collect();
        starts.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let jwks = servers[0].get("/jwks").body;
    assert!(jwks.contains("\"kid\""), "{jwks}");
    let admin = login(&servers[0], "admin:admin-pw").unwrap();
    for server in &servers[1..] {
        assert_eq!(server.get("/jwks").body, jwks);
        assert_eq!(auth(server, &admin), 200);
    }
}

#[test]
fn two_servers_changing_one_user_at_once_lose_no_update() {
    let s = TwoServers::start(&["ann:user:ann-pw"]);
    let (a, b) = (&s.a, &s.b);
    let bearer = format!("Bearer {}", s.admin);
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    // Each round A locks or unlocks ann while B sets her roles, at the same moment: both are
    // read-modify-writes of the same record, and neither may undo the other.
    for round in 0..100 {
        let locked = round % 2 == 0;
        let roles: &[&str] = if round % 3 == 0 {
            &["user"]
        } else {
            &["api", "user"]
        };
        let both = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            let lock = s.spawn(|| {
                both.wait();
                let path = if locked {
                    "/users/ann/lock"
                } else {
                    "/users/ann/unlock"
                };
                a.request("POST", path, &headers, "")
            });
            let set = s.spawn(|| {
                both.wait();
                let body = serde_json::json!({ "roles": roles }).to_string();
                b.request("PUT", "/users/ann/roles", &headers, &body)
            });
            for r in [lock.join().unwrap(), set.join().unwrap()] {
                assert!(r.status < 300, "round {round}: {r:?}");
            }
        });
        let ann = a.request("GET", "/users/ann", &headers, "").json();
        assert_eq!(ann["locked"], locked, "round {round}: {ann}");
        assert_eq!(
            ann["roles"],
            serde_json::json!(roles),
            "round {round}: {ann}"
        );
    }
}

#[test]
fn an_etcd_with_authentication_takes_the_user_and_password_file() {
    use etcd_client::{Client, Permission};
    let rt = runtime();
    let cluster = rt.block_on(Cluster::start(1));
    let endpoints = cluster.endpoints();
    rt.block_on(async {
        let mut etcd = Client::connect(&endpoints, None).await.unwrap();
        etcd.user_add("root", "root-pw", None).await.unwrap();
        etcd.user_grant_role("root", "root").await.unwrap();
        etcd.user_add("jwtgate", "jw-pw", None).await.unwrap();
        etcd.role_add("jwtgate").await.unwrap();
        let keys = Permission::read_write("/secured/").with_prefix();
        etcd.role_grant_permission("jwtgate", keys).await.unwrap();
        etcd.user_grant_role("jwtgate", "jwtgate").await.unwrap();
        etcd.auth_enable().await.unwrap();
    });
    let store = format!("etcd:{}/secured", endpoints.join(","));
    let cli = Cli::new();
    let good = cli.write("etcd-password", "jw-pw\n");
    let bad = cli.write("wrong-password", "nope\n");
    let with = |password: &std::path::Path| {
        vec![
            ("JWTGATE_STORE", store.clone()),
            ("JWTGATE_ETCD_USER", "jwtgate".to_owned()),
            ("JWTGATE_ETCD_PASSWORD_FILE", password.display().to_string()),
            ("JWTGATE_ADMIN_PASSWORD", "admin-pw".to_owned()),
        ]
    };
    let run = |args: &[&str], vars: Vec<(&'static str, String)>| {
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        cli.run_with_env(args, &vars)
    };
    let added = run(&["user", "add", "ann:user:ann-pw"], with(&good));
    assert_eq!(added.code, 0, "{added:?}");
    // A wrong password, or none: etcd refuses, and the message says what to check.
    let wrong = run(&["user", "list"], with(&bad));
    assert_eq!(wrong.code, 1, "{wrong:?}");
    assert!(
        wrong
            .stderr
            .contains("refused: etcdserver: authentication failed"),
        "{wrong:?}"
    );
    let anonymous = run(&["user", "list"], vec![("JWTGATE_STORE", store.clone())]);
    assert_eq!(anonymous.code, 1, "{anonymous:?}");
    assert!(anonymous.stderr.contains("refused"), "{anonymous:?}");
    let half = run(
        &["user", "list"],
        vec![
            ("JWTGATE_STORE", store.clone()),
            ("JWTGATE_ETCD_USER", "jwtgate".to_owned()),
        ],
    );
    assert_eq!(half.code, 2, "{half:?}");
    assert!(half.stderr.contains("go together"), "{half:?}");

    // serve takes them from [store].
    let config = cli.write(
        "jwtgate.toml",
        &format!(
            "[store]\nbackend = \"etcd\"\nendpoints = {:?}\nprefix = \"/secured\"\nuser = \"jwtgate\"\npassword_file = {:?}\n",
            endpoints,
            good.display().to_string()
        ),
    );
    let server = cli.serve(&["--config", crate::harness::s(&config)]);
    assert!(login(&server, "ann:ann-pw").is_ok());
}

#[test]
fn an_etcd_over_tls_is_reached_with_its_ca_and_a_client_certificate() {
    use crate::etcd_cluster::tls_file;
    let rt = runtime();
    let cluster = rt.block_on(Cluster::start_tls(1));
    let endpoints = cluster.endpoints();
    let store = format!("etcd:{}/tls", endpoints.join(","));
    let file = |name| tls_file(name).display().to_string();
    let (ca, cert, key) = (file("ca.pem"), file("client.pem"), file("client-key.pem"));
    let cli = Cli::new();
    let run = |args: &[&str], vars: &[(&str, &str)]| {
        let mut env = vec![("JWTGATE_STORE", store.as_str())];
        env.extend_from_slice(vars);
        cli.run_with_env(args, &env)
    };
    let all = [
        ("JWTGATE_ETCD_CA_FILE", ca.as_str()),
        ("JWTGATE_ETCD_CERT_FILE", cert.as_str()),
        ("JWTGATE_ETCD_KEY_FILE", key.as_str()),
    ];
    run(&["user", "add", "ann:user:ann-pw"], &all).ok();
    assert!(run(&["user", "list"], &all).ok().contains("ann"));

    // etcd wants a client certificate; the system's roots do not know its CA; TLS files need
    // https:// members; a certificate goes with its key.
    let no_certificate = run(&["user", "list"], &all[..1]);
    assert_eq!(no_certificate.code, 1, "{no_certificate:?}");
    // etcd's refusal comes as an alert, or only as a closed connection: either way the
    // message points at the client certificate.
    assert!(
        no_certificate.stderr.contains("client certificate"),
        "{no_certificate:?}"
    );
    let foreign = run(
        &["user", "list"],
        &[
            all[0],
            (
                "JWTGATE_ETCD_CERT_FILE",
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/cert.pem"),
            ),
            (
                "JWTGATE_ETCD_KEY_FILE",
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/key.pem"),
            ),
        ],
    );
    assert_eq!(foreign.code, 1, "{foreign:?}");
    assert!(foreign.stderr.contains("client certificate"), "{foreign:?}");
    let unknown_ca = run(&["user", "list"], &all[1..]);
    assert_eq!(unknown_ca.code, 1, "{unknown_ca:?}");
    assert!(
        unknown_ca.stderr.contains("against the CA file"),
        "{unknown_ca:?}"
    );
    let plain = cli.run_with_env(
        &["user", "list"],
        &[("JWTGATE_STORE", "etcd:http://127.0.0.1:1"), all[0]],
    );
    assert_eq!(plain.code, 2, "{plain:?}");
    assert!(
        plain.stderr.contains("are for https:// members"),
        "{plain:?}"
    );
    let half = run(&["user", "list"], &all[..2]);
    assert_eq!(half.code, 2, "{half:?}");
    assert!(
        half.stderr
            .contains("JWTGATE_ETCD_CERT_FILE and JWTGATE_ETCD_KEY_FILE go together"),
        "{half:?}"
    );

    // serve takes them from [store].
    let config = cli.write(
        "jwtgate.toml",
        &format!(
            "[store]\nbackend = \"etcd\"\nendpoints = {endpoints:?}\nprefix = \"/tls\"\nca_file = {ca:?}\ncert_file = {cert:?}\nkey_file = {key:?}\n"
        ),
    );
    let server = cli.serve(&["--config", crate::harness::s(&config)]);
    assert!(login(&server, "ann:ann-pw").is_ok());
}
