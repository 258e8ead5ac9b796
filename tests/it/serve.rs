//! `jwtgate serve` over HTTP: the published keys verify tokens the CLI issues, a key rotation
//! reaches a running server, errors are JSON, and SIGTERM stops it cleanly.

use std::time::Duration;

use jwtgate_core::key::Jwks;
use jwtgate_core::{verify, KeySet, Rules};

use crate::harness::{eventually, now, Cli};

fn keyset_from(jwks: &str) -> KeySet {
    let jwks: Jwks = serde_json::from_str(jwks).unwrap();
    let (keys, skipped) = jwks.to_keys(None);
    assert!(skipped.is_empty(), "{skipped:?}");
    KeySet::new(keys).unwrap()
}

#[test]
fn the_published_jwks_verifies_a_token_the_cli_issued() {
    let cli = Cli::new();
    cli.run(&["user", "add", "bot:api:pw"]).ok();
    let token = cli.run(&["token", "issue", "bot"]).ok();
    let server = cli.serve(&[]);
    for path in ["/.well-known/jwks.json", "/jwks"] {
        let r = server.get(path);
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("content-type"), Some("application/jwk-set+json"));
        assert_eq!(r.header("cache-control"), Some("public, max-age=300"));
        assert!(!r.body.contains("\"d\""), "private members: {}", r.body);
        let keys = keyset_from(&r.body);
        let verified = verify(
            token.trim(),
            &keys,
            &Rules::default().issuer("jwtgate"),
            now(),
        )
        .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(verified.claims.sub(), Some("bot"));
    }
    let discovery = server.get("/.well-known/openid-configuration").json();
    assert_eq!(discovery["issuer"], "jwtgate");
    assert_eq!(
        discovery["jwks_uri"],
        format!("http://{}/.well-known/jwks.json", server.addr)
    );
    assert_eq!(
        discovery["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
}

#[test]
fn a_key_rotation_by_the_cli_reaches_a_running_server() {
    let cli = Cli::new();
    // A token signed with the first key keeps it published after the rotation.
    cli.run(&["user", "add", "bot:api:pw"]).ok();
    cli.run(&["token", "issue", "bot"]).ok();
    let server = cli.serve(&[]);
    let count = |body: &str| keyset_from(body).keys().len();
    assert_eq!(count(&server.get("/jwks").body), 1);
    cli.run(&["key", "rotate", "--alg", "EdDSA"]).ok();
    let body = eventually(
        "the rotation",
        || server.get("/jwks").body,
        |body| count(body) == 2,
    );
    assert!(body.contains("\"OKP\""), "{body}");
}

#[test]
fn errors_are_json_with_the_right_status() {
    let cli = Cli::new();
    let server = cli.serve(&[]);
    let r = server.get("/nope");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        serde_json::json!({"error": "not_found", "message": "no route for GET /nope"})
    );
    let r = server.request("POST", "/healthz", &[], "");
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["error"], "method_not_allowed");
    assert_eq!(
        server.get("/healthz").json(),
        serde_json::json!({"status": "ok"})
    );
    assert_eq!(
        server.get("/readyz").json(),
        serde_json::json!({"status": "ready"})
    );
}

#[test]
fn the_api_prefix_moves_the_api_routes_but_not_the_well_known_ones() {
    let cli = Cli::new();
    let config = cli.write("jwtgate.toml", "[server]\napi_prefix = \"/appmesh\"\n");
    let server = cli.serve(&["--config", config.to_str().unwrap()]);
    assert_eq!(server.get("/appmesh/jwks").status, 200);
    assert_eq!(server.get("/jwks").status, 404);
    assert_eq!(server.get("/.well-known/jwks.json").status, 200);
    assert_eq!(server.get("/healthz").status, 200);
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let cli = Cli::new();
    let server = cli.serve(&[]);
    assert_eq!(server.get("/healthz").status, 200);
    let (code, log) = server.stop();
    assert_eq!(code, 0, "{log}");
    assert!(log.ends_with("jwtgate: stopped\n"), "{log}");
}

