//! In-process clusters over the simulated network: replication and
//! agreement of every version on every replica, leader crash and
//! takeover, a restarted node catching up by snapshot.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{assert_agree, Cluster, KS};
use strata_engine::Timestamp;
use strata_replication::{ReplicaError, Request};

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
    // Snapshots keep every log bounded: at most the entries since the
    // last snapshot (40 by this configuration), the 5 kept behind it, and
    // those appended while it was built.
    for r in c.up() {
        let m = r.raft().metrics().borrow().clone();
        let purged = m.purged.map_or(0, |l| l.index);
        let last_index = m.last_log_index.unwrap_or(0);
        assert!(purged > 0, "node {}: nothing purged", r.id());
        let held = r
            .log_store()
            .db()
            .keyspace("log")
            .unwrap()
            .range::<&[u8], _>(..)
            .unwrap()
            .count() as u64;
        assert_eq!(held, last_index - purged, "node {}", r.id());
        assert!(held <= 2 * 40 + 5, "node {} holds {held} entries", r.id());
    }
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
    common::assert_acked(&c, &acked, "after the takeover");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_joins_is_promoted_and_a_removed_node_refuses_writes() {
    let mut c = Cluster::start(3, 3).await;
    let leader = c.leader(Duration::from_secs(10)).await.expect("a leader");
    let mut keys = BTreeSet::new();
    for i in 0..80u32 {
        let k = format!("k{}", i % 9).into_bytes();
        keys.insert(k.clone());
        c.write(Request::new(0).put(KS, &k, &i.to_le_bytes()))
            .await
            .unwrap();
    }
    // A fresh node joins as a learner (by snapshot: the log was purged)
    // and is promoted.
    c.restart(4).await;
    let l = c.node(leader);
    l.add_learner(
        4,
        strata_replication::Node {
            addr: "sim:4".into(),
        },
    )
    .await
    .unwrap();
    l.promote([4].into_iter().collect()).await.unwrap();
    // A follower is removed.
    let gone = (1..=3).find(|&id| id != leader).unwrap();
    l.remove([gone].into_iter().collect()).await.unwrap();
    let voters: Vec<u64> = l
        .raft()
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect();
    assert!(voters.contains(&4) && !voters.contains(&gone), "{voters:?}");
    // Writes go on; the removed node takes none.
    let last = c
        .write(Request::new(0).put(KS, b"after", b"1"))
        .await
        .unwrap();
    keys.insert(b"after".to_vec());
    match c
        .node(gone)
        .write(Request::new(0).put(KS, b"to-removed", b"x"))
        .await
    {
        Err(ReplicaError::NotLeader { .. }) | Err(ReplicaError::Raft(_)) => {}
        other => panic!("a removed node took a write: {other:?}"),
    }
    c.crash(gone).await;
    assert_agree(&c, last, &keys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_change_aborts_writes_in_flight_and_none_applies_twice() {
    let c = Cluster::start(3, 4).await;
    let leader = c.leader(Duration::from_secs(10)).await.expect("a leader");
    let l = c.node(leader).clone();
    l.set_write_wait(Duration::from_secs(1));
    // Writes in flight at the leader when it is cut off from the others:
    // it cannot commit them, and loses its leadership.
    let mut writes = Vec::new();
    for i in 0..40u32 {
        let l = l.clone();
        writes.push(tokio::spawn(async move {
            let req = Request::new(0)
                .put(KS, format!("w{i}").as_bytes(), &i.to_le_bytes())
                .with_session(u64::from(i) + 1, 1);
            tokio::time::timeout(Duration::from_secs(30), l.write(req)).await
        }));
        if i == 20 {
            let others: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
            c.net.partition(&[&[leader], &others]);
        }
    }
    let mut acked = Vec::new();
    let mut aborted = 0;
    for (i, w) in writes.into_iter().enumerate() {
        match w.await.unwrap() {
            Ok(Ok(ts)) => acked.push((format!("w{i}").into_bytes(), i as u32, ts)),
            // What a client of a deposed leader hears: retry elsewhere,
            // the outcome unknown until then.
            Ok(Err(
                e @ (ReplicaError::NotLeader { .. }
                | ReplicaError::Raft(_)
                | ReplicaError::Unconfirmed { .. }),
            )) => {
                assert!(e.is_retryable(), "{e}");
                aborted += 1;
            }
            Ok(Err(e)) => panic!("write {i}: {e}"),
            Err(_) => panic!("write {i} hung after the leader lost its majority"),
        }
    }
    assert!(aborted > 0, "the partition aborted no write");
    c.net.heal();
    let now = c.leader(Duration::from_secs(10)).await.expect("a leader");
    // Retried with the same sessions (a client and its request number:
    // one request in flight per client) at the new leader: each applies
    // once, whether or not its first attempt had.
    let mut last = Timestamp(0);
    for i in 0..40u32 {
        let req = Request::new(0)
            .put(KS, format!("w{i}").as_bytes(), &i.to_le_bytes())
            .with_session(u64::from(i) + 1, 1);
        last = last.max(c.node(now).write(req).await.unwrap());
    }
    let keys: BTreeSet<Vec<u8>> = (0..40).map(|i| format!("w{i}").into_bytes()).collect();
    let last = last.max(acked.iter().map(|a| a.2).max().unwrap_or(Timestamp(0)));
    assert_agree(&c, last, &keys).await;
    common::assert_acked(&c, &acked, "after the leader change");
    let d = common::dump(c.node(now), &keys);
    for (k, versions) in d {
        assert_eq!(versions.len(), 1, "{k:?} applied {} times", versions.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_disk_was_wiped_rejoins_as_a_new_member() {
    let mut c = Cluster::start(3, 5).await;
    let leader = c.leader(Duration::from_secs(10)).await.expect("a leader");
    let mut keys = BTreeSet::new();
    for i in 0..60u32 {
        let k = format!("k{}", i % 7).into_bytes();
        keys.insert(k.clone());
        c.write(Request::new(0).put(KS, &k, &i.to_le_bytes()))
            .await
            .unwrap();
    }
    // A follower loses its disk: it is removed, and comes back empty
    // under a new id, as a learner first, then a voter.
    let lost = (1..=3).find(|&id| id != leader).unwrap();
    c.crash(lost).await;
    std::fs::remove_dir_all(c.root(lost)).unwrap();
    let l = c.node(leader).clone();
    l.remove([lost].into_iter().collect()).await.unwrap();
    c.restart(4).await;
    l.add_learner(
        4,
        strata_replication::Node {
            addr: "sim:4".into(),
        },
    )
    .await
    .unwrap();
    l.promote([4].into_iter().collect()).await.unwrap();
    let last = c
        .write(Request::new(0).put(KS, b"after", b"1"))
        .await
        .unwrap();
    keys.insert(b"after".to_vec());
    assert_agree(&c, last, &keys).await;
    assert_eq!(c.up().len(), 3);
}
