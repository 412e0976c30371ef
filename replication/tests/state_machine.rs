//! The state machine applies each entry at a timestamp that depends only on
//! the log, so replicas that apply the same log, in any grouping, hold the
//! same versions at the same timestamps; an entry is applied exactly once
//! across a reopen; a malformed command is rejected the same everywhere.

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership};
use strata_engine::{Options, Timestamp};
use strata_replication::{Node, Request, Response, StateMachine, TypeConfig};

fn entry(index: u64, payload: EntryPayload<TypeConfig>) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload,
    }
}

/// A log: a membership, writes with rising and falling hints, deletes, a
/// TTL, a blank, a malformed command.
fn log() -> Vec<Entry<TypeConfig>> {
    let members = Membership::new(
        vec![[1u64].into_iter().collect()],
        [(
            1u64,
            Node {
                addr: "127.0.0.1:1".into(),
            },
        )]
        .into_iter()
        .collect::<std::collections::BTreeMap<_, _>>(),
    );
    let mut out = vec![
        entry(1, EntryPayload::Membership(members)),
        entry(2, EntryPayload::Blank),
    ];
    let mut hint = 1_000_000u64;
    for i in 3..60u64 {
        // Hints go back now and then (a new leader with a slower clock).
        hint = if i % 7 == 0 { hint - 500 } else { hint + 1000 };
        let r = Request::new(hint)
            .put(
                "a",
                format!("k{}", i % 10).as_bytes(),
                format!("v{i}").as_bytes(),
            )
            .put("b", b"counter", &i.to_le_bytes());
        let r = if i % 5 == 0 {
            r.delete("a", format!("k{}", (i + 3) % 10).as_bytes())
        } else {
            r
        };
        let r = if i % 11 == 0 {
            r.put_expiring("a", b"ttl", b"x", hint + 10)
        } else {
            r
        };
        // Every fourth entry carries a second request, proposed with it.
        let reqs = if i % 4 == 0 {
            vec![
                r,
                Request::new(hint).put("a", format!("k{}", (i + 1) % 10).as_bytes(), b"b"),
            ]
        } else {
            vec![r]
        };
        out.push(entry(i, EntryPayload::Normal(reqs)));
    }
    out.push(entry(60, EntryPayload::Blank));
    let mut bad = Request::new(hint).put("a", b"ok", b"1");
    bad.count = 5; // says five operations, holds one
    out.push(entry(61, EntryPayload::Normal(vec![bad])));
    out.push(entry(
        62,
        EntryPayload::Normal(vec![Request::new(1).put("_raft", b"applied", b"x")]),
    ));
    out
}

type Dump = Vec<(String, Vec<u8>, Vec<(u64, Option<Vec<u8>>)>)>;

/// Every version of every key the log writes.
fn dump(sm: &StateMachine) -> Dump {
    let db = sm.db();
    let mut out = Vec::new();
    for ks in ["a", "b"] {
        let k = db.keyspace(ks).unwrap();
        let mut keys: Vec<Vec<u8>> = (0..10).map(|i| format!("k{i}").into_bytes()).collect();
        keys.extend([b"counter".to_vec(), b"ttl".to_vec(), b"ok".to_vec()]);
        for key in keys {
            let h = k
                .history(&key)
                .unwrap()
                .into_iter()
                .map(|v| (v.ts.as_u64(), v.value.map(|v| v.to_vec())))
                .collect();
            out.push((ks.to_owned(), key, h));
        }
    }
    out
}

fn opts() -> Options {
    Options {
        history_retention: std::time::Duration::from_secs(1 << 40),
        ..Options::default()
    }
}

