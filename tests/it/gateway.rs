//! The gateway end to end: `jwtgate serve` with `[[route]]` and `[[provider]]` tables in front
//! of real upstreams (a mirror that shows what it was sent, a websocket echo, jwtgate itself
//! over HTTPS), driven over HTTP and websockets as a user would.

use std::time::Duration;

use jwtgate_core::{sign, Key};
use serde_json::{json, Value};

use crate::harness::{free_port, mirror_upstream, now, Cli, Response, Server};

const VNC: &str = "/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachineinstances/vm1/vnc";

/// Starts `serve` with `config` written to gateway.toml.
fn serve(cli: &Cli, config: &str) -> Server {
    let path = cli.write("gateway.toml", config);
    cli.serve(&["--config", crate::harness::s(&path)])
}

fn error_of(r: &Response) -> String {
    r.json()["error"].as_str().unwrap_or_default().to_owned()
}

/// What the mirror upstream was sent: its request line, and its headers (lower-case names).
fn sent(r: &Response) -> (String, Vec<(String, String)>) {
    assert_eq!(r.status, 200, "{r:?}");
    let mut lines = r.body.lines();
    let line = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (line, headers)
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn user_token(cli: &Cli, user: &str) -> String {
    cli.run(&["token", "issue", user]).ok().trim().to_owned()
}

#[test]
fn a_protected_route_passes_on_only_what_the_upstream_should_see() {
    let cli = Cli::new();
    cli.run(&["role", "set", "viewer", "app-view"]).ok();
    cli.run(&["user", "add", "ann:viewer:annpw"]).ok();
    cli.run(&["user", "add", "bob:user:bobpw"]).ok();
    let upstream = mirror_upstream();
    let server = serve(
        &cli,
        &format!(
            "[[route]]\nprefix = \"/app/\"\nupstream = \"http://127.0.0.1:{upstream}/base\"\nstrip_prefix = true\nproviders = [\"self\"]\nrequire_permissions = [\"app-view\"]\n"
        ),
    );
    let ann = user_token(&cli, "ann");
    let bearer = format!("Bearer {ann}");
    // Another cookie with non-ASCII bytes (browsers send them raw) must not hide jwtgate's.
    let session = format!("theme=dark; lang=café; jwtgate_session={ann}");

    let r = server.request(
        "GET",
        "/app/items/1?q=x",
        &[
            ("Authorization", bearer.as_str()),
            ("X-Auth-User", "admin"),
            ("X-Auth-Roles", "admin"),
            ("X_Auth_User", "admin"),
            ("Cookie", session.as_str()),
            // Hop-by-hop, named by Connection, or naming another client: none goes on.
            ("Connection", "X-Hop"),
            ("X-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("Forwarded", "for=6.6.6.6"),
            ("X-Real-IP", "6.6.6.6"),
            ("X-Kept", "yes"),
        ],
        "",
    );
    let (line, headers) = sent(&r);
    for name in [
        "x-hop",
        "keep-alive",
        "proxy-connection",
        "forwarded",
        "x-real-ip",
    ] {
        assert_eq!(header(&headers, name), None, "{name} reached the upstream");
    }
    assert_eq!(header(&headers, "x-kept"), Some("yes"));
    assert_eq!(
        line, "GET /base/items/1?q=x HTTP/1.1",
        "strip_prefix onto the base"
    );
    assert_eq!(
        header(&headers, "x-auth-user"),
        Some("ann"),
        "not the forged one"
    );
    assert_eq!(header(&headers, "x-auth-roles"), Some("viewer"));
    assert_eq!(header(&headers, "x-auth-provider"), Some("self"));
    assert_eq!(
        header(&headers, "authorization"),
        None,
        "jwtgate's token stays"
    );
    assert_eq!(
        header(&headers, "cookie"),
        Some("theme=dark; lang=café"),
        "its cookies too"
    );
    assert_eq!(
        header(&headers, "x_auth_user"),
        None,
        "CGI would read it as X-Auth-User"
    );
    assert_eq!(header(&headers, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(header(&headers, "x-forwarded-proto"), Some("http"));
    assert_eq!(
        header(&headers, "host"),
        Some(format!("127.0.0.1:{upstream}").as_str())
    );
    assert!(
        !r.body.contains(&ann),
        "the token never reaches the upstream"
    );

    // Missing token: 401 with the realm and no error; a bad one: error="invalid_token".
    let r = server.get("/app/items");
    assert_eq!((r.status, error_of(&r).as_str()), (401, "missing_token"));
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"jwtgate\"")
    );
    let r = server.request(
        "GET",
        "/app/items",
        &[("Authorization", "Bearer a.b.c")],
        "",
    );
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer realm=\"jwtgate\", error=\"invalid_token\", error_description="));
    // Valid token, missing permission: 403 naming it.
    let bob = format!("Bearer {}", user_token(&cli, "bob"));
    let r = server.request("GET", "/app/items", &[("Authorization", bob.as_str())], "");
    assert_eq!(
        (r.status, error_of(&r).as_str()),
        (403, "permission_denied")
    );
    assert!(r.json()["message"].as_str().unwrap().contains("app-view"));
    // Two different tokens: refused, whichever the upstream would have read.
    let cookie = format!("jwtgate_session={}", user_token(&cli, "bob"));
    let r = server.request(
        "GET",
        "/app/items",
        &[
            ("Authorization", bearer.as_str()),
            ("Cookie", cookie.as_str()),
        ],
        "",
    );
    assert_eq!((r.status, error_of(&r).as_str()), (400, "ambiguous_token"));
    // The same token twice is one token.
    let cookie = format!("jwtgate_session={ann}");
    let r = server.request(
        "GET",
        "/app/items",
        &[
            ("Authorization", bearer.as_str()),
            ("Cookie", cookie.as_str()),
        ],
        "",
    );
    assert_eq!(r.status, 200, "{r:?}");
    // A revoked token stops at once.
    cli.run(&["token", "revoke", "--user", "ann"]).ok();
    crate::harness::eventually(
        "the revocation reaches the gateway",
        || {
            server
                .request(
                    "GET",
                    "/app/items",
                    &[("Authorization", bearer.as_str())],
                    "",
                )
                .status
        },
        |status| *status == 401,
    );
    // A gate token opens gate_scope routes only, whatever paths it names.
    cli.run(&["user", "add", "gate-maker:admin:gm-pw"]).ok();
    let gate = cli
        .run(&[
            "gatetoken",
            "create",
            "any",
            "--url",
            "/*",
            "--user",
            "gate-maker",
        ])
        .ok();
    let gate_bearer = format!("Bearer {}", gate.trim());
    let r = server.request(
        "GET",
        "/app/items",
        &[("Authorization", gate_bearer.as_str())],
        "",
    );
    assert_eq!(
        (r.status, error_of(&r).as_str()),
        (403, "gate_token_refused")
    );
    // A websocket upgrade on a route without websocket = true.
    let r = server.request(
        "GET",
        "/app/ws",
        &[
            ("Authorization", bearer.as_str()),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ],
        "",
    );
    assert_eq!(
        (r.status, error_of(&r).as_str()),
        (400, "websocket_not_enabled")
    );
    // A dot segment with parameters (Tomcat reads `..;` as `..`), CONNECT and TRACE: refused.
    let r = server.request(
        "GET",
        "/app/x/..;/y",
        &[("Authorization", bearer.as_str())],
        "",
    );
    assert_eq!((r.status, error_of(&r).as_str()), (400, "path_refused"));
    let r = server.request("TRACE", "/app/x", &[("Authorization", bearer.as_str())], "");
    assert_eq!(r.status, 405);
    // API routes are not shadowed, and paths outside every route are 404.
    assert_eq!(server.get("/healthz").status, 200);
    let r = server.get("/nowhere");
    assert_eq!((r.status, error_of(&r).as_str()), (404, "not_found"));
    let metrics = server.get("/metrics").body;
    assert!(
        metrics.contains("jwtgate_http_requests_total{route=\"gateway /app\",status=\"200\"}"),
        "{metrics}"
    );
}

