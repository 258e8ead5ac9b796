//! Signed links (`/auth/jwt/set?token=…&then=…`, kube-gateway's flow): a gate token becomes
//! the gate cookie and the browser goes on to a path of this site; quotes around the token (as
//! `jq` prints it) are dropped; every way to send the browser elsewhere is refused, and session
//! tokens never travel in links.

use crate::harness::{eventually, Cli, Server};

fn setup() -> (Cli, Server, String) {
    let cli = Cli::new();
    cli.run(&["user", "add", "ann:user:pw"]).ok();
    let token = cli
        .run(&[
            "gatetoken",
            "create",
            "vm1",
            "--url",
            "/k8s/vm1/*",
            "--user",
            "ann",
        ])
        .ok()
        .trim()
        .to_owned();
    let config = cli.write(
        "jwtgate.toml",
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n",
    );
    let server = cli.serve_with_env(
        &["--config", config.to_str().unwrap()],
        &[("JWTGATE_LOG", "debug")],
    );
    (cli, server, token)
}

#[test]
fn a_signed_link_sets_the_gate_cookie_and_redirects_to_a_local_path() {
    let (_cli, server, token) = setup();
    let then = "/noVNC/vnc_lite.html?path=k8s/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachineinstances/vm1/vnc";
    // As a browser sends the seed's link: jq's quotes percent-encoded.
    let link = format!("/auth/jwt/set?token=%22{token}%22&then={then}");
    let r = server.get(&link);
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(r.header("location"), Some(then));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let cookie = r.header("set-cookie").unwrap();
    let want = format!("jwtgate_gate={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age=");
    assert!(cookie.starts_with(&want), "{cookie}");
    let max_age: i64 = cookie.rsplit("Max-Age=").next().unwrap().parse().unwrap();
    assert!((3590..=3600).contains(&max_age), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP from a direct client: {cookie}"
    );
    // /auth takes the cookie for the token's paths.
    let gate = format!("jwtgate_gate={token}");
    let r = server.request(
        "GET",
        "/auth",
        &[
            ("Cookie", gate.as_str()),
            ("X-Original-URI", "/k8s/vm1/vnc"),
            ("X-Original-Method", "GET"),
        ],
        "",
    );
    assert_eq!(
        (r.status, r.header("x-auth-user")),
        (200, Some("ann")),
        "{r:?}"
    );

    // Behind a trusted proxy that says the client came over HTTPS, the cookie is Secure.
    let r = server.request("GET", &link, &[("X-Forwarded-Proto", "https")], "");
    assert!(
        r.header("set-cookie").unwrap().ends_with("; Secure"),
        "{r:?}"
    );

    // The form version keeps the token out of the URL; no `then` goes to /.
    let r = server.request(
        "POST",
        "/auth/jwt/set",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &format!("token={token}"),
    );
    assert_eq!((r.status, r.header("location")), (302, Some("/")), "{r:?}");

    // The log never holds the link's query (the token) or any part of the signature.
    let (_, log) = server.stop();
    let signature = token.rsplit('.').next().unwrap();
    for part in [token.as_str(), signature, &signature[..16]] {
        assert!(!log.contains(part), "{part}: {log}");
    }
    assert!(log.contains("signed link used user=\"ann\""), "{log}");
}

#[test]
fn open_redirects_bad_tokens_and_session_tokens_are_refused_without_a_cookie() {
    let (cli, server, token) = setup();
    for then in [
        "https://evil.example/",
        "//evil.example/",
        "/%5Cevil.example/",
        "%2F%2Fevil.example",
        "javascript:alert(1)",
        "evil.example",
        "/%09/evil.example",
        "/%0A/evil.example",
        "/..//evil.example",
        "/.//evil.example",
    ] {
        let r = server.get(&format!("/auth/jwt/set?token={token}&then={then}"));
        assert_eq!(
            (r.status, r.json()["error"].as_str().unwrap()),
            (400, "invalid_redirect"),
            "{then}: {r:?}"
        );
        assert_eq!(r.header("set-cookie"), None, "{then}");
        assert_eq!(r.header("location"), None, "{then}");
    }
    // One signature character changed (not the last: its low bits must stay zero).
    let at = token.len() - 5;
    let swap = if &token[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{swap}{}", &token[..at], &token[at + 1..]);
    for (query, code) in [
        (format!("token={tampered}&then=/"), "bad_signature"),
        ("token=&then=/".to_owned(), "missing_token"),
        ("then=/".to_owned(), "missing_token"),
        ("token=a.b&then=/".to_owned(), "malformed_segments"),
    ] {
        let r = server.get(&format!("/auth/jwt/set?{query}"));
        assert_eq!(r.status, 401, "{query}: {r:?}");
        assert_eq!(r.json()["error"], code, "{query}");
        assert_eq!(r.header("set-cookie"), None, "{query}");
    }
    // A session or API token never travels in a link.
    let session = cli.run(&["token", "issue", "ann"]).ok();
    let r = server.get(&format!("/auth/jwt/set?token={}&then=/", session.trim()));
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (403, Some("not_a_gate_token"))
    );
    assert_eq!(r.header("set-cookie"), None);
    // A deleted gate token opens nothing either.
    cli.run(&["gatetoken", "del", "vm1"]).ok();
    let r = eventually(
        "the deletion",
        || server.get(&format!("/auth/jwt/set?token={token}&then=/")),
        |r| r.status == 401,
    );
    assert_eq!(r.json()["error"], "token_revoked");
    assert_eq!(r.header("set-cookie"), None);
}
