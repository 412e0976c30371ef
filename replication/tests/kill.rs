//! A node SIGKILLed at random moments while it commits writes: after a
//! restart every acknowledged write is there, and no entry was applied
//! twice or skipped (each write puts a key of its own, so a second apply
//! would leave a second version). `STRATA_RAFT_KILL_ROUNDS=N` runs N
//! rounds instead of 4.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use strata_engine::Options;
use strata_replication::sim::SimNetwork;
use strata_replication::{Node, Replica, Request};

const WORKER_ENV: &str = "STRATA_RAFT_KILL_DIR";
const KS: &str = "kv";

fn config() -> Arc<openraft::Config> {
    let c = openraft::Config {
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(300),
        max_in_snapshot_log_to_keep: 50,
        ..Default::default()
    };
    Arc::new(c.validate().unwrap())
}

async fn start(root: &Path) -> Replica {
    let net = SimNetwork::new(1);
    // A long history window: a second apply of an entry would stay
    // visible as a second version.
    let opts = Options {
        history_retention: Duration::from_secs(1 << 30),
        ..Options::default()
    };
    let r = Replica::start(1, root, opts, config(), net.factory(1))
        .await
        .unwrap();
    net.connect(1, r.raft().clone());
    // A fresh node makes itself the cluster; a restarted one has it.
    let members: BTreeMap<u64, Node> = [(
        1,
        Node {
            addr: "sim:1".into(),
        },
    )]
    .into();
    let _ = r.raft().initialize(members).await;
    r
}

async fn wait_leader(r: &Replica) {
    for _ in 0..300 {
        if r.raft().current_leader().await == Some(1) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no leader");
}

fn worker(root: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = start(root).await;
        wait_leader(&r).await;
        // Continue numbering after what the database already holds.
        let ks = r.state_machine().db().keyspace(KS).unwrap();
        let mut n = ks.iter().unwrap().count() as u64;
        loop {
            let key = format!("e{n:08}");
            r.write(Request::new(0).put(KS, key.as_bytes(), &n.to_le_bytes()))
                .await
                .unwrap();
            println!("ack {n}");
            n += 1;
        }
    });
}

#[test]
fn raft_kill_worker_entry() {
    if let Some(dir) = std::env::var_os(WORKER_ENV) {
        worker(Path::new(&dir));
    }
}

#[test]
fn a_node_killed_while_committing_applies_each_entry_once() {
    let rounds: usize = std::env::var("STRATA_RAFT_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let tmp = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked: Option<u64> = None;
    let mut x = 0x9e37_79b9_u64 ^ u64::from(std::process::id());
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "raft_kill_worker_entry",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WORKER_ENV, tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("ack ") {
                    let _ = tx.send(n.parse::<u64>().unwrap());
                }
            }
        });
        let first = rx.recv_timeout(Duration::from_secs(60));
        assert!(
            first.is_ok(),
            "round {round}: the worker acknowledged nothing"
        );
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(x % 400));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        for n in std::iter::once(first.unwrap()).chain(rx.try_iter()) {
            acked = Some(acked.map_or(n, |a| a.max(n)));
        }

        // Reopen in this process, let it re-apply the log, and check.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let r = start(tmp.path()).await;
            wait_leader(&r).await;
            // A write of our own: once applied, the whole log before it is.
            let ts = r
                .write(Request::new(0).put("other", b"probe", b"1"))
                .await
                .unwrap();
            r.wait_applied(ts, Duration::from_secs(10)).await.unwrap();
            let ks = r.state_machine().db().keyspace(KS).unwrap();
            let keys: Vec<Vec<u8>> = ks.iter().unwrap().map(|e| e.unwrap().0.to_vec()).collect();
            let must = acked.map_or(0, |a| a + 1);
            assert!(
                keys.len() as u64 >= must,
                "round {round}: {} writes applied, {must} acknowledged",
                keys.len()
            );
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(
                    k,
                    format!("e{i:08}").as_bytes(),
                    "round {round}: a write skipped"
                );
                let versions = ks.history(k).unwrap();
                assert_eq!(
                    versions.len(),
                    1,
                    "round {round}: {k:?} applied {} times",
                    versions.len()
                );
            }
            r.shutdown().await.unwrap();
        });
    }
}