#[test]
fn an_unreachable_upstream_is_502_and_a_silent_one_504() {
    let cli = Cli::new();
    let down = free_port();
    // Accepts connections (the kernel's backlog) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let server = serve(
        &cli,
        &format!(
            "[[route]]\nprefix = \"/down\"\nupstream = \"http://127.0.0.1:{down}\"\n\n[[route]]\nprefix = \"/silent\"\nupstream = \"http://127.0.0.1:{silent_port}\"\ntimeout = \"300ms\"\n"
        ),
    );
    let r = server.get("/down/x");
    assert_eq!(
        (r.status, error_of(&r).as_str()),
        (502, "upstream_unavailable")
    );
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("could not be reached"));
    let r = server.get("/silent/x");
    assert_eq!((r.status, error_of(&r).as_str()), (504, "upstream_timeout"));
    assert!(r.json()["message"].as_str().unwrap().contains("300ms"));
    drop(silent);
}

/// A provider's key and a token it signed.
fn external_token(key: &Key, claims: Value) -> String {
    sign(claims.as_object().unwrap(), key).unwrap()
}

#[test]
fn providers_keep_their_keys_apart_and_strip_their_tokens_when_told() {
    let cli = Cli::new();
    // Two issuers whose keys share a kid: one's token must never pass the other's route.
    let corp = crate::jwks::key("k1");
    let partner = crate::jwks::key("k1");
    cli.write("corp.json", &crate::jwks::jwks_of(&[&corp]));
    let upstream = mirror_upstream();
    let inline = crate::jwks::jwks_of(&[&partner]).replace('\n', "");
    let server = serve(
        &cli,
        &format!(
            r#"[[provider]]
name = "corp"
jwks_file = "corp.json"
issuer = "https://corp.example"
audiences = ["api"]
from = ["header:Authorization:Bearer", "query:access_token", "cookie:corp_token"]
claims_to_headers = {{ "X-Email" = "email", "X-Groups" = "groups" }}

[[provider]]
name = "partner"
jwks = '{inline}'
forward = true

[[route]]
prefix = "/corp"
upstream = "http://127.0.0.1:{upstream}"
providers = ["corp"]
require_roles = ["reader"]

[[route]]
prefix = "/partner"
upstream = "http://127.0.0.1:{upstream}"
providers = ["partner"]
"#
        ),
    );
    let exp = now() + 600;
    let good = external_token(
        &corp,
        json!({"iss": "https://corp.example", "aud": "api", "sub": "carol", "exp": exp,
               "roles": ["reader"], "email": "carol@corp.example", "groups": ["a", "b"]}),
    );
    let bearer = format!("Bearer {good}");
    let r = server.request(
        "GET",
        &format!("/corp/x?access_token={good}&page=2"),
        &[
            ("X-Email", "forged@evil"),
            ("Authorization", bearer.as_str()),
            ("Cookie", format!("corp_token={good}; keep=1").as_str()),
        ],
        "",
    );
    let (line, headers) = sent(&r);
    assert_eq!(
        header(&headers, "cookie"),
        Some("keep=1"),
        "the cookie token is removed"
    );
    assert_eq!(
        line, "GET /corp/x?page=2 HTTP/1.1",
        "the query token is removed"
    );
    assert_eq!(header(&headers, "authorization"), None, "forward = false");
    assert_eq!(header(&headers, "x-email"), Some("carol@corp.example"));
    assert_eq!(header(&headers, "x-groups"), Some("a,b"));
    assert_eq!(header(&headers, "x-auth-user"), Some("carol"));
    assert_eq!(header(&headers, "x-auth-provider"), Some("corp"));

    for (claims, code) in [
        (
            json!({"iss": "https://other", "aud": "api", "sub": "c", "exp": exp, "roles": ["reader"]}),
            "issuer_mismatch",
        ),
        (
            json!({"iss": "https://corp.example", "aud": "web", "sub": "c", "exp": exp, "roles": ["reader"]}),
            "audience_mismatch",
        ),
        (
            json!({"iss": "https://corp.example", "aud": "api", "sub": "c", "exp": now() - 100, "roles": ["reader"]}),
            "expired",
        ),
    ] {
        let token = format!("Bearer {}", external_token(&corp, claims));
        let r = server.request("GET", "/corp/x", &[("Authorization", token.as_str())], "");
        assert_eq!((r.status, error_of(&r)), (401, code.to_owned()), "{r:?}");
    }
    let no_role = format!(
        "Bearer {}",
        external_token(
            &corp,
            json!({"iss": "https://corp.example", "aud": "api", "sub": "c", "exp": exp})
        )
    );
    let r = server.request("GET", "/corp/x", &[("Authorization", no_role.as_str())], "");
    assert_eq!((r.status, error_of(&r).as_str()), (403, "role_missing"));

    // The partner's token (same kid, other key) on corp's route, and corp's on the partner's.
    let partner_token = external_token(
        &partner,
        json!({"iss": "https://corp.example", "sub": "p", "exp": exp, "roles": ["reader"]}),
    );
    let r = server.request(
        "GET",
        "/corp/x",
        &[("Authorization", format!("Bearer {partner_token}").as_str())],
        "",
    );
    assert_eq!((r.status, error_of(&r).as_str()), (401, "bad_signature"));
    let r = server.request(
        "GET",
        "/partner/x",
        &[("Authorization", bearer.as_str())],
        "",
    );
    assert_eq!((r.status, error_of(&r).as_str()), (401, "bad_signature"));
    // forward = true: the partner's upstream gets the token.
    let r = server.request(
        "GET",
        "/partner/x",
        &[("Authorization", format!("Bearer {partner_token}").as_str())],
        "",
    );
    let (_, headers) = sent(&r);
    assert_eq!(
        header(&headers, "authorization"),
        Some(format!("Bearer {partner_token}").as_str())
    );
}

