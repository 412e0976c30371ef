//! A replica's data database used as a plain engine database: its writes
//! and transactions go through Raft and agree on every replica, a follower
//! refuses them naming the leader, and reads at a timestamp wait for the
//! replica to apply it instead of moving its clock.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{assert_agree, Cluster, KS};
use strata_engine::{Db, Error, Isolation, Timestamp, TxnOptions, WriteOptions};
use strata_replication::ReplicaError;

/// Runs engine calls (which block) off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_writes_and_transactions_on_the_leader_go_through_raft() {
    let c = Cluster::start(3, 41).await;
    let leader = c.leader(Duration::from_secs(10)).await.expect("a leader");
    let db = c.node(leader).state_machine().db();
    let ts = blocking({
        let db = db.clone();
        move || {
            let ks = db.keyspace(KS).unwrap();
            ks.put(b"plain", b"1").unwrap()
        }
    })
    .await;
    let mut keys: BTreeSet<Vec<u8>> = [b"plain".to_vec(), b"counter".to_vec()].into();
    // Two threads increment one counter in serializable transactions:
    // conflicts found at apply time are retried by the engine's loop.
    let mut workers = Vec::new();
    for _ in 0..2 {
        let db: Db = db.clone();
        workers.push(tokio::task::spawn_blocking(move || {
            let ks = db.keyspace(KS).unwrap();
            let mut last = Timestamp(0);
            for _ in 0..15 {
                let (_, ts) = db
                    .transaction_with(&TxnOptions::new(Isolation::Serializable), |t| {
                        let n = t
                            .get(&ks, b"counter")?
                            .map_or(0, |v| u32::from_le_bytes(v[..].try_into().unwrap()));
                        t.put(&ks, b"counter", (n + 1).to_le_bytes())?;
                        Ok::<_, Error>(())
                    })
                    .unwrap();
                last = last.max(ts);
            }
            last
        }));
    }
    let mut last = ts;
    for w in workers {
        last = last.max(w.await.unwrap());
    }
    assert_agree(&c, last, &keys).await;
    for r in c.up() {
        let ks = r.state_machine().db().keyspace(KS).unwrap();
        let v = ks.get(b"counter").unwrap().unwrap();
        assert_eq!(
            u32::from_le_bytes(v[..].try_into().unwrap()),
            30,
            "node {}",
            r.id()
        );
        assert_eq!(ks.get_at(b"plain", ts).unwrap().as_deref(), Some(&b"1"[..]));
    }
    // A batch across two keyspaces is one entry, at one timestamp.
    let ts2 = blocking({
        let db = db.clone();
        move || {
            let (a, b) = (db.keyspace(KS).unwrap(), db.keyspace("other").unwrap());
            let mut batch = db.batch();
            batch.put(&a, b"x", b"a").unwrap();
            batch.put(&b, b"x", b"b").unwrap();
            db.write(batch, WriteOptions::default()).unwrap()
        }
    })
    .await;
    keys.insert(b"x".to_vec());
    assert_agree(&c, ts2, &keys).await;
    for r in c.up() {
        let other = r.state_machine().db().keyspace("other").unwrap();
        let h = other.history(b"x").unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].ts, ts2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_refuses_writes_and_its_reads_wait_for_the_log() {
    let c = Cluster::start(3, 42).await;
    let leader = c.leader(Duration::from_secs(10)).await.expect("a leader");
    let follower = c.up().into_iter().find(|r| r.id() != leader).unwrap();
    let fdb = follower.state_machine().db();
    let refused = blocking({
        let fdb = fdb.clone();
        move || fdb.keyspace(KS).unwrap().put(b"k", b"v")
    })
    .await;
    match refused {
        Err(Error::Replication(e)) => match e.downcast_ref::<ReplicaError>() {
            Some(ReplicaError::NotLeader { leader: Some(l) }) => assert_eq!(*l, leader),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        fdb.drop_keyspace(KS),
        Err(Error::InvalidArgument(_))
    ));
    // Written at the leader, then read at its timestamp on the follower:
    // the read waits for the entry rather than answering early.
    let ldb = c.node(leader).state_machine().db();
    let ts = blocking(move || ldb.keyspace(KS).unwrap().put(b"k", b"v").unwrap()).await;
    let got = blocking({
        let fdb = fdb.clone();
        move || fdb.keyspace(KS).unwrap().get_at(b"k", ts).unwrap()
    })
    .await;
    assert_eq!(got.as_deref(), Some(&b"v"[..]));
    // A timestamp no entry reaches times out, and leaves the follower's
    // clock where it was: later entries still apply on it.
    follower
        .committer()
        .set_read_wait(Duration::from_millis(200));
    let far = Timestamp(ts.as_u64() + (1 << 40));
    let late = blocking({
        let fdb = fdb.clone();
        move || fdb.snapshot_at(far).map(|_| ())
    })
    .await;
    assert!(matches!(late, Err(Error::Replication(_))), "{late:?}");
    let ldb = c.node(leader).state_machine().db();
    let ts2 = blocking(move || ldb.keyspace(KS).unwrap().put(b"k", b"w").unwrap()).await;
    assert_agree(&c, ts2, &[b"k".to_vec()].into()).await;
}
