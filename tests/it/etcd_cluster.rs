//! A real etcd cluster for tests: members on free loopback ports, data in a temp dir, killed
//! when dropped. Shared by the store's unit tests (included with `#[path]`) and the end-to-end
//! tests. etcd must be installed (Debian: etcd-server; .ci/install does it): a missing etcd
//! fails the test that needs it, it never skips it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The test TLS material for etcd (tests/fixtures/etcd-tls): `ca.pem`, `server.pem`,
/// `server-key.pem`, `client.pem`, `client-key.pem`.
pub fn tls_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/etcd-tls/{name}"))
}

/// A real etcd cluster on loopback ports, in a temp dir; stopped when dropped.
pub struct Cluster {
    members: Vec<Member>,
    peers: String,
    /// Clients speak TLS and must show a certificate from the test CA.
    tls: bool,
    _dir: tempfile::TempDir,
}

struct Member {
    name: String,
    client: String,
    peer: String,
    data: PathBuf,
    process: Option<Child>,
}

impl Cluster {
    pub async fn start(size: usize) -> Cluster {
        Cluster::launch(size, false).await
    }

    /// Members that serve clients over TLS (`https://`, tests/fixtures/etcd-tls) and accept
    /// only clients with a certificate from the test CA.
    pub async fn start_tls(size: usize) -> Cluster {
        Cluster::launch(size, true).await
    }

    async fn launch(size: usize, tls: bool) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let scheme = if tls { "https" } else { "http" };
        let members: Vec<Member> = (0..size)
            .map(|i| Member {
                name: format!("m{i}"),
                client: format!("{scheme}://127.0.0.1:{}", free_port()),
                peer: format!("http://127.0.0.1:{}", free_port()),
                data: dir.path().join(format!("m{i}")),
                process: None,
            })
            .collect();
        let peers = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            members,
            peers,
            tls,
            _dir: dir,
        };
        for i in 0..size {
            cluster.start_member(i);
        }
        cluster.healthy().await;
        cluster
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client.clone()).collect()
    }

    /// Starts member `i` (again, on its data: a restart).
    pub fn start_member(&mut self, i: usize) {
        let m = &mut self.members[i];
        let mut etcd = Command::new("etcd");
        if self.tls {
            etcd.arg("--cert-file")
                .arg(tls_file("server.pem"))
                .arg("--key-file")
                .arg(tls_file("server-key.pem"))
                .arg("--client-cert-auth")
                .arg("--trusted-ca-file")
                .arg(tls_file("ca.pem"));
        }
        let child = etcd
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&m.data)
            .args(["--listen-client-urls", &m.client])
            .args(["--advertise-client-urls", &m.client])
            .args(["--listen-peer-urls", &m.peer])
            .args(["--initial-advertise-peer-urls", &m.peer])
            .args(["--initial-cluster", &self.peers])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "jwtgate-test"])
            .args(["--logger", "zap", "--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run etcd ({e}): install the Debian package etcd-server (.ci/install does)")
            });
        m.process = Some(child);
    }

    /// Kills member `i` (as a crash would).
    pub fn kill_member(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until every running member answers a write through the cluster.
    pub async fn healthy(&self) {
        let endpoints = self.endpoints();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let ok = async {
                let mut client = Client::connect(&endpoints, self.options()).await.ok()?;
                client.put("/health-check", "ok", None).await.ok()
            };
            if tokio::time::timeout(Duration::from_secs(3), ok)
                .await
                .ok()
                .flatten()
                .is_some()
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "etcd did not become healthy at {endpoints:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Cluster {
    /// How a client connects: with the test CA and client certificate when the members speak
    /// TLS.
    pub fn options(&self) -> Option<ConnectOptions> {
        if !self.tls {
            return None;
        }
        let read = |name| std::fs::read_to_string(tls_file(name)).unwrap();
        let tls = TlsOptions::new()
            .ca_certificate(Certificate::from_pem(read("ca.pem")))
            .identity(Identity::from_pem(
                read("client.pem"),
                read("client-key.pem"),
            ));
        Some(ConnectOptions::new().with_tls(tls))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill_member(i);
        }
    }
}