#[test]
fn a_remote_jwks_provider_guards_a_route_and_fails_closed_without_keys() {
    let cli = Cli::new();
    let idp = crate::jwks::key("idp-1");
    let jwks = crate::jwks::JwksServer::start(crate::jwks::jwks_of(&[&idp]));
    let upstream = mirror_upstream();
    let server = serve(
        &cli,
        &format!(
            "[[provider]]\nname = \"idp\"\njwks_url = \"{}\"\nmax_stale = \"0s\"\ncache_duration = \"1s\"\n\n[[route]]\nprefix = \"/api\"\nupstream = \"http://127.0.0.1:{upstream}\"\nproviders = [\"idp\"]\n",
            jwks.url()
        ),
    );
    let token = external_token(&idp, json!({"sub": "dan", "exp": now() + 600}));
    let bearer = format!("Bearer {token}");
    let r = server.request("GET", "/api/x", &[("Authorization", bearer.as_str())], "");
    let (_, headers) = sent(&r);
    assert_eq!(header(&headers, "x-auth-user"), Some("dan"));
    // The JWKS server goes away; once its keys are older than cache_duration + max_stale,
    // nothing verifies: 503, never a pass.
    jwks.stop();
    let r = crate::harness::eventually(
        "the cached keys run out",
        || server.request("GET", "/api/x", &[("Authorization", bearer.as_str())], ""),
        |r| r.status != 200,
    );
    assert_eq!(
        (r.status, error_of(&r).as_str()),
        (503, "keys_unavailable"),
        "{r:?}"
    );
}

