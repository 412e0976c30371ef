//! Seeded schedules of message loss, delay, partitions and crashes on an
//! in-process cluster, after which every acknowledged write is on every
//! replica at the same timestamp and every replica holds the same
//! versions, and every linearizable read returned the last acknowledged
//! write of its key (or a later one whose outcome the client never
//! learned). Time is tokio's paused clock, so a schedule takes
//! milliseconds. `STRATA_RAFT_SEEDS=N` runs N schedules instead of 200,
//! from number `STRATA_RAFT_SEED_FIRST` (0).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{assert_agree, Cluster, KS};
use strata_engine::Timestamp;
use strata_replication::sim::Faults;
use strata_replication::{NodeId, Request};

/// One seeded schedule: faults, partitions and crashes while a client
/// writes; then heal and check.
async fn schedule(seed: u64) -> [u64; 4] {
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
    // Per key, what a linearizable read may return: the last acknowledged
    // write, or a write after it whose outcome is unknown (one client, so
    // nothing else).
    let mut allowed: BTreeMap<Vec<u8>, (Option<u32>, Vec<u32>)> = BTreeMap::new();
    let mut reads = 0u64;
    let (mut unknown, mut crashes, mut partitions) = (0u64, 0u64, 0u64);
    for i in 0..50u32 {
        match c.net.draw() % 20 {
            0 => {
                let a = 1 + c.net.draw() % 3;
                c.net.partition(&[&[a]]);
                let rest: Vec<NodeId> = (1..=3).filter(|&x| x != a).collect();
                c.net.partition(&[&[a], &rest]);
                partitions += 1;
            }
            1 | 4 | 5 => c.net.heal(),
            2 if down.is_none() => {
                let id = 1 + c.net.draw() % 3;
                c.crash(id).await;
                down = Some(id);
                crashes += 1;
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
        let entry = allowed.entry(k.clone()).or_default();
        // One session per schedule: a retry of a write whose answer was
        // lost is answered, not applied again.
        let req = Request::new(0)
            .put(KS, &k, &i.to_le_bytes())
            .with_session(seed, u64::from(i) + 1);
        if let Some(ts) = c.write(req).await {
            acked.push((k, i, ts));
            *entry = (Some(i), Vec::new());
        } else {
            entry.1.push(i);
            unknown += 1;
        }
        if c.net.draw() % 3 == 0 {
            let k = format!("k{}", c.net.draw() % 13).into_bytes();
            if let Some(got) = c.linearizable_get(&k).await {
                reads += 1;
                let got = got.map(|v| u32::from_le_bytes(v.try_into().unwrap()));
                let (last, pending) = allowed.get(&k).cloned().unwrap_or_default();
                let ok = got == last || got.is_some_and(|g| pending.contains(&g));
                assert!(
                    ok,
                    "seed {seed}: a linearizable read of {k:?} returned {got:?}; \
                     the last acknowledged write was {last:?}, unknown ones {pending:?}"
                );
            }
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
    // Patiently: a healed cluster may still be electing.
    let Some(last) = c
        .write_tries(
            Request::new(0)
                .put(KS, b"final", b"1")
                .with_session(seed, 1 << 20),
            200,
        )
        .await
    else {
        let mut states = Vec::new();
        for r in c.up() {
            let m = r.raft().metrics().borrow().clone();
            let direct = r.write(Request::new(0).put(KS, b"probe", b"1")).await;
            states.push(format!(
                "node {}: {:?} leader {:?} applied {:?} running {:?}; a write there: {direct:?}",
                r.id(),
                m.state,
                m.current_leader,
                m.last_applied,
                m.running_state
            ));
        }
        panic!(
            "seed {seed}: the healed cluster takes no writes:\n{}",
            states.join("\n")
        );
    };
    keys.insert(b"final".to_vec());
    assert_agree(&c, last, &keys).await;
    common::assert_acked(&c, &acked, &format!("seed {seed}"));
    // No write was applied twice: each value is in one version at most.
    for r in c.up() {
        let d = common::dump(r, &keys);
        let mut seen = BTreeSet::new();
        for versions in d.values() {
            for (_, v) in versions {
                if let Some(v) = v {
                    assert!(
                        seen.insert(v.clone()),
                        "seed {seed}: node {} applied a write twice: {d:?}",
                        r.id()
                    );
                }
            }
        }
    }
    for id in 1..=3 {
        c.crash(id).await;
    }
    [unknown, crashes, partitions, reads]
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn seeded_fault_schedules_keep_every_acknowledged_write() {
    let seeds: u64 = std::env::var("STRATA_RAFT_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut totals = [0u64; 4];
    let first: u64 = std::env::var("STRATA_RAFT_SEED_FIRST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for seed in first..first + seeds {
        let got = schedule(0x5eed_0000 + seed).await;
        for (t, g) in totals.iter_mut().zip(got) {
            *t += g;
        }
    }
    let [unknown, crashes, partitions, reads] = totals;
    eprintln!(
        "{seeds} schedules: {unknown} writes of unknown outcome, {crashes} crashes, \
         {partitions} partitions, {reads} linearizable reads"
    );
    if seeds >= 20 {
        assert!(
            unknown > 0 && crashes > 0 && partitions > 0 && reads > 0,
            "{totals:?}"
        );
    }
}
