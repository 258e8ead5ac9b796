//! `POST /login` and `POST /totp/validate` over HTTP: Basic credentials, lifetimes, audiences,
//! the TOTP challenge (single use, expiring) and replayed codes; every failure's status and body.

use base64::Engine;

use crate::harness::{now, totp_of, Cli, Server};

fn basic(name_and_password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(name_and_password)
    )
}

fn login(server: &Server, credentials: &str, extra: &[(&str, &str)]) -> crate::harness::Response {
    let auth = basic(credentials);
    let mut headers = vec![("Authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    server.request("POST", "/login", &headers, "")
}

#[test]
fn login_returns_a_token_and_cookie_that_auth_accepts() {
    let cli = Cli::new();
    cli.run(&["user", "add", "ann:user:pa:ss"]).ok();
    let server = cli.serve(&[]);
    let r = login(&server, "ann:pa:ss", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let body = r.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["expire_seconds"], 3600);
    assert_eq!(body["profile"]["name"], "ann");
    let token = body["access_token"].as_str().unwrap();
    let expire_time = body["expire_time"].as_i64().unwrap();
    let auth_time = body["profile"]["auth_time"].as_i64().unwrap();
    assert_eq!(expire_time - auth_time, 3600);
    let cookie = r.header("set-cookie").unwrap();
    assert!(
        cookie.starts_with(&format!("jwtgate_session={token}; ")),
        "{cookie}"
    );
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let bearer = format!("Bearer {token}");
    let r = server.request("GET", "/auth", &[("Authorization", bearer.as_str())], "");
    assert_eq!((r.status, r.json()["user"].clone()), (200, "ann".into()));
}

#[test]
fn wrong_password_unknown_user_and_locked_user_get_the_same_401() {
    let cli = Cli::new();
    cli.run(&["user", "add", "ann:user:pw"]).ok();
    cli.run(&["user", "add", "bob:user:pw"]).ok();
    cli.run(&["user", "lock", "bob"]).ok();
    let server = cli.serve(&[]);
    let want = serde_json::json!({"error": "invalid_credentials", "message": "wrong user name or password"});
    let checks = || {
        let metrics = server.get("/metrics").body;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("jwtgate_password_checks_total "))
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    for credentials in ["ann:wrong", "nobody:pw", "bob:pw"] {
        let before = checks();
        let r = login(&server, credentials, &[]);
        assert_eq!((r.status, r.json()), (401, want.clone()), "{credentials}");
        // The same work for each: one argon2 check (a dummy hash for the unknown user), so
        // the answer takes as long whether or not the user exists.
        assert_eq!(checks() - before, 1, "{credentials}");
    }
    let r = server.request("POST", "/login", &[], "");
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, "missing_credentials".into())
    );
    let r = server.request("POST", "/login", &[("Authorization", "Bearer x")], "");
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, "malformed_authorization".into())
    );
}

#[test]
fn lifetimes_and_audiences_are_checked_against_the_configuration() {
    let cli = Cli::new();
    cli.run(&["user", "add", "ann:user:pw"]).ok();
    let config = cli.write(
        "jwtgate.toml",
        "[login]\nmax_expire_seconds = 7200\naudiences = [\"api\"]\n",
    );
    let server = cli.serve(&["--config", config.to_str().unwrap()]);
    let r = login(&server, "ann:pw", &[("X-Expire-Seconds", "7201")]);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        serde_json::json!({"error": "expire_seconds_too_long", "message": "X-Expire-Seconds 7201 is over the limit of 7200 seconds"})
    );
    let r = login(&server, "ann:pw", &[("X-Expire-Seconds", "soon")]);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, "invalid_expire_seconds".into())
    );
    let r = login(&server, "ann:pw", &[("X-Expire-Seconds", "60")]);
    assert_eq!((r.status, r.json()["expires_in"].clone()), (200, 60.into()));
    let r = login(&server, "ann:pw", &[("X-Audience", "web")]);
    assert_eq!(
        (r.status, r.json()["message"].clone()),
        (400, "X-Audience \"web\" is not one of [api]".into())
    );
    let r = login(&server, "ann:pw", &[("X-Audience", "api")]);
    assert_eq!(r.status, 200);
    let bearer = format!("Bearer {}", r.json()["access_token"].as_str().unwrap());
    let r = server.request("GET", "/auth", &[("Authorization", bearer.as_str())], "");
    assert_eq!(r.status, 200, "{r:?}");
}

/// The user's TOTP, read from the data directory as a test can (the secret is shown once).

