//! The App Mesh documentation's curl commands (`../shared/seeds/004_…`), sent as its clients
//! send them, through reqwest over HTTPS: `-k` (any certificate) like the documented commands,
//! and once more verifying the certificate against the test CA. The login's `Authorization` is
//! bare base64 (no `Basic`), `expire_seconds` a string.

use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::blocking::Client;
use serde_json::{json, Value};

use crate::harness::{now, totp_of, Cli};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

fn https_config(cli: &Cli, extra: &str) -> String {
    let text = format!(
        "[server]\napi_prefix = \"/appmesh\"\ntls_cert = \"{FIXTURES}/cert.pem\"\ntls_key = \"{FIXTURES}/key.pem\"\n{extra}"
    );
    cli.write("jwtgate.toml", &text)
        .to_str()
        .unwrap()
        .to_owned()
}

/// `curl -k`: TLS without checking the certificate.
fn insecure() -> Client {
    Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

#[test]
fn app_mesh_curl_commands_work_unchanged_over_https() {
    let cli = Cli::new();
    cli.run(&["role", "set", "viewer", "app-view"]).ok();
    cli.run(&["user", "add", "mesh:viewer:pwd"]).ok();
    let config = https_config(&cli, "");
    let server = cli.serve(&["--config", &config]);
    let port = server.addr.rsplit(':').next().unwrap().to_owned();
    let base = format!("https://localhost:{port}");
    let client = insecure();

    // curl -X POST -k -s -H "Authorization:$(echo -n 'user:pwd' | base64)" -H "X-Expire-Seconds:2" https://localhost:6060/appmesh/login
    let credentials = base64::engine::general_purpose::STANDARD.encode("mesh:pwd");
    let r = client
        .post(format!("{base}/appmesh/login"))
        .header("Authorization", &credentials)
        .header("X-Expire-Seconds", "2")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    // Over HTTPS the session cookie is Secure.
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    let body: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    for field in [
        "access_token",
        "expire_seconds",
        "expire_time",
        "profile",
        "token_type",
    ] {
        assert!(!body[field].is_null(), "{field} in {body}");
    }
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["profile"]["name"], "mesh");
    assert_eq!(body["expire_seconds"], 2);
    let auth_time = body["profile"]["auth_time"].as_i64().unwrap();
    assert_eq!(body["expire_time"].as_i64().unwrap(), auth_time + 2);
    let token = body["access_token"].as_str().unwrap().to_owned();

    // curl -s -X POST -k -H "Authorization:Bearer $JWT_TOKEN" -H "X-Permission:app-view" https://127.0.0.1:6060/appmesh/auth
    let auth = |port: &str, token: &str| {
        client
            .post(format!("https://127.0.0.1:{port}/appmesh/auth"))
            .header("Authorization", format!("Bearer {token}"))
            .header("X-Permission", "app-view")
            .send()
            .unwrap()
    };
    let r = auth(&port, &token);
    assert_eq!(r.status(), 200);
    let body: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"permission": "app-view", "success": true, "user": "mesh"})
    );
    // X-Expire-Seconds:2 meant it: two seconds (and the 60 s leeway) later the token is dead.
    let config = https_config(&cli, "leeway_seconds = 0\n");
    drop(server);
    let server = cli.serve(&["--config", &config]);
    let port = server.addr.rsplit(':').next().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(3100));
    let r = client
        .post(format!("https://127.0.0.1:{port}/appmesh/auth"))
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("expired"));

    // POST /appmesh/totp/validate { "user_name", "totp_code", "totp_challenge", "expire_seconds":"360000" }
    cli.run(&["user", "totp", "enroll", "mesh"]).ok();
    let totp = totp_of(&cli, "mesh");
    let base = format!("https://localhost:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let r = loop {
        // The running server learns of the enrolment from the store within a poll or two.
        let r = client
            .post(format!("{base}/appmesh/login"))
            .header("Authorization", &credentials)
            .send()
            .unwrap();
        if r.status() != 200 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(r.status(), 428);
    let challenge: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    assert_eq!(challenge["status"], "TOTP_CHALLENGE_REQUIRED");
    let body = json!({
        "user_name": "mesh", "totp_code": totp.code_at(now()),
        "totp_challenge": challenge["totp_challenge"], "expire_seconds": "360000",
    });
    let r = client
        .post(format!("{base}/appmesh/totp/validate"))
        .body(body.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    assert_eq!(body["expire_seconds"], 360000);
    let r = auth(&port, body["access_token"].as_str().unwrap());
    assert_eq!(r.status(), 200);
}

#[test]
fn the_certificate_verifies_against_its_ca_and_plain_http_is_not_answered() {
    let cli = Cli::new();
    cli.run(&["user", "add", "ann:user:pw"]).ok();
    let config = https_config(&cli, "");
    let server = cli.serve(&["--config", &config]);
    let port = server.addr.rsplit(':').next().unwrap().to_owned();
    let ca = std::fs::read(format!("{FIXTURES}/ca.pem")).unwrap();
    let strict = Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let r = strict
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    // A client that does not trust the test CA refuses the connection.
    let default = Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let err = default
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .unwrap_err();
    assert!(
        format!("{err:?}").to_lowercase().contains("certificate"),
        "{err:?}"
    );
    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let plain = reqwest::blocking::get(format!("http://127.0.0.1:{port}/healthz"));
    assert!(plain.is_err(), "{plain:?}");
    // The server still serves after the failed handshakes, and while a client that connected
    // says nothing (its handshake runs off the accept loop).
    let silent = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    assert_eq!(
        strict
            .get(format!("https://localhost:{port}/readyz"))
            .send()
            .unwrap()
            .status(),
        200
    );
    drop(silent);
    // SIGTERM: a clean stop, after which nothing listens on the port.
    let (code, log) = server.stop();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("jwtgate: stopped"), "{log}");
    assert!(std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err());
}

#[test]
fn tls_mistakes_stop_the_server_before_it_writes_or_listens() {
    let cli = Cli::new();
    let garbage = cli.write("garbage.pem", "not a certificate\n");
    let cases = [
        (
            format!("tls_cert = \"{FIXTURES}/cert.pem\"\n"),
            "tls_cert and tls_key go together".to_owned(),
        ),
        (
            format!(
                "tls_cert = \"{}\"\ntls_key = \"{FIXTURES}/key.pem\"\n",
                garbage.display()
            ),
            format!("tls_cert {} holds no CERTIFICATE block", garbage.display()),
        ),
        (
            format!("tls_cert = \"{FIXTURES}/cert.pem\"\ntls_key = \"{FIXTURES}/cert.pem\"\n"),
            format!("tls_key {FIXTURES}/cert.pem holds no private key"),
        ),
        (
            format!("tls_cert = \"{FIXTURES}/ca.pem\"\ntls_key = \"{FIXTURES}/key.pem\"\n"),
            format!("tls_key {FIXTURES}/key.pem does not fit tls_cert {FIXTURES}/ca.pem"),
        ),
        (
            format!("tls_cert = \"{FIXTURES}/missing.pem\"\ntls_key = \"{FIXTURES}/key.pem\"\n"),
            format!("cannot read tls_cert {FIXTURES}/missing.pem"),
        ),
    ];
    for (server, want) in cases {
        let config = cli.write("bad.toml", &format!("[server]\n{server}"));
        let r = cli.run(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ]);
        assert_eq!(r.code, 2, "{server}: {r:?}");
        assert!(r.stderr.contains(&want), "{server}: {}", r.stderr);
        assert!(
            !cli.path("jwtgate-data").exists(),
            "{server}: the data directory was created"
        );
    }
}