#[test]
fn paths_are_normalised_before_routes_and_scopes_see_them() {
    let cli = Cli::new();
    cli.run(&["user", "add", "root:admin:rootpw"]).ok();
    let upstream = mirror_upstream();
    let gate = |url: &str, verbs: &[&str]| {
        let mut args = vec!["gatetoken", "create", "g", "--url", url, "--user", "root"];
        for verb in verbs {
            args.extend(["--verb", verb]);
        }
        let name = format!("g{}", rand_suffix());
        args[2] = &name;
        cli.run(&args).ok().trim().to_owned()
    };
    let exact = gate("/vm1/vnc", &[]);
    let below = gate("/vm1/*", &["Get", "pOsT"]);
    let server = serve(
        &cli,
        &format!(
            "[[route]]\nprefix = \"/k8s\"\nupstream = \"http://127.0.0.1:{upstream}\"\nstrip_prefix = true\nproviders = [\"self\"]\ngate_scope = true\n"
        ),
    );
    let call = |method: &str, path: &str, token: &str| {
        let bearer = format!("Bearer {token}");
        server.request(method, path, &[("Authorization", bearer.as_str())], "")
    };
    for (method, path, token, want, seen) in [
        ("GET", "/k8s/vm1/vnc", &exact, 200, Some("/vm1/vnc")),
        ("GET", "/k8s/vm2/../vm1/vnc", &exact, 200, Some("/vm1/vnc")),
        ("GET", "//k8s//vm1///vnc", &exact, 200, Some("/vm1/vnc")),
        ("GET", "/k8s/vm1/%76nc", &exact, 200, Some("/vm1/vnc")),
        ("GET", "/k8s/vm1/vnc/", &exact, 403, None),
        ("GET", "/k8s/vm1/vnc/../../vm2/vnc", &exact, 403, None),
        ("GET", "/k8s/vm1%2fvnc", &exact, 400, None),
        ("GET", "/k8s/vm1/%2e%2e/vm2/vnc", &below, 403, None),
        ("GET", "/k8s/%2e%2e/%2e%2e/k8s/vm1/vnc", &exact, 400, None),
        ("GET", "/k8s/vm1/vnc%00", &exact, 400, None),
        ("POST", "/k8s/vm1/vnc", &exact, 403, None),
        ("PUT", "/k8s/vm1/a", &below, 403, None),
        ("GET", "/k8s/vm1/", &below, 200, Some("/vm1/")),
        ("GET", "/k8s/vm1", &below, 403, None),
        ("POST", "/k8s/vm1/a", &below, 200, Some("/vm1/a")),
        ("DELETE", "/k8s/vm1/a", &below, 403, None),
    ] {
        let r = call(method, path, token);
        assert_eq!(r.status, want, "{method} {path}: {r:?}");
        if want == 403 {
            let code = error_of(&r);
            assert!(
                code == "path_not_allowed" || code == "method_not_allowed",
                "{method} {path}: {code}"
            );
        }
        if let Some(seen) = seen {
            let (line, _) = sent(&r);
            assert_eq!(line, format!("{method} {seen} HTTP/1.1"), "{path}");
        }
    }
    // A user token has no URLs: a gate_scope route without require_* takes gate tokens only.
    let r = call("GET", "/k8s/vm1/vnc", &user_token(&cli, "root"));
    assert_eq!(
        (r.status, error_of(&r).as_str()),
        (403, "gate_token_required")
    );
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::SeqCst).to_string()
}

