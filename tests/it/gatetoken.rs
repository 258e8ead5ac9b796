//! Gate tokens (kube-gateway's GateToken): created from the CLI or `POST /gatetokens`, they
//! open the paths they name, with the methods they name, and nothing else; `/auth` checks the
//! proxied request's path (normalised) and method; deleting one revokes its token at once.

use base64::Engine;
use serde_json::{json, Value};

use crate::harness::{eventually, now, Cli, Response, Server};

const VNC: &str = "/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachineinstances/vm1/vnc";

fn login(server: &Server, credentials: &str) -> String {
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    );
    let r = server.request("POST", "/login", &[("Authorization", basic.as_str())], "");
    assert_eq!(r.status, 200, "{r:?}");
    r.json()["access_token"].as_str().unwrap().to_owned()
}

/// `/auth` as a proxy asks it: the token, and the original request's path and method.
fn auth(server: &Server, token: &str, path: &str, method: &str) -> Response {
    let bearer = format!("Bearer {token}");
    server.request(
        "GET",
        "/auth",
        &[
            ("Authorization", bearer.as_str()),
            ("X-Original-URI", path),
            ("X-Original-Method", method),
        ],
        "",
    )
}

fn outcome(r: &Response) -> (u16, Value) {
    (
        r.status,
        r.json().get("error").cloned().unwrap_or(Value::Null),
    )
}