#[test]
fn a_bad_config_file_is_a_usage_error_in_one_line() {
    let cli = Cli::new();
    let config = cli.write("bad.toml", "[server]\nlisten_on = \"x\"\n");
    let r = cli.run(&["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("bad.toml") && r.stderr.contains("unknown field `listen_on`"),
        "{}",
        r.stderr
    );
}

#[test]
fn auth_accepts_a_valid_token_from_every_place_it_may_come_from() {
    let cli = Cli::new();
    cli.run(&["user", "add", "bot:api:pw"]).ok();
    let token = cli.run(&["token", "issue", "bot"]).ok();
    let token = token.trim();
    let server = cli.serve(&[]);
    let bearer = format!("Bearer {token}");
    let cookie = format!("theme=dark; jwtgate_session={token}");
    for headers in [
        vec![("Authorization", bearer.as_str())],
        vec![("Authorization", token)],
        vec![("X-Auth-Token", token)],
        vec![("Cookie", cookie.as_str())],
    ] {
        // Envoy checks with the request's own method, at /auth + the request path.
        for (method, path) in [
            ("GET", "/auth"),
            ("POST", "/auth"),
            ("GET", "/auth/app/page"),
            ("PUT", "/auth/app/page"),
            ("DELETE", "/auth/app/page"),
            ("PATCH", "/auth/app/page"),
            ("OPTIONS", "/auth/app/page"),
        ] {
            let r = server.request(method, path, &headers, "");
            assert_eq!(r.status, 200, "{headers:?}: {r:?}");
            assert_eq!(
                r.json(),
                serde_json::json!({"permission": null, "success": true, "user": "bot"})
            );
            assert_eq!(r.header("x-auth-user"), Some("bot"));
            assert_eq!(r.header("x-auth-roles"), Some("api"));
        }
    }
}

#[test]
fn auth_refuses_missing_and_bad_tokens_with_a_bearer_challenge() {
    let cli = Cli::new();
    let server = cli.serve(&[]);
    let r = server.get("/auth");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(r.json()["error"], "missing_token");
    let r = server.request("GET", "/auth", &[("Authorization", "Bearer a.b")], "");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\", error_description=\"token must have 3 dot-separated segments, found 2\"")
    );
    assert_eq!(
        r.json(),
        serde_json::json!({"error": "malformed_segments", "message": "token must have 3 dot-separated segments, found 2"})
    );
}

#[test]
fn auth_checks_permissions_against_the_users_current_roles() {
    let cli = Cli::new();
    cli.run(&["role", "set", "ops", "vm.console"]).ok();
    cli.run(&["user", "add", "ann:ops:pw"]).ok();
    let token = cli.run(&["token", "issue", "ann"]).ok();
    let bearer = format!("Bearer {}", token.trim());
    let server = cli.serve(&[]);
    let auth = [("Authorization", bearer.as_str())];
    let with = |permission: &str| {
        let mut headers = auth.to_vec();
        headers.push(("X-Permission", permission));
        server.request("GET", "/auth", &headers, "")
    };
    let r = with("vm.console");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["permission"], "vm.console");
    let r = with("vm.delete");
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json(),
        serde_json::json!({"error": "permission_denied", "message": "user 'ann' lacks the permission 'vm.delete'"})
    );
    let r = server.request("GET", "/auth?permission=vm.console", &auth, "");
    assert_eq!(r.status, 200);
}

#[test]
fn a_lock_by_the_cli_reaches_auth_on_a_running_server() {
    let cli = Cli::new();
    cli.run(&["user", "add", "bot:api:pw"]).ok();
    let token = cli.run(&["token", "issue", "bot"]).ok();
    let bearer = format!("Bearer {}", token.trim());
    let server = cli.serve(&[]);
    let auth = [("Authorization", bearer.as_str())];
    // Twice: the second answer comes from the verdict cache.
    assert_eq!(server.request("GET", "/auth", &auth, "").status, 200);
    assert_eq!(server.request("GET", "/auth", &auth, "").status, 200);
    cli.run(&["user", "lock", "bot"]).ok();
    let r = eventually(
        "the lock",
        || server.request("GET", "/auth", &auth, ""),
        |r| r.status == 401,
    );
    assert_eq!(r.json()["error"], "user_locked");
}

#[test]
fn metrics_count_requests_checks_cache_hits_and_login_failures() {
    let cli = Cli::new();
    cli.run(&["user", "add", "bot:api:pw"]).ok();
    let token = cli.run(&["token", "issue", "bot"]).ok();
    let bearer = format!("Bearer {}", token.trim());
    let server = cli.serve(&[]);
    let auth = [("Authorization", bearer.as_str())];
    server.request("GET", "/auth", &auth, "");
    server.request("GET", "/auth", &auth, "");
    server.request("GET", "/auth", &[("Authorization", "Bearer x.y")], "");
    server.request(
        "POST",
        "/login",
        &[("Authorization", "Basic Ym90Ondyb25n")],
        "",
    );
    let r = server.get("/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4"));
    for line in [
        "jwtgate_http_requests_total{route=\"/auth\",status=\"200\"} 2",
        "jwtgate_http_requests_total{route=\"/auth\",status=\"401\"} 1",
        "jwtgate_http_requests_total{route=\"/login\",status=\"401\"} 1",
        "jwtgate_token_checks_total{outcome=\"accepted\"} 2",
        "jwtgate_token_checks_total{outcome=\"malformed_segments\"} 1",
        "jwtgate_auth_cache_hits_total 1",
        "jwtgate_login_failures_total 1",
    ] {
        assert!(r.body.lines().any(|l| l == line), "{line} in\n{}", r.body);
    }
}