#[test]
fn static_dirs_serve_files_below_their_prefix() {
    let cli = Cli::new();
    cli.write("novnc/vnc_lite.html", "<title>noVNC</title>");
    cli.write("novnc/app/ui.js", "ui();");
    let novnc = cli.path("novnc");
    let server = serve(
        &cli,
        &format!(
            "[[route]]\nprefix = \"/novnc\"\nstatic_dir = \"{}\"\n",
            novnc.display()
        ),
    );
    let r = server.get("/novnc/vnc_lite.html");
    assert_eq!((r.status, r.body.as_str()), (200, "<title>noVNC</title>"));
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert_eq!(server.get("/novnc/app/../app/ui.js").body, "ui();");
    let r = server.get("/novnc");
    assert_eq!((r.status, r.header("location")), (308, Some("/novnc/")));
    let r = server.get("/novnc/app");
    assert_eq!(r.header("location"), Some("/novnc/app/"), "{r:?}");
    let r = server.get("/novnc/missing.js");
    assert_eq!((r.status, error_of(&r).as_str()), (404, "not_found"));
    let r = server.get("/novnc/../../etc/passwd");
    assert_eq!(r.status, 400, "{r:?}");
    let r = server.request("POST", "/novnc/vnc_lite.html", &[], "x");
    assert_eq!(r.status, 405);
}