#[test]
fn a_gate_token_opens_its_path_and_nothing_else() {
    let cli = Cli::new();
    cli.run(&["user", "add", "root:admin:rootpw"]).ok();
    let token = cli
        .run(&[
            "gatetoken",
            "create",
            "vm1-vnc",
            "--url",
            VNC,
            "--user",
            "root",
        ])
        .ok()
        .trim()
        .to_owned();
    let server = cli.serve(&[]);

    let r = auth(&server, &token, VNC, "GET");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-auth-user"), Some("root"));
    assert_eq!(
        r.header("x-auth-roles"),
        Some(""),
        "a gate token carries no roles"
    );
    // The query is not part of the path; a websocket upgrade is a GET.
    assert_eq!(
        auth(&server, &token, &format!("{VNC}?x=1"), "get").status,
        200
    );
    let other = VNC.replace("vm1", "vm2");
    for (path, method, want) in [
        (other.as_str(), "GET", "path_not_allowed"),
        (&format!("{VNC}/../../vm2/vnc"), "GET", "path_refused"),
        (&format!("/x/..{VNC}"), "GET", "path_refused"),
        (&format!("/vm2/..;{VNC}"), "GET", "path_refused"),
        (&format!("{VNC};x=1"), "GET", "path_refused"),
        (&format!("/{VNC}"), "GET", "path_refused"),
        (&format!("{VNC}#/../../vm2"), "GET", "path_refused"),
        (&format!("{VNC}/"), "GET", "path_not_allowed"),
        (&VNC.replace("/vnc", "%2fvnc"), "GET", "path_refused"),
        (VNC, "POST", "method_not_allowed"),
        (VNC, "DELETE", "method_not_allowed"),
    ] {
        let r = auth(&server, &token, path, method);
        assert_eq!(outcome(&r), (403, json!(want)), "{method} {path}");
    }
    // Without the request's path and method, a gate token opens nothing.
    let bearer = format!("Bearer {token}");
    let r = server.request("GET", "/auth", &[("Authorization", bearer.as_str())], "");
    assert_eq!(outcome(&r), (403, json!("scope_unknown")));
    // The path and method come as one pair from one proxy: a client that adds the other
    // proxy's headers, half a pair, or an empty one is refused.
    for extra in [
        vec![
            ("X-Original-URI", VNC),
            ("X-Original-Method", "GET"),
            ("X-Forwarded-Uri", VNC),
            ("X-Forwarded-Method", "GET"),
        ],
        vec![("X-Original-URI", VNC), ("X-Forwarded-Method", "GET")],
        vec![("X-Original-URI", VNC)],
        vec![("X-Original-URI", ""), ("X-Original-Method", "GET")],
        vec![
            ("X-Original-URI", VNC),
            ("X-Original-URI", VNC),
            ("X-Original-Method", "GET"),
        ],
    ] {
        let mut headers = vec![("Authorization", bearer.as_str())];
        headers.extend(extra.iter().copied());
        let r = server.request("GET", "/auth", &headers, "");
        assert_eq!(r.status, 403, "{extra:?}: {r:?}");
        assert!(
            r.json()["error"].as_str().unwrap().starts_with("scope_"),
            "{extra:?}: {r:?}"
        );
    }
    let r = server.request(
        "GET",
        &format!("/auth{VNC}"),
        &[
            ("Authorization", bearer.as_str()),
            ("X-Forwarded-Uri", VNC),
            ("X-Forwarded-Method", "GET"),
        ],
        "",
    );
    assert_eq!(
        outcome(&r),
        (403, json!("scope_ambiguous")),
        "Envoy's path and a header"
    );
    // Envoy's form: the path after /auth, the request's own method.
    let r = server.request(
        "GET",
        &format!("/auth{VNC}"),
        &[("Authorization", bearer.as_str())],
        "",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let r = server.request(
        "PUT",
        &format!("/auth{VNC}"),
        &[("Authorization", bearer.as_str())],
        "",
    );
    assert_eq!(outcome(&r), (403, json!("method_not_allowed")));
    // Traefik's and Caddy's headers.
    let r = server.request(
        "GET",
        "/auth",
        &[
            ("Authorization", bearer.as_str()),
            ("X-Forwarded-Uri", VNC),
            ("X-Forwarded-Method", "GET"),
        ],
        "",
    );
    assert_eq!(r.status, 200, "{r:?}");
    // No permission, no admin API, no renewal into a session with the creator's roles.
    let r = server.request(
        "GET",
        "/auth",
        &[
            ("Authorization", bearer.as_str()),
            ("X-Original-URI", VNC),
            ("X-Original-Method", "GET"),
            ("X-Permission", "vm.console"),
        ],
        "",
    );
    assert_eq!(outcome(&r), (403, json!("permission_denied")));
    for (method, path) in [
        ("GET", "/users/self"),
        ("GET", "/users"),
        ("POST", "/tokens"),
        ("POST", "/token/renew"),
    ] {
        let r = server.request(method, path, &[("Authorization", bearer.as_str())], "");
        assert_eq!(
            outcome(&r),
            (403, json!("gate_token_not_allowed")),
            "{method} {path}"
        );
    }

    // A signed link with it sets the cookie; the cookie works like the header.
    let r = server.get(&format!(
        "/auth/jwt/set?token=%22{token}%22&then=/noVNC/vnc_lite.html?path=k8s{VNC}"
    ));
    assert_eq!(r.status, 302, "{r:?}");
    assert!(
        r.header("set-cookie").unwrap().starts_with("jwtgate_gate="),
        "{r:?}"
    );
    let cookie = format!("jwtgate_gate={token}");
    let r = server.request(
        "GET",
        "/auth",
        &[
            ("Cookie", cookie.as_str()),
            ("X-Original-URI", VNC),
            ("X-Original-Method", "GET"),
        ],
        "",
    );
    assert_eq!(r.status, 200, "{r:?}");

    // Deleting the resource revokes the token at once (the CLI writes, the server notices).
    let view: Value =
        serde_json::from_str(&cli.run(&["gatetoken", "get", "vm1-vnc"]).ok()).unwrap();
    assert_eq!(view["status"]["phase"], "Ready");
    assert_eq!(view["status"]["token"], token.as_str());
    assert_eq!(view["verbs"], json!(["get", "head"]));
    cli.run(&["gatetoken", "del", "vm1-vnc"]).ok();
    let r = eventually(
        "the deletion",
        || auth(&server, &token, VNC, "GET"),
        |r| r.status == 401,
    );
    assert_eq!(r.json()["error"], "token_revoked");
    assert!(!cli.run(&["gatetoken", "list"]).ok().contains("vm1-vnc"));
}

#[test]
fn gate_tokens_through_the_api_follow_the_resource_and_its_permissions() {
    let cli = Cli::new();
    cli.run(&["user", "add", "root:admin:rootpw"]).ok();
    cli.run(&["role", "set", "vnc", "gatetoken-create"]).ok();
    cli.run(&["user", "add", "ops:vnc:pw"]).ok();
    cli.run(&["user", "add", "ann:user:pw"]).ok();
    let server = cli.serve(&[]);
    let (root, ops, ann) = (
        login(&server, "root:rootpw"),
        login(&server, "ops:pw"),
        login(&server, "ann:pw"),
    );
    let call = |token: &str, method: &str, path: &str, body: &str| {
        let bearer = format!("Bearer {token}");
        server.request(method, path, &[("Authorization", bearer.as_str())], body)
    };
    let body =
        json!({"name": "vm1", "urls": ["/k8s/vm1/*"], "verbs": ["GET", "post"], "duration": "30m"});
    let r = call(&ops, "POST", "/gatetokens", &body.to_string());
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let view = r.json();
    assert_eq!(view["verbs"], json!(["get", "post"]));
    assert_eq!(view["created_by"], "ops");
    let (nbf, exp) = (
        view["status"]["nbf"].as_i64().unwrap(),
        view["status"]["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - nbf, 1800);
    assert_eq!(view["status"]["phase"], "Ready");
    let token = view["status"]["token"].as_str().unwrap().to_owned();
    assert_eq!(auth(&server, &token, "/k8s/vm1/vnc", "POST").status, 200);
    assert_eq!(auth(&server, &token, "/k8s/vm2/vnc", "GET").status, 403);

    // The creator reads and deletes their own; others need the permissions.
    assert_eq!(call(&ops, "GET", "/gatetokens/vm1", "").status, 200);
    assert_eq!(
        outcome(&call(&ann, "GET", "/gatetokens/vm1", "")),
        (403, json!("permission_denied"))
    );
    assert_eq!(
        outcome(&call(&ann, "POST", "/gatetokens", &body.to_string())),
        (403, json!("permission_denied"))
    );
    assert_eq!(
        outcome(&call(&ann, "DELETE", "/gatetokens/vm1", "")),
        (403, json!("permission_denied"))
    );
    assert_eq!(
        call(&root, "GET", "/gatetokens", "")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        outcome(&call(&ops, "POST", "/gatetokens", &body.to_string())),
        (409, json!("conflict"))
    );

    // Mistakes are refused with the reason; nothing is created.
    for (body, want) in [
        (
            json!({"name": "x", "urls": ["/k8s/a/../b"]}),
            "not in normal form; write \"/k8s/b\"",
        ),
        (json!({"name": "x", "urls": []}), "at least one URL"),
        (
            json!({"name": "x", "urls": ["/a"], "verbs": ["g e t"]}),
            "not an HTTP method",
        ),
        (
            json!({"name": "x", "urls": ["/a"], "duration": "soon"}),
            "duration \"soon\"",
        ),
        (
            json!({"name": "x", "urls": ["/a"], "from": 1000, "duration": 60}),
            "in the past",
        ),
        (
            json!({"name": "x", "urls": ["/a"], "duration": 0}),
            "between 1 second",
        ),
        (
            json!({"name": "../x", "urls": ["/a"]}),
            "invalid gate token name",
        ),
        (
            json!({"name": "x", "urls": ["/vm1*"]}),
            "a prefix ends in '/*'",
        ),
        (
            json!({"name": "x", "urls": ["/a"], "from": now() + 400 * 86_400}),
            "more than 366 days away",
        ),
    ] {
        let r = call(&ops, "POST", "/gatetokens", &body.to_string());
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert!(
            r.json()["message"].as_str().unwrap().contains(want),
            "{body}: {r:?}"
        );
    }
    assert_eq!(
        call(&root, "GET", "/gatetokens", "")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A token that starts later is Pending, and refused until then.
    let later = json!({"name": "later", "urls": ["/k8s/vm1/*"], "from": now() + 3600});
    let r = call(&ops, "POST", "/gatetokens", &later.to_string());
    assert_eq!(r.json()["status"]["phase"], "Pending");
    let pending = r.json()["status"]["token"].as_str().unwrap().to_owned();
    assert_eq!(
        outcome(&auth(&server, &pending, "/k8s/vm1/x", "GET")),
        (401, json!("not_yet_valid"))
    );

    // Deleting through the API: refused at once.
    assert_eq!(call(&ops, "DELETE", "/gatetokens/vm1", "").status, 200);
    assert_eq!(
        outcome(&auth(&server, &token, "/k8s/vm1/vnc", "GET")),
        (401, json!("token_revoked"))
    );
    assert_eq!(
        outcome(&call(&root, "GET", "/gatetokens/vm1", "")),
        (404, json!("not_found"))
    );
    // Locking the creator ends their gate tokens too (the lock comes from the CLI; the
    // server notices within a poll or two).
    let second = json!({"name": "vm1b", "urls": ["/k8s/vm1/*"]});
    let r = call(&ops, "POST", "/gatetokens", &second.to_string());
    let ops_gate = r.json()["status"]["token"].as_str().unwrap().to_owned();
    assert_eq!(auth(&server, &ops_gate, "/k8s/vm1/x", "GET").status, 200);
    cli.run(&["user", "lock", "ops"]).ok();
    let r = eventually(
        "the lock",
        || auth(&server, &ops_gate, "/k8s/vm1/x", "GET"),
        |r| r.status == 401,
    );
    assert_eq!(r.json()["error"], "user_locked");
}

#[test]
fn the_cli_refuses_gate_token_mistakes_before_writing() {
    let cli = Cli::new();
    cli.run(&["user", "add", "root:admin:rootpw"]).ok();
    for (args, want) in [
        (vec!["--url", "/a//b"], "not in normal form; write \"/a/b\""),
        (vec!["--url", "a"], "does not start with '/'"),
        (vec!["--url", "/a", "--verb", "GET!"], "not an HTTP method"),
        (
            vec!["--url", "/a", "--duration", "forever"],
            "duration \"forever\"",
        ),
        (
            vec!["--url", "/a", "--from", "yesterday"],
            "from \"yesterday\"",
        ),
        (
            vec!["--url", "/a", "--user", "ghost"],
            "unknown user 'ghost'",
        ),
    ] {
        let mut full = vec!["gatetoken", "create", "g1"];
        full.extend(args.iter().copied());
        let r = cli.run(&full);
        assert_ne!(r.code, 0, "{args:?}");
        assert!(r.stderr.contains(want), "{args:?}: {}", r.stderr);
    }
    assert!(!cli.run(&["gatetoken", "list"]).ok().contains("g1"));
    let r = cli.run(&["gatetoken", "get", "nope"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (1, "error: unknown gate token 'nope'")
    );
    let r = cli.run(&["gatetoken", "del", "nope"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (1, "error: unknown gate token 'nope'")
    );
}
