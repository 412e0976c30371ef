//! Seeded schedules of message loss, delay, partitions and crashes on an
//! in-process cluster, after which every acknowledged write is on every
//! replica at the same timestamp and every replica holds the same
//! versions. `STRATA_RAFT_SEEDS=N` runs N schedules instead of 2.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{assert_agree, Cluster, KS};
use strata_engine::Timestamp;
use strata_replication::sim::Faults;
use strata_replication::{NodeId, Request};

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
            1 | 4 | 5 => c.net.heal(),
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