#[test]
fn files_a_route_names_must_exist_at_start_up() {
    let cli = Cli::new();
    for (config, want) in [
        (
            "[[route]]\nprefix = \"/a\"\nstatic_dir = \"no-such-dir\"\n",
            "[[route]] prefix \"/a\": static_dir no-such-dir is not a readable directory",
        ),
        (
            "[[route]]\nprefix = \"/a\"\nupstream = \"http://127.0.0.1:1\"\nproviders = [\"self\"]\nupstream_bearer_file = \"no-token\"\n",
            "[[route]] prefix \"/a\": cannot read upstream_bearer_file no-token",
        ),
        (
            "[[route]]\nprefix = \"/a\"\nupstream = \"https://127.0.0.1:1\"\nupstream_ca_file = \"no-ca.pem\"\n",
            "[[route]] prefix \"/a\": cannot read upstream_ca_file no-ca.pem",
        ),
        (
            "[[provider]]\nname = \"p\"\njwks_file = \"no-keys.json\"\n",
            "[[provider]] \"p\": cannot read jwks_file no-keys.json",
        ),
    ] {
        // Below a comment and a good route, so the line named is the bad table's own (6).
        let config = format!(
            "# the gateway\n\n[[route]]\nprefix = \"/ok\"\nupstream = \"http://127.0.0.1:1\"\n{config}"
        );
        let path = cli.write("bad.toml", &config);
        let run = cli.run(&["serve", "--listen", "127.0.0.1:0", "--config", crate::harness::s(&path)]);
        assert_eq!(run.code, 2, "{config}: {run:?}");
        let want = format!("{}:6: {want}", path.display());
        assert!(run.stderr.contains(&want), "{config}\n→ {}\nwanted {want}", run.stderr);
    }
}

const TLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

#[test]
fn https_upstreams_are_verified_with_the_routes_ca() {
    let cli = Cli::new();
    // The upstream: another jwtgate, serving HTTPS with the test CA's certificate.
    let inner = Cli::new();
    let inner_config = inner.write(
        "tls.toml",
        &format!("[server]\ntls_cert = \"{TLS}/cert.pem\"\ntls_key = \"{TLS}/key.pem\"\n"),
    );
    let upstream = inner.serve(&["--config", crate::harness::s(&inner_config)]);
    let port = upstream.addr.rsplit(':').next().unwrap().to_owned();
    let server = serve(
        &cli,
        &format!(
            "[[route]]\nprefix = \"/ca\"\nupstream = \"https://localhost:{port}\"\nstrip_prefix = true\nupstream_ca_file = \"{TLS}/ca.pem\"\n\n\
             [[route]]\nprefix = \"/web\"\nupstream = \"https://localhost:{port}\"\nstrip_prefix = true\n\n\
             [[route]]\nprefix = \"/any\"\nupstream = \"https://localhost:{port}\"\nstrip_prefix = true\nupstream_insecure_skip_verify = true\n"
        ),
    );
    let r = server.get("/ca/healthz");
    assert_eq!(r.status, 200, "{r:?}");
    let r = server.get("/web/healthz");
    assert_eq!(
        (r.status, error_of(&r).as_str()),
        (502, "upstream_unavailable"),
        "{r:?}"
    );
    assert_eq!(server.get("/any/healthz").status, 200);
    // Why the upstream failed is in the operator's log, not in the client's answer.
    assert!(!r.body.contains("certificate"), "{r:?}");
    let (_, log) = server.stop();
    assert!(log.contains("certificate"), "{log}");
}

/// A websocket upstream: greets each connection with what it was sent (the request path and
/// its Authorization and Cookie headers), then echoes every message.
fn websocket_upstream() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            use futures_util::{SinkExt, StreamExt};
            use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
            use tokio_tungstenite::tungstenite::Message;
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut seen = String::new();
                    // The handshake callback's error type is tungstenite's, large by design.
                    #[allow(clippy::result_large_err)]
                    let callback = |request: &Request, response: Response| {
                        let get = |name: &str| {
                            request
                                .headers()
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-")
                                .to_owned()
                        };
                        seen = format!(
                            "path={} authorization={} cookie={}",
                            request.uri(),
                            get("authorization"),
                            get("cookie")
                        );
                        Ok(response)
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await
                    else {
                        return;
                    };
                    if ws.send(Message::text(seen)).await.is_err() {
                        return;
                    }
                    while let Some(Ok(message)) = ws.next().await {
                        if (message.is_text() || message.is_binary())
                            && ws.send(message).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
    });
    port
}

