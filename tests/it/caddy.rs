//! jwtgate behind a real Caddy (`forward_auth`): a valid token reaches the upstream, which sees
//! `X-Auth-User` and `X-Auth-Roles`; a bad or missing token gets 401; a missing permission gets
//! 403; an unreachable jwtgate gets 502. The Caddyfile is the one docs/forward-auth.md shows.
//! Caddy must be installed (`.ci/test` installs it); without it this test fails rather than skips.

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{echo_upstream, free_port, Cli, Response, Server};

/// The Caddyfile of docs/forward-auth.md, verbatim: Caddy listens on 8000, jwtgate on 8080,
/// the service on 9000. The test puts its own ports in.
const CADDYFILE: &str = "\
{
	admin off
	auto_https off
}

:8000 {
	bind 127.0.0.1
	# A path that also needs a permission.
	handle /console/* {
		forward_auth 127.0.0.1:8080 {
			uri /auth?permission=vm.console
			copy_headers X-Auth-User X-Auth-Roles
		}
		reverse_proxy 127.0.0.1:9000
	}
	handle {
		# jwtgate serve
		forward_auth 127.0.0.1:8080 {
			uri /auth
			copy_headers X-Auth-User X-Auth-Roles
		}
		# your service
		reverse_proxy 127.0.0.1:9000
	}
}
";

struct Caddy {
    child: Child,
    port: u16,
}

impl Drop for Caddy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn caddy_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let searched = std::env::split_paths(&path).chain(
        ["/usr/bin", "/usr/local/bin", "/usr/sbin"]
            .iter()
            .map(PathBuf::from),
    );
    for dir in searched {
        let candidate = dir.join("caddy");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("caddy is not installed (Debian package caddy); `bash .ci/test` installs it");
}

fn start_caddy(dir: &Path, jwtgate: &str, upstream: u16) -> Caddy {
    let port = free_port();
    let config = CADDYFILE
        .replace("127.0.0.1:8080", jwtgate)
        .replace("127.0.0.1:9000", &format!("127.0.0.1:{upstream}"))
        .replace("\n:8000 {", &format!("\n:{port} {{"));
    let caddyfile = dir.join("Caddyfile");
    std::fs::write(&caddyfile, config).unwrap();
    let log = dir.join("caddy.log");
    // Caddy keeps its data and autosaved config under HOME / XDG_*: all in the test's directory.
    let child = Command::new(caddy_binary())
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&caddyfile)
        .current_dir(dir)
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdin(Stdio::null())
        .stdout(Stdio::from(File::create(&log).unwrap()))
        .stderr(Stdio::from(File::create(dir.join("caddy.err")).unwrap()))
        .spawn()
        .unwrap();
    let mut caddy = Caddy { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        let exited = caddy.child.try_wait().unwrap();
        assert!(
            exited.is_none() && Instant::now() < deadline,
            "caddy did not start ({}): {}{}",
            exited.map_or("still running".to_owned(), |s| s.to_string()),
            std::fs::read_to_string(&log).unwrap_or_default(),
            std::fs::read_to_string(dir.join("caddy.err")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    caddy
}

/// One GET through Caddy.
fn through(caddy: &Caddy, path: &str, headers: &[(&str, &str)]) -> Response {
    let client = Server::client(format!("127.0.0.1:{}", caddy.port));
    client.request("GET", path, headers, "")
}

#[test]
fn caddy_forward_auth_lets_valid_tokens_through_and_stops_the_rest() {
    let cli = Cli::new();
    cli.run(&["role", "set", "operator", "vm.console"]).ok();
    cli.run(&["user", "add", "bot:api:pw"]).ok();
    cli.run(&["user", "add", "op:operator:pw"]).ok();
    let bot_token = cli.run(&["token", "issue", "bot"]).ok();
    let op_token = cli.run(&["token", "issue", "op"]).ok();
    let jwtgate = cli.serve(&[]);
    let caddy = start_caddy(cli.dir.path(), &jwtgate.addr, echo_upstream());

    let bot = format!("Bearer {}", bot_token.trim());
    let r = through(&caddy, "/hello?x=1", &[("Authorization", bot.as_str())]);
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "upstream saw GET /hello?x=1 user=bot roles=api")
    );
    // Caddy passes the client's other token carriers on to /auth as well.
    let r = through(&caddy, "/hello", &[("X-Auth-Token", bot_token.trim())]);
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "upstream saw GET /hello user=bot roles=api")
    );
    let cookie = format!("theme=dark; jwtgate_session={}", op_token.trim());
    let r = through(&caddy, "/hello", &[("Cookie", cookie.as_str())]);
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "upstream saw GET /hello user=op roles=operator")
    );
    // The headers come from jwtgate's answer, never from the client.
    let r = through(
        &caddy,
        "/hello",
        &[
            ("Authorization", bot.as_str()),
            ("X-Auth-User", "admin"),
            ("X-Auth-Roles", "admin"),
        ],
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "upstream saw GET /hello user=bot roles=api")
    );

    let r = through(&caddy, "/hello", &[("Authorization", "Bearer not.a.token")]);
    assert_eq!(r.status, 401, "{r:?}");
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{r:?}"
    );
    assert!(!r.body.contains("upstream saw"), "{r:?}");
    let r = through(&caddy, "/hello", &[]);
    assert_eq!(r.status, 401, "{r:?}");
    assert!(!r.body.contains("upstream saw"), "{r:?}");

    let r = through(&caddy, "/console/vm1", &[("Authorization", bot.as_str())]);
    assert_eq!(r.status, 403, "bot lacks vm.console: {r:?}");
    assert!(!r.body.contains("upstream saw"), "{r:?}");
    // The Caddyfile's permission still applies, whatever permission the client names.
    let r = through(
        &caddy,
        "/console/vm1?permission=api",
        &[("Authorization", bot.as_str()), ("X-Permission", "api")],
    );
    assert_eq!(r.status, 403, "bot lacks vm.console: {r:?}");
    let op = format!("Bearer {}", op_token.trim());
    let r = through(&caddy, "/console/vm1", &[("Authorization", op.as_str())]);
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "upstream saw GET /console/vm1 user=op roles=operator")
    );

    // No jwtgate, no entry: Caddy fails closed.
    drop(jwtgate);
    let r = through(&caddy, "/hello", &[("Authorization", bot.as_str())]);
    assert_eq!(r.status, 502, "{r:?}");
}

#[test]
fn caddy_doc_shows_the_caddyfile_the_test_runs() {
    let doc = include_str!("../../docs/forward-auth.md");
    assert!(
        doc.contains(&format!("```caddyfile\n{CADDYFILE}```\n")),
        "docs/forward-auth.md must show the Caddyfile of tests/it/caddy.rs verbatim"
    );
}

#[test]
fn through_caddy_a_gate_token_is_judged_on_the_real_path_whatever_the_client_adds() {
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
    let caddy = start_caddy(cli.dir.path(), &jwtgate.addr, echo_upstream());
    let bearer = format!("Bearer {}", gate.trim());
    // Caddy sends X-Forwarded-Uri and X-Forwarded-Method itself.
    let r = through(&caddy, "/vm1/vnc", &[("Authorization", bearer.as_str())]);
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "upstream saw GET /vm1/vnc user=root roles=")
    );
    assert_eq!(
        through(&caddy, "/vm2/vnc", &[("Authorization", bearer.as_str())]).status,
        403
    );
    // A client naming an allowed path in nginx's headers does not get another path through.
    let r = through(
        &caddy,
        "/vm2/vnc",
        &[
            ("Authorization", bearer.as_str()),
            ("X-Original-URI", "/vm1/vnc"),
            ("X-Original-Method", "GET"),
        ],
    );
    assert_eq!(r.status, 403, "{r:?}");
}
