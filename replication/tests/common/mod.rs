//! The in-process cluster the replication tests share.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use strata_engine::{Options, Timestamp};
use strata_replication::sim::SimNetwork;
use strata_replication::{Node, NodeId, Replica, ReplicaError, Request};

pub const KS: &str = "kv";

pub fn config() -> Arc<openraft::Config> {
    let c = openraft::Config {
        heartbeat_interval: 40,
        election_timeout_min: 150,
        election_timeout_max: 300,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(40),
        max_in_snapshot_log_to_keep: 5,
        purge_batch_size: 1,
        ..Default::default()
    };
    Arc::new(c.validate().unwrap())
}

pub fn opts() -> Options {
    Options {
        history_retention: Duration::from_secs(1 << 30),
        ..Options::default()
    }
}

pub struct Cluster {
    pub net: SimNetwork,
    dir: tempfile::TempDir,
    nodes: BTreeMap<NodeId, Option<Replica>>,
}

impl Cluster {
    pub async fn start(n: u64, seed: u64) -> Cluster {
        let net = SimNetwork::new(seed);
        // A memory file system where there is one: the cluster syncs at
        // every append, and the tests are about ordering, not disks.
        let dir = match std::path::Path::new("/dev/shm") {
            shm if shm.is_dir() => tempfile::tempdir_in(shm).unwrap(),
            _ => tempfile::tempdir().unwrap(),
        };
        let mut c = Cluster {
            net,
            dir,
            nodes: BTreeMap::new(),
        };
        for id in 1..=n {
            c.nodes.insert(id, None);
            c.restart(id).await;
        }
        let members: BTreeMap<NodeId, Node> = (1..=n)
            .map(|id| {
                (
                    id,
                    Node {
                        addr: format!("sim:{id}"),
                    },
                )
            })
            .collect();
        c.node(1).raft().initialize(members).await.unwrap();
        c
    }

    pub fn root(&self, id: NodeId) -> std::path::PathBuf {
        self.dir.path().join(format!("node{id}"))
    }

    pub fn node(&self, id: NodeId) -> &Replica {
        self.nodes[&id].as_ref().expect("node is down")
    }

    pub fn up(&self) -> Vec<&Replica> {
        self.nodes.values().flatten().collect()
    }

    pub async fn restart(&mut self, id: NodeId) {
        let r = Replica::start(id, &self.root(id), opts(), config(), self.net.factory(id))
            .await
            .unwrap();
        self.net.connect(id, r.raft().clone());
        self.nodes.insert(id, Some(r));
    }

    pub async fn crash(&mut self, id: NodeId) {
        self.net.disconnect(id);
        if let Some(r) = self.nodes.insert(id, None).flatten() {
            r.shutdown().await.unwrap();
        }
    }

    /// The leader every live node agrees on, waiting up to `within`.
    pub async fn leader(&self, within: Duration) -> Option<NodeId> {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            let mut seen = BTreeSet::new();
            for r in self.up() {
                seen.insert(r.raft().current_leader().await);
            }
            if let [Some(l)] = seen.into_iter().collect::<Vec<_>>()[..] {
                if self.nodes.get(&l).is_some_and(Option::is_some) {
                    return Some(l);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Writes through whichever node leads, retrying a bounded number of
    /// times; `None` when no attempt was acknowledged.
    pub async fn write(&self, req: Request) -> Option<Timestamp> {
        self.write_tries(req, 8).await
    }

    /// As [`write`](Self::write), with up to `tries` attempts.
    pub async fn write_tries(&self, req: Request, tries: usize) -> Option<Timestamp> {
        let mut target = self.up().first()?.id();
        for _ in 0..tries {
            let Some(r) = self.nodes.get(&target).and_then(Option::as_ref) else {
                target = self.up().first()?.id();
                continue;
            };
            match tokio::time::timeout(Duration::from_millis(500), r.write(req.clone())).await {
                Ok(Ok(ts)) => return Some(ts),
                Ok(Err(ReplicaError::NotLeader { leader: Some(l) })) => target = l,
                Ok(Err(ReplicaError::Rejected(why))) => panic!("rejected: {why}"),
                _ => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    target = self.up()[(target as usize) % self.up().len()].id();
                }
            }
        }
        None
    }
}

impl Cluster {
    /// A linearizable read of `key` through whichever node leads; `None`
    /// when no attempt got an answer.
    pub async fn linearizable_get(&self, key: &[u8]) -> Option<Option<Vec<u8>>> {
        let mut target = self.up().first()?.id();
        for _ in 0..8 {
            let Some(r) = self.nodes.get(&target).and_then(Option::as_ref) else {
                target = self.up().first()?.id();
                continue;
            };
            match tokio::time::timeout(Duration::from_millis(500), r.linearizable()).await {
                Ok(Ok(db)) => {
                    let ks = db.keyspace(KS).unwrap();
                    return Some(ks.get(key).unwrap().map(|v| v.to_vec()));
                }
                Ok(Err(ReplicaError::NotLeader { leader: Some(l) })) => target = l,
                _ => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    target = self.up()[(target as usize) % self.up().len()].id();
                }
            }
        }
        None
    }
}

pub type Dump = BTreeMap<Vec<u8>, Vec<(u64, Option<Vec<u8>>)>>;

/// Every version of every key a replica holds (keys from `keys`).
pub fn dump(r: &Replica, keys: &BTreeSet<Vec<u8>>) -> Dump {
    let db = r.state_machine().db();
    let ks = db.keyspace(KS).unwrap();
    keys.iter()
        .map(|k| {
            let h = ks
                .history(k)
                .unwrap()
                .into_iter()
                .map(|v| (v.ts.as_u64(), v.value.map(|v| v.to_vec())))
                .collect();
            (k.clone(), h)
        })
        .collect()
}

/// Every live replica applies up to `ts`, and all hold the same versions.
pub async fn assert_agree(c: &Cluster, ts: Timestamp, keys: &BTreeSet<Vec<u8>>) {
    let mut dumps = Vec::new();
    for r in c.up() {
        r.wait_applied(ts, Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| panic!("node {}: {e}", r.id()));
        dumps.push((r.id(), dump(r, keys)));
    }
    for (id, d) in &dumps[1..] {
        assert_eq!(d, &dumps[0].1, "node {id} differs from node {}", dumps[0].0);
    }
}

/// Every live replica holds each acknowledged write `(key, value number,
/// commit timestamp)` at its timestamp; `context` names the run.
pub fn assert_acked(c: &Cluster, acked: &[(Vec<u8>, u32, Timestamp)], context: &str) {
    for r in c.up() {
        let db = r.state_machine().db();
        let ks = db.keyspace(KS).unwrap();
        for (k, i, ts) in acked {
            assert_eq!(
                ks.get_at(k, *ts).unwrap().as_deref(),
                Some(&i.to_le_bytes()[..]),
                "{context}: node {} lost an acknowledged write",
                r.id()
            );
        }
    }
}
