//! Replicated transactions: checked when their entry applies, the same way
//! on every replica. Concurrent transfers keep the total on every replica;
//! serializable transactions do not write-skew (snapshot isolation does,
//! as it should); a scanned range conflicts with an insert into it.

mod common;

use std::collections::BTreeSet;
use std::ops::Bound;
use std::time::Duration;

use common::{assert_agree, Cluster, KS};
use strata_engine::{Isolation, TxnOptions};
use strata_replication::{Replica, ReplicaError, Request, TxnCheck};

fn balance(v: Option<Vec<u8>>) -> i64 {
    v.map_or(0, |b| i64::from_le_bytes(b.try_into().unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transfers_keep_the_total_on_every_replica() {
    let c = Cluster::start(3, 11).await;
    let leader = c.leader(Duration::from_secs(10)).await.expect("a leader");
    let mut init = Request::new(0);
    for a in 0..8 {
        init = init.put(KS, format!("acct{a}").as_bytes(), &100i64.to_le_bytes());
    }
    c.write(init).await.unwrap();
    let l: Replica = c.node(leader).clone();
    let opts = TxnOptions::new(Isolation::Serializable);
    let mut tasks = Vec::new();
    for t in 0..4u64 {
        let l = l.clone();
        tasks.push(tokio::spawn(async move {
            let mut last = strata_engine::Timestamp(0);
            for i in 0..15u64 {
                let from = format!("acct{}", (t + i) % 8);
                let to = format!("acct{}", (t * 3 + i + 1) % 8);
                let (_, ts) = l
                    .transaction(&opts, |tx| {
                        let a = balance(tx.get(KS, from.as_bytes())?);
                        let b = balance(tx.get(KS, to.as_bytes())?);
                        if from != to {
                            tx.put(KS, from.as_bytes(), &(a - 7).to_le_bytes());
                            tx.put(KS, to.as_bytes(), &(b + 7).to_le_bytes());
                        }
                        Ok(())
                    })
                    .await
                    .unwrap();
                last = last.max(ts);
            }
            last
        }));
    }
    let mut last = strata_engine::Timestamp(0);
    for t in tasks {
        last = last.max(t.await.unwrap());
    }
    let keys: BTreeSet<Vec<u8>> = (0..8).map(|a| format!("acct{a}").into_bytes()).collect();
    assert_agree(&c, last, &keys).await;
    for r in c.up() {
        let ks = r.state_machine().db().keyspace(KS).unwrap();
        let total: i64 = keys
            .iter()
            .map(|k| balance(ks.get(k).unwrap().map(|v| v.to_vec())))
            .sum();
        assert_eq!(total, 800, "node {}", r.id());
    }
}

/// Two transactions that both read x and y at the same start and each
/// clear one of them.
fn skew_pair(start: u64, serializable: bool) -> (Request, Request) {
    let mk = |mine: &[u8]| {
        let mut r = Request::new(0).put(KS, mine, &0i64.to_le_bytes());
        r.check = Some(TxnCheck {
            start_ts: start,
            serializable,
            reads: vec![(0, b"x".to_vec()), (0, b"y".to_vec())],
            ranges: vec![],
        });
        r
    };
    (mk(b"x"), mk(b"y"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serializable_transactions_do_not_write_skew_and_snapshot_ones_may() {
    let c = Cluster::start(3, 12).await;
    let leader = c.leader(Duration::from_secs(10)).await.expect("a leader");
    let l = c.node(leader);
    for serializable in [true, false] {
        let start = l
            .write(Request::new(0).put(KS, b"x", &1i64.to_le_bytes()).put(
                KS,
                b"y",
                &1i64.to_le_bytes(),
            ))
            .await
            .unwrap();
        l.wait_applied(start, Duration::from_secs(5)).await.unwrap();
        let (a, b) = skew_pair(start.as_u64(), serializable);
        assert!(l.write(a).await.is_ok());
        let second = l.write(b).await;
        if serializable {
            match second {
                Err(ReplicaError::Conflict { key, .. }) => assert_eq!(key, b"x"),
                other => panic!("write skew under serializable: {other:?}"),
            }
        } else {
            assert!(second.is_ok(), "{second:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_into_a_scanned_range_conflicts() {
    let c = Cluster::start(3, 13).await;
    let leader = c.leader(Duration::from_secs(10)).await.expect("a leader");
    let l = c.node(leader);
    let start = l
        .write(Request::new(0).put(KS, b"a", b"1").put(KS, b"z", b"1"))
        .await
        .unwrap();
    l.wait_applied(start, Duration::from_secs(5)).await.unwrap();
    // Another writer inserts into [b, m) after the start.
    l.write(Request::new(0).put(KS, b"c", b"new"))
        .await
        .unwrap();
    let mut req = Request::new(0).put(KS, b"count", b"0");
    req.check = Some(TxnCheck {
        start_ts: start.as_u64(),
        serializable: true,
        reads: vec![],
        ranges: vec![(
            0,
            Bound::Included(b"b".to_vec()),
            Bound::Excluded(b"m".to_vec()),
        )],
    });
    match l.write(req.clone()).await {
        Err(ReplicaError::Conflict { key, .. }) => assert_eq!(key, b"c"),
        other => panic!("a phantom went unnoticed: {other:?}"),
    }
    // A range nobody wrote into commits.
    if let Some(check) = req.check.as_mut() {
        check.ranges = vec![(
            0,
            Bound::Included(b"d".to_vec()),
            Bound::Excluded(b"m".to_vec()),
        )];
    }
    assert!(l.write(req).await.is_ok());
}
