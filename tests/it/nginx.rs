//! jwtgate behind a real nginx (`auth_request`): a valid token reaches the upstream, which sees
//! `X-Auth-User`; a bad token gets 401; a missing permission gets 403. nginx must be installed
//! (`.ci/test` installs it); without it this test fails rather than skips.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Cli, Server};

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An upstream that answers every request with the `X-Auth-User` it received.
fn upstream() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || answer(stream));
        }
    });
    port
}

fn answer(mut stream: TcpStream) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let request = String::from_utf8_lossy(&request);
    let user = request
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-auth-user")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    let body = format!("upstream saw user={user}");
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

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

fn start_nginx(dir: &Path, jwtgate: &str, upstream: u16) -> Nginx {
    let port = free_port();
    let d = dir.display();
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
    server {{
        listen 127.0.0.1:{port};
        location / {{
            auth_request /_auth;
            auth_request_set $auth_user $upstream_http_x_auth_user;
            proxy_set_header X-Auth-User $auth_user;
            proxy_pass http://127.0.0.1:{upstream};
        }}
        location /console/ {{
            auth_request /_auth_console;
            auth_request_set $auth_user $upstream_http_x_auth_user;
            proxy_set_header X-Auth-User $auth_user;
            proxy_pass http://127.0.0.1:{upstream};
        }}
        location = /_auth {{
            internal;
            proxy_pass http://{jwtgate}/auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }}
        location = /_auth_console {{
            internal;
            proxy_pass http://{jwtgate}/auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Permission "vm.console";
        }}
    }}
}}
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
    let nginx = start_nginx(cli.dir.path(), &jwtgate.addr, upstream());

    let bearer = format!("Bearer {}", bot.trim());
    let r = through(&nginx, "/hello", &[("Authorization", bearer.as_str())]);
    assert_eq!((r.status, r.body.as_str()), (200, "upstream saw user=bot"));

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
    assert_eq!((r.status, r.body.as_str()), (200, "upstream saw user=op"));
}