#[test]
fn totp_users_get_a_single_use_challenge_and_codes_work_once() {
    let cli = Cli::new();
    cli.run(&["user", "add", "ann:user:pw"]).ok();
    cli.run(&["user", "totp", "enroll", "ann"]).ok();
    let totp = totp_of(&cli, "ann");
    let server = cli.serve(&[]);

    let r = login(&server, "ann:pw", &[]);
    assert_eq!(r.status, 428, "{r:?}");
    let body = r.json();
    assert_eq!(body["status"], "TOTP_CHALLENGE_REQUIRED");
    assert_eq!(
        (body["digits"].clone(), body["period"].clone()),
        (6.into(), 30.into())
    );
    // Answerable for the default three minutes.
    let expires = body["expires"].as_i64().unwrap();
    assert!((now() + 170..=now() + 180).contains(&expires), "{body}");
    let challenge = body["totp_challenge"].as_str().unwrap().to_owned();
    assert_eq!(
        r.header("www-authenticate"),
        Some(format!("TOTP challenge=\"{challenge}\"").as_str())
    );

    // A wrong code consumes the challenge too.
    let validate = |challenge: &str, code: &str| {
        let body =
            serde_json::json!({"user_name": "ann", "totp_code": code, "totp_challenge": challenge});
        server.request(
            "POST",
            "/totp/validate",
            &[("Content-Type", "application/json")],
            &body.to_string(),
        )
    };
    let wrong = if totp.code_at(now()) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let r = validate(&challenge, wrong);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, "totp_invalid".into())
    );
    let r = validate(&challenge, &totp.code_at(now()));
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, "invalid_challenge".into())
    );

    let challenge = login(&server, "ann:pw", &[]).json()["totp_challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = totp.code_at(now());
    let r = validate(&challenge, &code);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.json()["access_token"].is_string());
    // The same challenge again: refused. The same code again, directly: refused.
    let r = validate(&challenge, &code);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, "invalid_challenge".into())
    );
    let r = login(&server, "ann:pw", &[("X-Totp-Code", &code)]);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, "totp_replayed".into())
    );
    // One step, with a fresh code (the next time step's, within the ±1 step allowed).
    let next = totp.code_at(now() + 30);
    let r = login(&server, "ann:pw", &[("X-Totp-Code", &next)]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.json()["access_token"].is_string());
    let r = server.request("POST", "/totp/validate", &[], "{\"user_name\": ");
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, "malformed_json".into())
    );
}

#[test]
fn an_expired_totp_challenge_is_refused() {
    let cli = Cli::new();
    cli.run(&["user", "add", "ann:user:pw"]).ok();
    cli.run(&["user", "totp", "enroll", "ann"]).ok();
    let totp = totp_of(&cli, "ann");
    let config = cli.write("jwtgate.toml", "[login]\ntotp_challenge_seconds = 1\n");
    let server = cli.serve(&["--config", config.to_str().unwrap()]);
    let challenge = login(&server, "ann:pw", &[]).json()["totp_challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let body = serde_json::json!({"user_name": "ann", "totp_code": totp.code_at(now()), "totp_challenge": challenge});
    let r = server.request("POST", "/totp/validate", &[], &body.to_string());
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, "invalid_challenge".into())
    );
}

#[test]
fn logout_revokes_the_token_at_once_and_renew_replaces_it() {
    let cli = Cli::new();
    cli.run(&["user", "add", "ann:user:pw"]).ok();
    let server = cli.serve(&[]);
    let token_of =
        |r: crate::harness::Response| r.json()["access_token"].as_str().unwrap().to_owned();
    let auth = |token: &str| {
        let bearer = format!("Bearer {token}");
        server.request("GET", "/auth", &[("Authorization", bearer.as_str())], "")
    };

    // Renew: a new token of the same lifetime; the old one stops working at once.
    let old = token_of(login(&server, "ann:pw", &[("X-Expire-Seconds", "600")]));
    assert_eq!(auth(&old).status, 200);
    let bearer = format!("Bearer {old}");
    let r = server.request(
        "POST",
        "/token/renew",
        &[("Authorization", bearer.as_str())],
        "",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["expires_in"], 600);
    let new = token_of(r);
    assert_ne!(new, old);
    let r = auth(&old);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, "token_revoked".into())
    );
    assert_eq!(auth(&new).status, 200);

    // Logout: the token is denylisted at once, and the cookie cleared.
    let bearer = format!("Bearer {new}");
    let r = server.request("POST", "/logout", &[("Authorization", bearer.as_str())], "");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.json(),
        serde_json::json!({"success": true, "message": "logged out"})
    );
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    let r = auth(&new);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, "token_revoked".into())
    );
    // Logging out with a revoked token is a 401 too.
    let r = server.request("POST", "/logout", &[("Authorization", bearer.as_str())], "");
    assert_eq!(r.status, 401);
    // The denylist is in the store: the CLI sees it too.
    let out = cli.run(&["token", "verify", &new]);
    assert!(
        out.stdout.contains("invalid: token revoked (jti '"),
        "{out:?}"
    );
}

