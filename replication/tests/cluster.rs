//! In-process clusters over the simulated network: replication and
//! agreement of every version on every replica, leader crash and
//! takeover, a restarted node catching up by snapshot, and seeded
//! schedules of loss, delay, partitions and crashes after which every
//! acknowledged write is on every replica at the same timestamp.
//! `STRATA_RAFT_SEEDS=N` runs N schedules instead of 2.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use strata_engine::{Options, Timestamp};
use strata_replication::sim::{Faults, SimNetwork};
use strata_replication::{Node, NodeId, Replica, ReplicaError, Request};

const KS: &str = "kv";

fn config() -> Arc<openraft::Config> {
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

fn opts() -> Options {
    Options {
        history_retention: Duration::from_secs(1 << 30),
        ..Options::default()
    }
}

struct Cluster {
    net: SimNetwork,
    dir: tempfile::TempDir,
    nodes: BTreeMap<NodeId, Option<Replica>>,
}

impl Cluster {
    async fn start(n: u64, seed: u64) -> Cluster {
        let net = SimNetwork::new(seed);
        let dir = tempfile::tempdir().unwrap();
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

    fn root(&self, id: NodeId) -> std::path::PathBuf {
        self.dir.path().join(format!("node{id}"))
    }

    fn node(&self, id: NodeId) -> &Replica {
        self.nodes[&id].as_ref().expect("node is down")
    }

    fn up(&self) -> Vec<&Replica> {
        self.nodes.values().flatten().collect()
    }

    async fn restart(&mut self, id: NodeId) {
        let r = Replica::start(id, &self.root(id), opts(), config(), self.net.factory(id))
            .await
            .unwrap();
        self.net.connect(id, r.raft().clone(), self.root(id));
        self.nodes.insert(id, Some(r));
    }

    async fn crash(&mut self, id: NodeId) {
        self.net.disconnect(id);
        if let Some(r) = self.nodes.insert(id, None).flatten() {
            r.shutdown().await.unwrap();
        }
    }

    /// The leader every live node agrees on, waiting up to `within`.
    async fn leader(&self, within: Duration) -> Option<NodeId> {
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
    async fn write(&self, req: Request) -> Option<Timestamp> {
        let mut target = self.up().first()?.id();
        for _ in 0..12 {
            let Some(r) = self.nodes.get(&target).and_then(Option::as_ref) else {
                target = self.up().first()?.id();
                continue;
            };
            match tokio::time::timeout(Duration::from_millis(700), r.write(req.clone())).await {
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

type Dump = BTreeMap<Vec<u8>, Vec<(u64, Option<Vec<u8>>)>>;

/// Every version of every key a replica holds (keys from `keys`).
fn dump(r: &Replica, keys: &BTreeSet<Vec<u8>>) -> Dump {
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
async fn assert_agree(c: &Cluster, ts: Timestamp, keys: &BTreeSet<Vec<u8>>) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_agree_on_every_version() {
    let c = Cluster::start(3, 1).await;
    c.leader(Duration::from_secs(10)).await.expect("a leader");
    let mut keys = BTreeSet::new();
    let mut last = Timestamp(0);
    for i in 0..120u32 {
        let k = format!("k{}", i % 17).into_bytes();
        keys.insert(k.clone());
        let req = if i % 9 == 8 {
            Request::new(0).delete(KS, &k)
        } else {
            Request::new(0).put(KS, &k, &i.to_le_bytes())
        };
        let ts = c.write(req).await.expect("acknowledged");
        assert!(ts > last, "commit timestamps rise");
        last = ts;
    }
    assert_agree(&c, last, &keys).await;
    // A read at a timestamp on a follower equals the leader's.
    let leader = c.leader(Duration::from_secs(5)).await.unwrap();
    let follower = c.up().into_iter().find(|r| r.id() != leader).unwrap();
    let mid = Timestamp(last.as_u64() - 1);
    let a = follower.read_at(mid, Duration::from_secs(5)).await.unwrap();
    let b = c
        .node(leader)
        .read_at(mid, Duration::from_secs(5))
        .await
        .unwrap();
    let fks = follower.state_machine().db().keyspace(KS).unwrap();
    let lks = c.node(leader).state_machine().db().keyspace(KS).unwrap();
    for k in &keys {
        assert_eq!(a.get(&fks, k).unwrap(), b.get(&lks, k).unwrap());
    }
    // A linearizable read at a follower is refused with the leader named.
    match follower.linearizable().await {
        Err(ReplicaError::NotLeader { leader: Some(l) }) => assert_eq!(l, leader),
        other => panic!("{other:?}"),
    }
    assert!(c.node(leader).linearizable().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_takes_over_and_a_restarted_node_catches_up() {
    let mut c = Cluster::start(3, 2).await;
    let first = c.leader(Duration::from_secs(10)).await.expect("a leader");
    let mut keys = BTreeSet::new();
    let mut acked = Vec::new();
    for i in 0..60u32 {
        let k = format!("k{}", i % 11).into_bytes();
        keys.insert(k.clone());
        let ts = c
            .write(Request::new(0).put(KS, &k, &i.to_le_bytes()))
            .await
            .unwrap();
        acked.push((k, i, ts));
    }
    c.crash(first).await;
    let second = c
        .leader(Duration::from_secs(10))
        .await
        .expect("a new leader");
    assert_ne!(first, second);
    // Enough writes that the old leader's log is snapshotted and purged.
    for i in 60..200u32 {
        let k = format!("k{}", i % 11).into_bytes();
        let ts = c
            .write(Request::new(0).put(KS, &k, &i.to_le_bytes()))
            .await
            .unwrap();
        acked.push((k, i, ts));
    }
    c.restart(first).await;
    let last = acked.last().unwrap().2;
    assert_agree(&c, last, &keys).await;
    // Every acknowledged write is there, at its timestamp, everywhere.
    for r in c.up() {
        let db = r.state_machine().db();
        let ks = db.keyspace(KS).unwrap();
        for (k, i, ts) in &acked {
            assert_eq!(
                ks.get_at(k, *ts).unwrap().as_deref(),
                Some(&i.to_le_bytes()[..]),
                "node {}",
                r.id()
            );
        }
    }
}

/// One seeded schedule: faults, partitions and crashes while a client
/// writes; then heal and check.
async fn schedule(seed: u64) {
    let mut c = Cluster::start(3, seed).await;
    c.leader(Duration::from_secs(10)).await.expect("a leader");
    c.net.set_faults(Faults {
        drop_request_per_mille: 30,
        drop_reply_per_mille: 30,
        max_delay: Duration::from_millis(15),
    });
    let mut keys = BTreeSet::new();
    let mut acked: Vec<(Vec<u8>, u32, Timestamp)> = Vec::new();
    let mut down: Option<NodeId> = None;
    for i in 0..50u32 {
        match c.net.draw() % 20 {
            0 => {
                let a = 1 + c.net.draw() % 3;
                c.net.partition(&[&[a]]);
                let rest: Vec<NodeId> = (1..=3).filter(|&x| x != a).collect();
                c.net.partition(&[&[a], &rest]);
            }
            1 => c.net.heal(),
            2 if down.is_none() => {
                let id = 1 + c.net.draw() % 3;
                c.crash(id).await;
                down = Some(id);
            }
            3 => {
                if let Some(id) = down.take() {
                    c.restart(id).await;
                }
            }
            _ => {}
        }
        let k = format!("k{}", c.net.draw() % 13).into_bytes();
        keys.insert(k.clone());
        if let Some(ts) = c.write(Request::new(0).put(KS, &k, &i.to_le_bytes())).await {
            acked.push((k, i, ts));
        }
    }
    c.net.heal();
    c.net.set_faults(Faults::default());
    if let Some(id) = down.take() {
        c.restart(id).await;
    }
    c.leader(Duration::from_secs(20))
        .await
        .expect("a leader after healing");
    // One more write, so every replica has something to apply past all.
    let last = c
        .write(Request::new(0).put(KS, b"final", b"1"))
        .await
        .expect("the healed cluster takes writes");
    keys.insert(b"final".to_vec());
    assert_agree(&c, last, &keys).await;
    for r in c.up() {
        let db = r.state_machine().db();
        let ks = db.keyspace(KS).unwrap();
        for (k, i, ts) in &acked {
            assert_eq!(
                ks.get_at(k, *ts).unwrap().as_deref(),
                Some(&i.to_le_bytes()[..]),
                "seed {seed}: node {} lost an acknowledged write",
                r.id()
            );
        }
    }
    for id in 1..=3 {
        c.crash(id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_fault_schedules_keep_every_acknowledged_write() {
    let seeds: u64 = std::env::var("STRATA_RAFT_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    for seed in 0..seeds {
        schedule(0x5eed_0000 + seed).await;
    }
}