/// The kube-gateway flow (seed 000) as a new user runs it: a gate token for one VM's VNC path,
/// the signed link that sets its cookie and opens the console page, the console's websocket
/// through a `gate_scope` route that strips `/k8s` and talks to the upstream with the service
/// credential; another VM stays closed; at `exp` the gateway closes the open websocket.
#[test]
fn kube_gateway_signed_link_opens_one_vms_console_until_the_token_expires() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let cli = Cli::new();
    cli.run(&["user", "add", "root:admin:rootpw"]).ok();
    cli.write("sa-token", "service-account-token\n");
    cli.write("www/client.html", "<html>console</html>");
    let www = cli.path("www");
    let upstream = websocket_upstream();
    let server = serve(
        &cli,
        &format!(
            "[server]\nleeway_seconds = 0\n\n\
             [[route]]\nprefix = \"/k8s/\"\nupstream = \"http://127.0.0.1:{upstream}\"\nstrip_prefix = true\nproviders = [\"self\"]\ngate_scope = true\nupstream_bearer_file = \"sa-token\"\nwebsocket = true\n\n\
             [[route]]\nprefix = \"/\"\nstatic_dir = \"{}\"\n",
            www.display()
        ),
    );
    let jwt = cli
        .run(&[
            "gatetoken",
            "create",
            "vm1-console",
            "--url",
            VNC,
            "--user",
            "root",
            "--duration",
            "6s",
        ])
        .ok()
        .trim()
        .to_owned();
    let created = now();

    // The signed link, as kube-gateway's docs build it (the browser sends the quotes as %22).
    let link = format!("/auth/jwt/set?token=%22{jwt}%22&then=/client.html?path=k8s{VNC}");
    let r = server.get(&link);
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(
        r.header("location"),
        Some(format!("/client.html?path=k8s{VNC}").as_str())
    );
    let set_cookie = r.header("set-cookie").unwrap().to_owned();
    assert!(
        set_cookie.starts_with(&format!("jwtgate_gate={jwt};")),
        "{set_cookie}"
    );
    let cookie = format!("jwtgate_gate={jwt}");
    let page = server.request(
        "GET",
        "/client.html?path=k8s/x",
        &[("Cookie", cookie.as_str())],
        "",
    );
    assert_eq!(
        (page.status, page.body.as_str()),
        (200, "<html>console</html>")
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let connect = |path: String| {
            let mut request = format!("ws://{}{path}", server.addr)
                .into_client_request()
                .unwrap();
            request
                .headers_mut()
                .insert("cookie", cookie.parse().unwrap());
            tokio_tungstenite::connect_async(request)
        };
        let (mut ws, _) = connect(format!("/k8s{VNC}"))
            .await
            .expect("the console opens");
        let greeting = ws.next().await.unwrap().unwrap();
        assert_eq!(
            greeting.to_text().unwrap(),
            format!("path={VNC} authorization=Bearer service-account-token cookie=-"),
            "the upstream sees the service credential, never the JWT"
        );
        ws.send(Message::text("key press")).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap().to_text().unwrap(),
            "key press"
        );

        // The same cookie on another VM's console: 403.
        let other = VNC.replace("vm1", "vm2");
        match connect(format!("/k8s{other}")).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403);
            }
            other => panic!("another VM's console must be refused: {other:?}"),
        }

        // At exp (leeway 0) the gateway closes the open websocket with 4001.
        let closed = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(frame))) => return frame,
                    Some(Ok(_)) => continue,
                    other => panic!("expected a close frame, got {other:?}"),
                }
            }
        })
        .await
        .expect("the gateway closes the websocket at exp");
        let frame = closed.expect("a close code");
        assert_eq!(u16::from(frame.code), 4001);
        assert_eq!(frame.reason.as_str(), "token expired");
        assert!(now() >= created + 5, "closed at exp, not before");
    });
    let r = server.request(
        "GET",
        &format!("/k8s/{}", &VNC[1..]),
        &[("Cookie", cookie.as_str())],
        "",
    );
    assert_eq!(r.status, 401, "expired: {r:?}");
    let metrics = server.get("/metrics").body;
    assert!(
        metrics.contains("jwtgate_websockets_closed_total{reason=\"expired\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_revoked_gate_token_closes_its_open_websocket_with_1008() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let cli = Cli::new();
    cli.run(&["user", "add", "root:admin:rootpw"]).ok();
    let upstream = websocket_upstream();
    let server = serve(
        &cli,
        &format!(
            "[[route]]\nprefix = \"/k8s\"\nupstream = \"http://127.0.0.1:{upstream}\"\nstrip_prefix = true\nproviders = [\"self\"]\ngate_scope = true\nwebsocket = true\n"
        ),
    );
    let jwt = cli
        .run(&["gatetoken", "create", "vm1", "--url", VNC, "--user", "root"])
        .ok()
        .trim()
        .to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut request = format!("ws://{}/k8s{VNC}", server.addr)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {jwt}").parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let greeting = ws.next().await.unwrap().unwrap();
        assert!(
            greeting.to_text().unwrap().contains("authorization=-"),
            "{greeting}"
        );
        cli.run(&["gatetoken", "del", "vm1"]).ok();
        let frame = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                if let Some(Ok(Message::Close(frame))) = ws.next().await {
                    return frame;
                }
            }
        })
        .await
        .expect("closed after the revocation")
        .unwrap();
        assert_eq!(u16::from(frame.code), 1008);
    });
    let metrics = server.get("/metrics").body;
    assert!(
        metrics.contains("jwtgate_websockets_closed_total{reason=\"revoked\"} 1"),
        "{metrics}"
    );
    // The operator's log says which route's websocket was closed, and why (never the token).
    let (_, log) = server.stop();
    let line = log
        .lines()
        .find(|l| l.contains("websocket closed by the gateway"))
        .unwrap_or_else(|| panic!("no close line in\n{log}"));
    assert!(line.contains("route=gateway /k8s"), "{line}");
    assert!(line.contains("revoked"), "{line}");
    assert!(!log.contains(&jwt), "the token is in the log:\n{log}");
}

