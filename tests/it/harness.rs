//! Runs the built binary in a temp dir of its own and captures what it prints.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

/// Every algorithm jwtgate supports, by its JOSE name.
pub const ALGS: [&str; 13] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "ES512", "EdDSA",
];

/// One test's working directory; removed on drop.
pub struct Cli {
    pub dir: TempDir,
}

/// What a run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    pub fn ok(self) -> String {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self.stdout
    }
}

impl Cli {
    pub fn new() -> Cli {
        Cli {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, contents).unwrap();
        path
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, "")
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        self.run_full(args, stdin, &[])
    }

    pub fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.run_full(args, "", env)
    }

    fn run_full(&self, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Run {
        use std::io::Write;
        let mut child = jwtgate()
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("JWTGATE_DATA")
            .env_remove("JWTGATE_STORE")
            .env_remove("JWTGATE_KEY_ALG")
            .env_remove("JWTGATE_ADMIN_PASSWORD")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        Run::from(child.wait_with_output().unwrap())
    }
}

/// A command for the built `jwtgate`, without the developer's own `JWTGATE_SERVER_*` and
/// `JWTGATE_LOGIN_*` settings (they would override the test's config file).
fn jwtgate() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jwtgate"));
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if text.starts_with("JWTGATE_SERVER_") || text.starts_with("JWTGATE_LOGIN_") {
            command.env_remove(&name);
        }
    }
    command
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The TOTP of `user`, read from the data directory (as an authenticator app would scan it).
pub fn totp_of(cli: &Cli, user: &str) -> jwtgate_core::totp::Totp {
    let path = cli.path(&format!("jwtgate-data/users/{user}.json"));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jwtgate_core::totp::Totp::from_secret_text(doc["value"]["totp"]["secret"].as_str().unwrap())
        .unwrap()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A running `jwtgate serve` on a free port, stopped (killed) on drop.
pub struct Server {
    child: std::process::Child,
    /// `IP:PORT` it listens on.
    pub addr: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

/// An HTTP response, as far as the tests look at it.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

impl Cli {
    /// Starts `jwtgate serve --listen 127.0.0.1:0 ARGS…` in this test's directory and waits
    /// until it says where it listens.
    pub fn serve(&self, args: &[&str]) -> Server {
        self.serve_with_env(args, &[])
    }

    /// `serve` with more environment variables.
    pub fn serve_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Server {
        use std::io::{BufRead, BufReader};
        let mut child = jwtgate()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("JWTGATE_DATA")
            .env_remove("JWTGATE_STORE")
            .env_remove("JWTGATE_CONFIG")
            .env_remove("JWTGATE_LISTEN")
            .env("JWTGATE_ADMIN_PASSWORD", "admin-pw")
            .env_remove("JWTGATE_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let log = std::sync::Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(addr) = line
                    .strip_prefix("jwtgate: listening on http://")
                    .or_else(|| line.strip_prefix("jwtgate: listening on https://"))
                {
                    let _ = tx.send(addr.to_owned());
                }
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the server did not start: {}", stderr.lock().unwrap()));
        Server {
            child,
            addr,
            stderr,
        }
    }
}

/// A plain HTTP/1.1 client for any address (nginx, an upstream).
pub struct Client {
    addr: String,
}

impl Client {
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        http_request(&self.addr, method, path, headers, body)
    }
}

impl Server {
    /// A client for another server at `addr`.
    pub fn client(addr: String) -> Client {
        Client { addr }
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], "")
    }

    /// One HTTP/1.1 request on a fresh connection.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        http_request(&self.addr, method, path, headers, body)
    }
}

fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        // A server may answer (413) and close before reading everything: still read its answer.
        let _ = stream.write_all(request.as_bytes());
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line: {raw}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        };
        Response {
            status,
            headers,
            body,
        }
    }
}

impl Server {
    /// Sends SIGTERM without waiting for the server to stop.
    pub fn terminate(&self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    }

    /// Sends SIGTERM and waits; returns the exit code and everything it wrote to stderr.
    pub fn stop(mut self) -> (i32, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let log = self.stderr.lock().unwrap().clone();
        (status.code().unwrap_or(-1), log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An upstream service for proxy tests: it answers every request with its request line and the `X-Auth-User` and
/// `X-Auth-Roles` it received.
pub fn echo_upstream() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || echo(stream));
        }
    });
    port
}

/// Reads one request head (up to the blank line); `None` when the connection ends first.
fn read_head(stream: &mut std::net::TcpStream) -> Option<String> {
    use std::io::Read;
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    Some(text.split("\r\n\r\n").next().unwrap_or_default().to_owned())
}

fn echo(mut stream: std::net::TcpStream) {
    use std::io::Write;
    let Some(request) = read_head(&mut stream) else {
        return;
    };
    let header = |wanted: &str| {
        request
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case(wanted)
                    .then(|| value.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let line = request.lines().next().unwrap_or_default();
    let target = line.rsplit_once(' ').map_or(line, |(target, _)| target);
    let body = format!(
        "upstream saw {target} user={} roles={}",
        header("x-auth-user"),
        header("x-auth-roles")
    );
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

/// An upstream that answers every request with its own request head (request line and
/// headers, as received) as the body: what a service behind a proxy was sent.
pub fn mirror_upstream() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || mirror(stream));
        }
    });
    port
}

fn mirror(mut stream: std::net::TcpStream) {
    use std::io::Write;
    loop {
        let Some(head) = read_head(&mut stream) else {
            return;
        };
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{head}",
            head.len()
        );
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// A request with `token` as the bearer and a JSON body (the admin API's calls).
pub fn call(server: &Server, method: &str, path: &str, token: &str, body: &str) -> Response {
    let bearer = format!("Bearer {token}");
    server.request(
        method,
        path,
        &[
            ("Authorization", bearer.as_str()),
            ("Content-Type", "application/json"),
        ],
        body,
    )
}

/// Calls `probe` every 100 ms until `done` holds for its answer (a running server learns of a
/// CLI's change within a store poll or two), and returns that answer; after 10 s, fails naming
/// `what` and the last answer.
pub fn eventually<R: std::fmt::Debug>(
    what: &str,
    mut probe: impl FnMut() -> R,
    done: impl Fn(&R) -> bool,
) -> R {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answer = probe();
        if done(&answer) {
            return answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not happen within 10 s: {answer:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