#[test]
fn a_client_cannot_drop_or_replace_a_permission_the_proxy_asks_for() {
    let cli = Cli::new();
    cli.run(&["role", "set", "ops", "vm.view"]).ok();
    cli.run(&["user", "add", "ann:ops:pw"]).ok();
    let token = cli.run(&["token", "issue", "ann"]).ok();
    let bearer = format!("Bearer {}", token.trim());
    let server = cli.serve(&[]);
    // The proxy asks for vm.console in the query; the client adds its own header.
    let with = |extra: Option<&str>| {
        let mut headers = vec![("Authorization", bearer.as_str())];
        if let Some(value) = extra {
            headers.push(("X-Permission", value));
        }
        server.request("GET", "/auth?permission=vm.console", &headers, "")
    };
    assert_eq!(with(None).status, 403);
    assert_eq!(with(Some("vm.view")).status, 403, "both must be held");
    let r = with(Some(""));
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, "invalid_permission".into())
    );
    let r = server.request(
        "GET",
        "/auth?permission=a&permission=b",
        &[("Authorization", bearer.as_str())],
        "",
    );
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, "invalid_query".into())
    );
}

#[test]
fn discovery_never_reflects_a_host_header_that_is_not_a_plain_host() {
    let cli = Cli::new();
    let server = cli.serve(&[]);
    let r = server.request(
        "GET",
        "/.well-known/openid-configuration",
        &[("Host", "evil.example@attacker.test:1")],
        "",
    );
    let uri = r.json()["jwks_uri"].as_str().unwrap().to_owned();
    assert!(!uri.contains("attacker"), "{uri}");
    assert_eq!(r.header("vary"), Some("Host"));
}

#[test]
fn logs_name_tokens_by_jti_or_fingerprint_and_never_hold_a_token_or_password() {
    use base64::Engine;
    let cli = Cli::new();
    cli.run(&["user", "add", "ann:user:S3cret-PW"]).ok();
    let server = cli.serve_with_env(&[], &[("JWTGATE_LOG", "debug")]);
    let basic = |credentials: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
    };
    let r = server.request(
        "POST",
        "/login",
        &[("Authorization", basic("ann:S3cret-PW").as_str())],
        "",
    );
    let token = r.json()["access_token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    assert_eq!(
        server
            .request("GET", "/auth", &[("Authorization", bearer.as_str())], "")
            .status,
        200
    );
    // One signature character changed (not the last, so the base64 stays canonical).
    let at = token.len() - 5;
    let swap = if &token[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{swap}{}", &token[..at], &token[at + 1..]);
    let bad = format!("Bearer {tampered}");
    assert_eq!(
        server
            .request("GET", "/auth", &[("Authorization", bad.as_str())], "")
            .status,
        401
    );
    let query = format!("/auth?permission=x&token={token}");
    server.request("GET", &query, &[("Authorization", bearer.as_str())], "");
    server.request(
        "POST",
        "/login",
        &[("Authorization", basic("ann:wrong-PW").as_str())],
        "",
    );
    assert_eq!(
        server
            .request("POST", "/logout", &[("Authorization", bearer.as_str())], "")
            .status,
        200
    );
    let (_, log) = server.stop();

    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    let jti = claims["jti"].as_str().unwrap();
    for secret in [
        token.as_str(),
        tampered.as_str(),
        payload,
        "S3cret-PW",
        "wrong-PW",
        jti,
    ] {
        assert!(!log.contains(secret), "the log holds {secret:?}:\n{log}");
    }
    let fingerprint = jwtgate_core::fingerprint(&tampered);
    for wanted in [
        format!("token issued user=\"ann\" jti=\"{}\"", &jti[..8]),
        format!("token refused token={fingerprint} reason="),
        "login refused user=\"ann\"".to_owned(),
        format!("token revoked user=\"ann\" jti=\"{}\"", &jti[..8]),
        "request method=GET route=\"/auth\" status=200".to_owned(),
    ] {
        assert!(log.contains(&wanted), "no {wanted:?} in:\n{log}");
    }
}