#[test]
fn api_routes_win_over_a_gateway_route_at_the_root() {
    let cli = Cli::new();
    let upstream = mirror_upstream();
    let server = serve(
        &cli,
        &format!("[[route]]\nprefix = \"/\"\nupstream = \"http://127.0.0.1:{upstream}\"\n"),
    );
    let r = server.get("/healthz");
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("ok")));
    let r = server.get("/auth");
    assert_eq!((r.status, error_of(&r).as_str()), (401, "missing_token"));
    let r = server.request("DELETE", "/login", &[], "");
    assert_eq!(
        (r.status, error_of(&r).as_str()),
        (405, "method_not_allowed")
    );
    // Paths that only look like the API's are the upstream's.
    for path in ["/app/login", "/authx", "/healthz/../users/x/../../x"] {
        let (line, _) = sent(&server.get(path));
        let expected = if path.contains("..") { "/x" } else { path };
        assert_eq!(line, format!("GET {expected} HTTP/1.1"), "{path}");
    }
    let metrics = server.get("/metrics").body;
    let line = "jwtgate_http_requests_total{route=\"gateway /\",status=\"200\"} 3";
    assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
}

/// An upstream that takes `delay` to answer each request, and says when one arrived.
fn slow_upstream(delay: Duration) -> (u16, std::sync::mpsc::Receiver<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (arrived, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let arrived = arrived.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = arrived.send(());
                std::thread::sleep(delay);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow");
            });
        }
    });
    (port, rx)
}

#[test]
fn sigterm_lets_a_proxied_request_finish_and_refuses_new_connections() {
    let cli = Cli::new();
    let (upstream, arrived) = slow_upstream(Duration::from_millis(1500));
    let server = serve(
        &cli,
        &format!("[[route]]\nprefix = \"/slow\"\nupstream = \"http://127.0.0.1:{upstream}\"\n"),
    );
    let client = Server::client(server.addr.clone());
    let in_flight = std::thread::spawn(move || client.request("GET", "/slow/x", &[], ""));
    arrived.recv_timeout(Duration::from_secs(10)).unwrap();
    server.terminate();
    // The listening socket closes at once; the request in flight still gets its answer.
    crate::harness::eventually(
        "the listener to close",
        || std::net::TcpStream::connect(&server.addr).is_err(),
        |refused| *refused,
    );
    let r = in_flight.join().unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "slow"));
    let (code, log) = server.stop();
    assert_eq!(code, 0, "{log}");
    assert!(log.ends_with("jwtgate: stopped\n"), "{log}");
}