#[test]
fn failed_logins_are_throttled_per_user_and_per_address_with_retry_after() {
    let cli = Cli::new();
    cli.run(&["user", "add", "ann:user:pw"]).ok();
    let config = cli.write(
        "jwtgate.toml",
        "[login]\nmax_failures_per_user = 3\nmax_failures_per_ip = 6\nfailure_window_seconds = 5\n",
    );
    let server = cli.serve(&["--config", config.to_str().unwrap()]);
    for _ in 0..3 {
        assert_eq!(login(&server, "ann:wrong", &[]).status, 401);
    }
    // Even the right password waits now: the guesser cannot tell.
    let r = login(&server, "ann:pw", &[]);
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.json()["error"], "too_many_attempts");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=5).contains(&wait), "{wait}");
    std::thread::sleep(std::time::Duration::from_secs(wait));
    assert_eq!(
        login(&server, "ann:pw", &[]).status,
        200,
        "Retry-After is honoured"
    );

    // Per address: many names from one client.
    for name in ["a", "b", "c", "d", "e", "f"] {
        assert_eq!(login(&server, &format!("{name}:x"), &[]).status, 401);
    }
    let r = login(&server, "ann:pw", &[]);
    assert_eq!(r.status, 429, "{r:?}");
}

#[test]
fn an_oversized_body_gets_413_json() {
    let cli = Cli::new();
    cli.run(&["user", "add", "ann:user:pw"]).ok();
    let server = cli.serve(&[]);
    let body = format!("{{\"user_name\": \"{}\"}}", "a".repeat(70 * 1024));
    let r = server.request("POST", "/totp/validate", &[], &body);
    assert_eq!(r.status, 413, "{:?}", r.status);
    assert_eq!(
        r.json(),
        serde_json::json!({"error": "body_too_large", "message": "the request body is over the 65536-byte limit"})
    );
}

#[test]
fn a_token_can_be_renewed_once_and_keeps_its_audience() {
    let cli = Cli::new();
    cli.run(&["user", "add", "ann:user:pw"]).ok();
    let config = cli.write("jwtgate.toml", "[login]\naudiences = [\"app1\"]\n");
    let server = cli.serve(&["--config", config.to_str().unwrap()]);
    let r = login(&server, "ann:pw", &[("X-Audience", "app1")]);
    let token = r.json()["access_token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    let r = server.request(
        "POST",
        "/token/renew",
        &[("Authorization", bearer.as_str())],
        "",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let renewed = r.json()["access_token"].as_str().unwrap().to_owned();
    let out = cli
        .run(&["token", "verify", &renewed, "--aud", "app1"])
        .ok();
    assert!(out.contains("\"aud\": \"app1\""), "{out}");
    let r = server.request(
        "POST",
        "/token/renew",
        &[("Authorization", bearer.as_str())],
        "",
    );
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, "token_revoked".into())
    );
}

#[test]
fn behind_a_trusted_proxy_throttling_counts_the_forwarded_client_address() {
    let cli = Cli::new();
    cli.run(&["user", "add", "ann:user:pw"]).ok();
    let attempt = |server: &Server, user: &str, client: &str| {
        let auth = basic(&format!("{user}:wrong"));
        server
            .request(
                "POST",
                "/login",
                &[
                    ("Authorization", auth.as_str()),
                    ("X-Forwarded-For", client),
                ],
                "",
            )
            .status
    };
    let limits = "[login]\nmax_failures_per_ip = 3\nmax_failures_per_user = 100\n";
    let config = cli.write(
        "trusted.toml",
        &format!("[server]\ntrusted_proxies = [\"127.0.0.1\"]\n{limits}"),
    );
    let server = cli.serve(&["--config", config.to_str().unwrap()]);
    // Different user names, one client: the address is what gets throttled.
    let statuses: Vec<u16> = ["u1", "u2", "u3", "u4"]
        .iter()
        .map(|u| attempt(&server, u, "192.0.2.1"))
        .collect();
    assert_eq!(statuses, [401, 401, 401, 429]);
    assert_eq!(
        attempt(&server, "u5", "192.0.2.2"),
        401,
        "another client is not throttled"
    );
    // A forged address on the left does not escape: nginx appends the real one on the right.
    assert_eq!(attempt(&server, "u6", "203.0.113.7, 192.0.2.1"), 429);
    drop(server);

    // Without trusted proxies X-Forwarded-For is the client's own claim: ignored.
    let config = cli.write("direct.toml", limits);
    let server = cli.serve(&["--config", config.to_str().unwrap()]);
    let statuses: Vec<u16> = ["a", "b", "c", "d"]
        .iter()
        .zip(["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"])
        .map(|(u, client)| attempt(&server, u, client))
        .collect();
    assert_eq!(statuses, [401, 401, 401, 429]);
}