#[test]
fn the_verdict_cache_answers_repeats_unless_switched_off() {
    let cli = Cli::new();
    cli.run(&["user", "add", "bot:api:pw"]).ok();
    let token = cli.run(&["token", "issue", "bot"]).ok();
    let bearer = format!("Bearer {}", token.trim());
    let hits = |server: &crate::harness::Server| {
        for _ in 0..3 {
            let r = server.request("GET", "/auth", &[("Authorization", bearer.as_str())], "");
            assert_eq!(r.status, 200, "{r:?}");
        }
        let metrics = server.get("/metrics").body;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("jwtgate_auth_cache_hits_total "))
            .unwrap_or_else(|| panic!("no cache counter in {metrics}"))
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(hits(&cli.serve(&[])), 2);
    // Switched off through the environment, which overrides the (absent) config file.
    let off = cli.serve_with_env(&[], &[("JWTGATE_SERVER_VERDICT_CACHE", "false")]);
    assert_eq!(hits(&off), 0);
}

#[test]
fn environment_overrides_reach_the_server_and_mistakes_name_the_variable() {
    let cli = Cli::new();
    cli.run(&["user", "add", "bot:api:pw"]).ok();
    let server = cli.serve_with_env(&[], &[("JWTGATE_SERVER_API_PREFIX", "/appmesh")]);
    assert_eq!(server.get("/appmesh/jwks").status, 200);
    assert_eq!(server.get("/jwks").status, 404);
    drop(server);
    let r = cli.run_with_env(
        &["serve", "--listen", "127.0.0.1:0"],
        &[("JWTGATE_LOGIN_MAX_EXPIRE_SECONDS", "soon")],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("JWTGATE_LOGIN_MAX_EXPIRE_SECONDS: invalid type"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_cached_verdict_ends_at_the_tokens_exp() {
    let cli = Cli::new();
    cli.run(&["user", "add", "bot:api:pw"]).ok();
    let token = cli.run(&["token", "issue", "bot", "--ttl", "2s"]).ok();
    let bearer = format!("Bearer {}", token.trim());
    let config = cli.write("jwtgate.toml", "[server]\nleeway_seconds = 0\n");
    let server = cli.serve(&["--config", config.to_str().unwrap()]);
    let auth = || server.request("GET", "/auth", &[("Authorization", bearer.as_str())], "");
    assert_eq!(auth().status, 200);
    assert_eq!(auth().status, 200, "the second answer comes from the cache");
    assert!(server
        .get("/metrics")
        .body
        .contains("jwtgate_auth_cache_hits_total 1"));
    std::thread::sleep(Duration::from_millis(3100));
    let r = auth();
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, "expired".into()),
        "{r:?}"
    );
}

#[test]
fn readyz_answers_503_while_the_store_cannot_be_read() {
    let cli = Cli::new();
    cli.run(&["user", "add", "bot:api:pw"]).ok();
    let server = cli.serve(&[]);
    assert_eq!(server.get("/readyz").status, 200);
    let data = cli.path("jwtgate-data");
    let moved = cli.path("moved-away");
    std::fs::rename(&data, &moved).unwrap();
    let r = server.get("/readyz");
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (503, "store_unavailable".into()),
        "{r:?}"
    );
    assert_eq!(
        server.get("/healthz").status,
        200,
        "the process itself is fine"
    );
    std::fs::rename(&moved, &data).unwrap();
    assert_eq!(server.get("/readyz").status, 200);
}

#[test]
fn a_gateway_config_mistake_stops_serve_with_the_file_and_line() {
    let cli = Cli::new();
    let config = cli.write(
        "gateway.toml",
        "[[route]]\nprefix = \"/a\"\nstatic_dir = \"/srv\"\n\n[[route]]\nprefix = \"/a/\"\nupstream = \"http://127.0.0.1:9\"\n",
    );
    let r = cli.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    let want = format!(
        "{}:5: [[route]] 2 (prefix \"/a/\"): another route has the same prefix",
        config.display()
    );
    assert!(r.stderr.contains(&want), "{}", r.stderr);
    assert!(!cli.path("jwtgate-data").exists(), "nothing written");
}

#[test]
fn token_verify_fetches_a_jwks_over_http() {
    let cli = Cli::new();
    cli.run(&["user", "add", "bot:api:pw"]).ok();
    let token = cli.run(&["token", "issue", "bot"]).ok();
    let server = cli.serve(&[]);
    // Another directory: only the URL connects the two.
    let other = Cli::new();
    let url = format!("http://{}/.well-known/jwks.json", server.addr);
    let r = other.run(&[
        "token",
        "verify",
        token.trim(),
        "--jwks",
        &url,
        "--iss",
        "jwtgate",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.trim_end().ends_with("valid"), "{}", r.stdout);
    drop(server);
    let r = other.run(&["token", "verify", token.trim(), "--jwks", &url]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.starts_with(&format!("error: --jwks {url}: ")),
        "{}",
        r.stderr
    );
}
