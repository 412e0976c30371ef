//! Three (or one) `strata serve` processes on 127.0.0.1 ports, for the
//! server tests.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use strata_client::Client;

pub const CLUSTER_TOKEN: &str = "a-cluster-secret-for-tests";
pub const ALICE: &str = "alice-token-123";
pub const BOB: &str = "bob-token-456";

/// Free ports on 127.0.0.1 (bound and released).
pub fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// A node's process, killed when dropped.
pub struct Node {
    pub id: u64,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Cluster {
    _dir: tempfile::TempDir,
    pub urls: Vec<String>,
    pub nodes: Vec<Node>,
    /// The CA the nodes' certificates are signed by, when they serve HTTPS.
    ca: Option<Vec<u8>>,
}

/// The test certificates (tests/fixtures/tls).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

impl Cluster {
    pub fn start(n: usize) -> Cluster {
        Self::start_with(n, false)
    }

    /// `n` nodes serving HTTPS with the fixture certificate, trusting the
    /// fixture CA for each other.
    pub fn start_tls(n: usize) -> Cluster {
        Self::start_with(n, true)
    }

    fn start_with(n: usize, tls: bool) -> Cluster {
        let tls_section = if tls {
            format!(
                "[tls]\ncert = {:?}\nkey = {:?}\nca = {:?}\n",
                fixture("node.pem"),
                fixture("node.key"),
                fixture("ca.pem")
            )
        } else {
            String::new()
        };
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports(n);
        let peers: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{{ id = {}, addr = \"127.0.0.1:{p}\" }}", i + 1))
            .collect();
        let mut nodes = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            let id = i as u64 + 1;
            let config = dir.path().join(format!("node{id}.toml"));
            std::fs::write(
                &config,
                format!(
                    r#"node_id = {id}
data_dir = "{data}"
listen = "127.0.0.1:{p}"
cluster_token = "{CLUSTER_TOKEN}"
peers = [ {peers} ]
tokens = [
  {{ token = "{ALICE}", identity = "alice" }},
  {{ token = "{BOB}", identity = "bob" }},
]
access_policies = [
  {{ id = "alice", effect = "Allow", principals = [ {{ Identity = "alice" }} ], storage_types = [], key_pattern = "*", access = ["Read", "Write", "Delete", "List", "Admin"] }},
  {{ id = "bob-reads", effect = "Allow", principals = [ {{ Identity = "bob" }} ], storage_types = [], key_pattern = "public/*", access = ["Read"] }},
]
[limits]
max_body_bytes = 65536
max_blob_bytes = 1048576
blob_timeout_ms = 1500
{tls_section}"#,
                    data = dir.path().join(format!("data{id}")).display(),
                    peers = peers.join(", "),
                ),
            )
            .unwrap();
            let mut node = Node {
                id,
                config,
                log: dir.path().join(format!("node{id}.log")),
                child: None,
            };
            node.start();
            nodes.push(node);
        }
        let scheme = if tls { "https" } else { "http" };
        Cluster {
            urls: ports
                .iter()
                .map(|p| format!("{scheme}://127.0.0.1:{p}"))
                .collect(),
            _dir: dir,
            nodes,
            ca: tls.then(|| std::fs::read(fixture("ca.pem")).unwrap()),
        }
    }

    /// A client of `urls`, trusting the cluster's CA when it has one.
    pub fn client_for(&self, urls: Vec<String>, token: &str) -> Client {
        let timeout = Duration::from_secs(5);
        match &self.ca {
            Some(ca) => Client::with_ca(urls, token, timeout, ca).unwrap(),
            None => Client::new(urls, token, timeout).unwrap(),
        }
    }

    pub fn client(&self, token: &str) -> Client {
        self.client_for(self.urls.clone(), token)
    }

    /// A client that asks node `id` first (the others are known, so it
    /// follows their redirects).
    pub fn client_of(&self, id: u64, token: &str) -> Client {
        let mut urls = self.urls.clone();
        urls.rotate_left(id as usize - 1);
        self.client_for(urls, token)
    }

    /// A client of node `id` alone: its reads and status are that node's
    /// (it follows no redirect).
    pub fn node_only(&self, id: u64, token: &str) -> Client {
        self.client_for(vec![self.urls[id as usize - 1].clone()], token)
    }

    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- node {}\n{}", n.id, read(&n.log)))
            .collect()
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

impl Cluster {
    /// Waits (bounded) until node `id` knows a leader; returns it.
    pub async fn leader(&self, id: u64, within: Duration) -> Option<u64> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(s) = self.node_only(id, ALICE).cluster().await {
                if s.leader.is_some() {
                    return s.leader;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Waits (bounded) until every node names the same leader, so a write
    /// sent through any node finds it; returns it.
    pub async fn leader_known_to_all(&self, within: Duration) -> Option<u64> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let mut named = Vec::new();
            for id in 1..=self.nodes.len() as u64 {
                named.push(match self.node_only(id, ALICE).cluster().await {
                    Ok(s) => s.leader,
                    Err(_) => None,
                });
            }
            if let Some(Some(l)) = named.first() {
                if named.iter().all(|n| *n == Some(*l)) {
                    return Some(*l);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Waits (bounded) until node `id` applied commit timestamp `ts`.
    pub async fn wait_applied(&self, id: u64, ts: u64, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(s) = self.node_only(id, ALICE).cluster().await {
                if s.applied_ts >= ts {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {id} did not apply {ts}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
