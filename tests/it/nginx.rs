//! jwtgate behind a real nginx (`auth_request`): a valid token reaches the upstream, which sees
//! `X-Auth-User`; a bad token gets 401; a missing permission gets 403. nginx must be installed
//! (`.ci/test` installs it); without it this test fails rather than skips.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{echo_upstream, free_port, Cli, Server};

struct Nginx {
    child: Child,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> &'static str {
    for candidate in ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"] {
        if Path::new(candidate).exists() {
            return candidate;
        }
    }
    panic!("nginx is not installed (Debian package nginx); `bash .ci/test` installs it");
}

/// The `server` block of docs/forward-auth.md, verbatim: nginx listens on 8000, jwtgate on
/// 8080, the service on 9000. The test puts its own ports in.
const NGINX_SERVER: &str = r#"server {
    listen 8000;

    location / {
        auth_request /_auth;
        auth_request_set $auth_user $upstream_http_x_auth_user;
        auth_request_set $auth_roles $upstream_http_x_auth_roles;
        proxy_set_header X-Auth-User $auth_user;
        proxy_set_header X-Auth-Roles $auth_roles;
        proxy_pass http://127.0.0.1:9000;            # your service
    }

    # A location that also needs a permission.
    location /console/ {
        auth_request /_auth_console;
        auth_request_set $auth_user $upstream_http_x_auth_user;
        auth_request_set $auth_roles $upstream_http_x_auth_roles;
        proxy_set_header X-Auth-User $auth_user;
        proxy_set_header X-Auth-Roles $auth_roles;
        proxy_pass http://127.0.0.1:9000;
    }

    location = /_auth {
        internal;
        proxy_pass http://127.0.0.1:8080/auth;       # jwtgate serve
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header X-Original-URI $request_uri;       # for gate tokens
        proxy_set_header X-Original-Method $request_method;
    }

    location = /_auth_console {
        internal;
        proxy_pass http://127.0.0.1:8080/auth;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header X-Permission "vm.console";
    }
}
"#;

fn start_nginx(dir: &Path, jwtgate: &str, upstream: u16) -> Nginx {
    let port = free_port();
    let d = dir.display();
    let server = NGINX_SERVER
        .replace("listen 8000;", &format!("listen 127.0.0.1:{port};"))
        .replace("127.0.0.1:8080", jwtgate)
        .replace("127.0.0.1:9000", &format!("127.0.0.1:{upstream}"));
    let config = format!(
        r#"
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
{server}}}
"#
    );
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, config).unwrap();
    let child = Command::new(nginx_binary())
        .args(["-c", conf.to_str().unwrap(), "-p", dir.to_str().unwrap()])
        .args(["-e", dir.join("nginx-error.log").to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let nginx = Nginx { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not start: {}",
            std::fs::read_to_string(dir.join("nginx-error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    nginx
}

/// One request through nginx, as a `Server` client would send it.
fn through(nginx: &Nginx, path: &str, headers: &[(&str, &str)]) -> crate::harness::Response {
    let client = Server::client(format!("127.0.0.1:{}", nginx.port));
    client.request("GET", path, headers, "")
}

#[test]
fn nginx_auth_request_lets_valid_tokens_through_and_stops_the_rest() {
    let cli = Cli::new();
    cli.run(&["role", "set", "operator", "vm.console"]).ok();
    cli.run(&["user", "add", "bot:api:pw"]).ok();
    cli.run(&["user", "add", "op:operator:pw"]).ok();
    let bot = cli.run(&["token", "issue", "bot"]).ok();
    let op = cli.run(&["token", "issue", "op"]).ok();
    let jwtgate = cli.serve(&[]);
    let nginx = start_nginx(cli.dir.path(), &jwtgate.addr, echo_upstream());

    let bearer = format!("Bearer {}", bot.trim());
    // Identity headers a client sends are replaced by jwtgate's answer.
    let r = through(
        &nginx,
        "/hello",
        &[
            ("Authorization", bearer.as_str()),
            ("X-Auth-User", "admin"),
            ("X-Auth-Roles", "admin"),
        ],
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "upstream saw GET /hello user=bot roles=api")
    );

    let r = through(&nginx, "/hello", &[("Authorization", "Bearer not.a.token")]);
    assert_eq!(r.status, 401);
    let r = through(&nginx, "/hello", &[]);
    assert_eq!(r.status, 401);

    let r = through(
        &nginx,
        "/console/vm1",
        &[("Authorization", bearer.as_str())],
    );
    assert_eq!(r.status, 403, "bot lacks vm.console");
    let bearer = format!("Bearer {}", op.trim());
    let r = through(
        &nginx,
        "/console/vm1",
        &[("Authorization", bearer.as_str())],
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "upstream saw GET /console/vm1 user=op roles=operator")
    );
}

#[test]
fn nginx_doc_shows_the_server_block_the_test_runs() {
    let doc = include_str!("../../docs/forward-auth.md");
    assert!(
        doc.contains(&format!("```nginx\n{NGINX_SERVER}```\n")),
        "docs/forward-auth.md must show the server block of tests/it/nginx.rs verbatim"
    );
}

#[test]
fn through_nginx_a_gate_token_opens_its_path_with_its_methods_only() {
    let cli = Cli::new();
    cli.run(&["user", "add", "root:admin:pw"]).ok();
    let gate = cli
        .run(&[
            "gatetoken",
            "create",
            "vm1",
            "--url",
            "/vm1/*",
            "--user",
            "root",
        ])
        .ok();
    let jwtgate = cli.serve(&[]);
    let nginx = start_nginx(cli.dir.path(), &jwtgate.addr, echo_upstream());
    let bearer = format!("Bearer {}", gate.trim());
    let r = through(
        &nginx,
        "/vm1/vnc?x=1",
        &[("Authorization", bearer.as_str())],
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "upstream saw GET /vm1/vnc?x=1 user=root roles=")
    );
    for path in [
        "/vm2/vnc",
        "/vm1/../vm2/vnc",
        "/vm1/%2e%2e/vm2/vnc",
        "/vm1%2fx",
    ] {
        let r = through(&nginx, path, &[("Authorization", bearer.as_str())]);
        assert_eq!(r.status, 403, "{path}: {r:?}");
    }
    let client = Server::client(format!("127.0.0.1:{}", nginx.port));
    let r = client.request(
        "POST",
        "/vm1/vnc",
        &[("Authorization", bearer.as_str())],
        "",
    );
    assert_eq!(r.status, 403, "the token allows GET only: {r:?}");
}