#[tokio::test]
async fn replicas_applying_the_same_log_agree_on_every_version_whatever_the_grouping() {
    let log = log();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut one = StateMachine::open(d1.path(), opts()).unwrap();
    let mut two = StateMachine::open(d2.path(), opts()).unwrap();
    let all = one.apply(log.clone()).await.unwrap();
    let mut grouped = Vec::new();
    for chunk in log.chunks(7) {
        grouped.extend(two.apply(chunk.to_vec()).await.unwrap());
    }
    assert_eq!(all, grouped);
    assert_eq!(dump(&one), dump(&two));
    assert_eq!(one.applied_ts(), two.applied_ts());
    // Timestamps rise with the index and honour the hints.
    let mut last = 0;
    for (e, rs) in log.iter().zip(&all) {
        let EntryPayload::Normal(reqs) = &e.payload else {
            continue;
        };
        assert_eq!(rs.len(), reqs.len());
        for (req, r) in reqs.iter().zip(rs) {
            if let Response::Committed { ts } = r {
                assert!(*ts > last);
                assert!(*ts >= req.ts_hint);
                last = *ts;
            }
        }
    }
    // The malformed and the reserved-keyspace commands were rejected, and
    // wrote nothing.
    assert!(
        matches!(all[all.len() - 2][..], [Response::Rejected(_)]),
        "{:?}",
        all[all.len() - 2]
    );
    assert!(matches!(all[all.len() - 1][..], [Response::Rejected(_)]));
    assert_eq!(one.db().keyspace("a").unwrap().get("ok").unwrap(), None);
    // Reads at a past timestamp agree too.
    let t = Timestamp(1_020_000);
    let a1 = one.db().keyspace("a").unwrap().get_at("k3", t).unwrap();
    let a2 = two.db().keyspace("a").unwrap().get_at("k3", t).unwrap();
    assert_eq!(a1, a2);
}

#[tokio::test]
async fn an_entry_is_applied_once_across_a_reopen() {
    let log = log();
    let d = tempfile::tempdir().unwrap();
    let reference = tempfile::tempdir().unwrap();
    let mut whole = StateMachine::open(reference.path(), opts()).unwrap();
    whole.apply(log.clone()).await.unwrap();
    {
        let mut sm = StateMachine::open(d.path(), opts()).unwrap();
        sm.apply(log[..30].to_vec()).await.unwrap();
        sm.db().close().unwrap();
    }
    let mut sm = StateMachine::open(d.path(), opts()).unwrap();
    let (applied, membership) = sm.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| l.index), Some(30));
    assert_eq!(membership.log_id().map(|l| l.index), Some(1));
    // openraft re-applies from applied + 1.
    sm.apply(log[30..].to_vec()).await.unwrap();
    assert_eq!(dump(&sm), dump(&whole));
}

#[tokio::test]
async fn a_request_proposed_twice_is_applied_once_and_answered_the_same() {
    let d = tempfile::tempdir().unwrap();
    let mut sm = StateMachine::open(d.path(), opts()).unwrap();
    let req = |seq: u64, v: &[u8]| {
        EntryPayload::Normal(vec![Request::new(1_000)
            .put("a", b"k", v)
            .with_session(7, seq)])
    };
    let out: Vec<Response> = sm
        .apply(vec![
            entry(1, req(1, b"one")),
            entry(2, req(2, b"two")),
            // A retry of request 2 (its answer was lost), then of 1.
            entry(3, req(2, b"two")),
            entry(4, req(1, b"one")),
            entry(5, req(3, b"three")),
        ])
        .await
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(out[2], out[1], "the retry gets the first answer");
    assert!(matches!(out[3], Response::Rejected(_)), "{:?}", out[3]);
    assert!(matches!(out[4], Response::Committed { .. }));
    let h = sm.db().keyspace("a").unwrap().history("k").unwrap();
    let values: Vec<Vec<u8>> = h
        .iter()
        .filter_map(|v| v.value.as_ref().map(|v| v.to_vec()))
        .collect();
    assert_eq!(
        values,
        [b"three".to_vec(), b"two".to_vec(), b"one".to_vec()]
    );
    // Across a reopen too.
    sm.db().close().unwrap();
    let mut sm = StateMachine::open(d.path(), opts()).unwrap();
    let again = sm.apply(vec![entry(6, req(3, b"three"))]).await.unwrap();
    assert_eq!(again[0][0], out[4]);
    assert_eq!(
        sm.db().keyspace("a").unwrap().history("k").unwrap().len(),
        3
    );
}

#[tokio::test]
async fn a_snapshot_id_that_is_not_a_plain_name_is_refused() {
    use openraft::RaftSnapshotBuilder;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut from = StateMachine::open(a.path(), opts()).unwrap();
    from.apply(log()[..10].to_vec()).await.unwrap();
    let snap = from
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let mut to = StateMachine::open(b.path(), opts()).unwrap();
    std::fs::write(b.path().join("keep-me"), "x").unwrap();
    for bad in ["..", ".", "a/b", ""] {
        let mut meta = snap.meta.clone();
        meta.snapshot_id = bad.into();
        let files = Box::new(snap.snapshot.as_ref().clone());
        assert!(to.install_snapshot(&meta, files).await.is_err(), "{bad:?}");
        assert!(
            b.path().join("keep-me").exists(),
            "{bad:?} removed the node's files"
        );
    }
    // The real id installs, and the state is the source's.
    to.install_snapshot(&snap.meta, Box::new(snap.snapshot.as_ref().clone()))
        .await
        .unwrap();
    assert_eq!(
        to.applied_state().await.unwrap().0,
        from.applied_state().await.unwrap().0
    );
}

#[tokio::test]
async fn a_batch_entry_cut_by_a_power_loss_resumes_after_its_last_applied_command() {
    use std::sync::Arc;
    use strata_engine::fs::{CrashMode, SimFs};
    let log = log();
    let clean = tempfile::tempdir().unwrap();
    let mut whole = StateMachine::open(clean.path(), opts()).unwrap();
    whole.apply(log.clone()).await.unwrap();
    let expected = dump(&whole);
    let (mut cut_in_a_batch, mut runs) = (0, 0);
    for seed in 0..160u64 {
        let fs = SimFs::new();
        let dir = tempfile::tempdir().unwrap();
        let o = Options {
            fs: Arc::new(fs.clone()),
            ..opts()
        };
        let mut sm = StateMachine::open(dir.path(), o.clone()).unwrap();
        // A power loss at one of the apply's file calls; the unsynced WAL
        // tail survives in part.
        fs.crash_at(fs.ops() + seed % 80, CrashMode::Torn, seed);
        let _ = sm.apply(log.clone()).await;
        let Some(image) = fs.crashed_image() else {
            continue;
        };
        drop(sm);
        runs += 1;
        let o = Options {
            fs: Arc::new(image),
            ..opts()
        };
        let mut sm = StateMachine::open(dir.path(), o).unwrap();
        let raft = sm.db().keyspace("_raft").unwrap();
        if raft.get(b"partial").unwrap().is_some() {
            cut_in_a_batch += 1;
        }
        // openraft re-applies from the entry after the applied one.
        let (applied, _) = sm.applied_state().await.unwrap();
        let from = applied.map_or(0, |l| l.index as usize);
        sm.apply(log[from..].to_vec()).await.unwrap();
        assert_eq!(dump(&sm), expected, "seed {seed}");
    }
    assert!(runs > 100, "{runs} crashes");
    assert!(cut_in_a_batch > 0, "no crash fell inside a batch entry");
}

#[tokio::test]
async fn staging_left_by_an_interrupted_transfer_is_removed_at_open() {
    let d = tempfile::tempdir().unwrap();
    let mut sm = StateMachine::open(d.path(), opts()).unwrap();
    let staging = sm.begin_receiving_snapshot().await.unwrap();
    std::fs::create_dir_all(staging.dir()).unwrap();
    std::fs::write(staging.dir().join("000001.sst"), b"half a file").unwrap();
    // Not the state machine's: kept.
    std::fs::create_dir_all(d.path().join("incoming-notes")).unwrap();
    sm.db().close().unwrap();
    drop(sm);
    let _sm = StateMachine::open(d.path(), opts()).unwrap();
    assert!(!staging.dir().exists());
    assert!(d.path().join("incoming-notes").exists());
}
