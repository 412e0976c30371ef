//! Snapshots, reads of the past, history, retention and TTL, checked against
//! models across flush, compaction and reopen; and the bank test.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::Rng;
use strata_engine::{Db, Error, Isolation, Keyspace, Options, Timestamp};

fn small(retention: Duration) -> Options {
    Options {
        memtable_size: 16 * 1024,
        block_size: 512,
        base_level_size: 64 * 1024,
        target_file_size: 16 * 1024,
        l0_compaction_trigger: 2,
        history_retention: retention,
        ..Options::default()
    }
}

/// Incompressible bytes, so that sizes on disk count versions.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut r = Rng(seed | 1);
    (0..n).map(|_| r.below(256) as u8).collect()
}

/// The model: every write in order, with its timestamp.
type History = Vec<(Timestamp, Vec<u8>, Option<Vec<u8>>)>;

fn model_at(h: &History, ts: Timestamp) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut m = BTreeMap::new();
    for (t, k, v) in h {
        if *t <= ts {
            match v {
                Some(v) => m.insert(k.clone(), v.clone()),
                None => m.remove(k),
            };
        }
    }
    m
}

fn all_at(ks: &Keyspace, ts: Timestamp) -> BTreeMap<Vec<u8>, Vec<u8>> {
    ks.range_at::<&[u8], _>(.., ts)
        .unwrap()
        .map(|e| {
            let (k, v) = e.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

#[test]
fn reads_of_the_past_match_the_model_across_flush_compaction_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small(Duration::from_secs(3600));
    let mut h: History = Vec::new();
    let mut rng = Rng(77);
    for round in 0..3 {
        let db = Db::open(dir.path(), opts.clone()).unwrap();
        let ks = db.keyspace("k").unwrap();
        for i in 0..500u64 {
            let key = format!("key{:03}", rng.below(40)).into_bytes();
            let ts = if rng.below(6) == 0 {
                let t = ks.delete(&key).unwrap();
                h.push((t, key, None));
                t
            } else {
                let v = format!("r{round}-{i}").into_bytes();
                let t = ks.put(&key, &v).unwrap();
                h.push((t, key, Some(v)));
                t
            };
            assert!(
                h.len() < 2 || h[h.len() - 2].0 < ts,
                "timestamps must increase"
            );
        }
        match round {
            0 => db.flush().unwrap(),
            _ => db.compact().unwrap(),
        }
        // At every recorded timestamp, and every key's full history.
        for (i, (ts, _, _)) in h.iter().enumerate() {
            let model = model_at(&h, *ts);
            assert_eq!(all_at(&ks, *ts), model, "range_at entry {i}");
            for k in 0..40 {
                let key = format!("key{k:03}").into_bytes();
                assert_eq!(
                    ks.get_at(&key, *ts).unwrap().map(|v| v.to_vec()),
                    model.get(&key).cloned()
                );
            }
        }
        for k in 0..40 {
            let key = format!("key{k:03}").into_bytes();
            let expected: Vec<(Timestamp, Option<Vec<u8>>)> = h
                .iter()
                .rev()
                .filter(|(_, kk, _)| *kk == key)
                .map(|(t, _, v)| (*t, v.clone()))
                .collect();
            let got: Vec<(Timestamp, Option<Vec<u8>>)> = ks
                .history(&key)
                .unwrap()
                .into_iter()
                .map(|v| (v.ts, v.value.map(|b| b.to_vec())))
                .collect();
            assert_eq!(got, expected, "history of {k}");
        }
        drop(ks);
        db.close().unwrap();
    }
}

#[test]
fn without_retention_the_past_is_unavailable_but_snapshots_hold_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small(Duration::ZERO)).unwrap();
    let ks = db.keyspace("k").unwrap();
    let t1 = ks.put("a", "1").unwrap();
    let snap = db.snapshot().unwrap();
    assert_eq!(snap.ts(), t1);
    let t2 = ks.put("a", "2").unwrap();
    ks.put("a", "3").unwrap();
    db.compact().unwrap();
    // The snapshot still reads its state, and get_at at its timestamp too.
    assert_eq!(snap.get(&ks, "a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(ks.get_at("a", t1).unwrap().as_deref(), Some(&b"1"[..]));
    drop(snap);
    match ks.get_at("a", t2) {
        Err(Error::HistoryUnavailable { requested, oldest }) => {
            assert_eq!(requested, t2);
            assert!(oldest > t2);
        }
        other => panic!("expected HistoryUnavailable, got {other:?}"),
    }
    assert!(matches!(
        db.snapshot_at(t1),
        Err(Error::HistoryUnavailable { .. })
    ));
    // The present is always readable.
    assert_eq!(
        ks.get_at("a", db.last_timestamp()).unwrap().as_deref(),
        Some(&b"3"[..])
    );
}

#[test]
fn snapshots_are_repeatable_and_consistent_across_keyspaces() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small(Duration::ZERO)).unwrap();
    let (a, b) = (db.keyspace("a").unwrap(), db.keyspace("b").unwrap());
    let mut batch = db.batch();
    batch.put(&a, "x", "1").unwrap();
    batch.put(&b, "y", "1").unwrap();
    db.write(batch, Default::default()).unwrap();
    let snap = db.snapshot().unwrap();
    for i in 2..200 {
        let mut batch = db.batch();
        batch.put(&a, "x", i.to_string()).unwrap();
        batch.put(&b, "y", i.to_string()).unwrap();
        db.write(batch, Default::default()).unwrap();
    }
    db.compact().unwrap();
    assert_eq!(snap.get(&a, "x").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(snap.get(&b, "y").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(snap.range::<&str, _>(&a, ..).unwrap().count(), 1);
    assert_eq!(snap.prefix(&b, "y").unwrap().count(), 1);
}

/// The disk size of an overwrite-heavy workload stays high while an old
/// snapshot lives, and falls back once it is dropped and compaction runs.
#[test]
fn compaction_keeps_exactly_what_snapshots_need() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small(Duration::ZERO)).unwrap();
    let ks = db.keyspace("k").unwrap();
    let value = noise(1, 100);
    for k in 0..200 {
        ks.put(format!("{k:04}"), &value).unwrap();
    }
    let bytes = |db: &Db| -> u64 {
        db.stats()
            .keyspace("k")
            .unwrap()
            .levels
            .iter()
            .map(|l| l.bytes)
            .sum()
    };
    db.compact().unwrap();
    let base = bytes(&db);
    let snap = db.snapshot().unwrap();
    for round in 0..20 {
        for k in 0..200 {
            ks.put(format!("{k:04}"), noise(round * 1000 + k + 7, 100))
                .unwrap();
        }
    }
    db.compact().unwrap();
    let held = bytes(&db);
    // Only the snapshot's version and the newest of each key survive.
    assert!(held > base + base / 2, "held {held}, base {base}");
    assert!(held < base * 4, "held {held}: more than two versions kept");
    assert_eq!(snap.get(&ks, "0000").unwrap().as_deref(), Some(&value[..]));
    drop(snap);
    db.compact().unwrap();
    let after = bytes(&db);
    assert!(after < held * 3 / 4, "after {after}, held {held}");
    eprintln!("bytes: base {base}, with a snapshot {held}, after it was dropped {after}");
}

#[test]
fn ttl_entries_expire_for_reads_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small(Duration::from_secs(3600))).unwrap();
    let ks = db.keyspace("k").unwrap();
    ks.put("keep", "forever").unwrap();
    let t = ks
        .put_with_ttl("short", "lived", Duration::from_millis(30))
        .unwrap();
    ks.put("old", "v1").unwrap();
    ks.put_with_ttl("old", "v2", Duration::from_millis(30))
        .unwrap();
    assert_eq!(ks.get("short").unwrap().as_deref(), Some(&b"lived"[..]));
    let mut tx = db.begin(Isolation::Snapshot).unwrap();
    tx.put_with_ttl(&ks, "tx", "ttl", Duration::from_millis(30))
        .unwrap();
    tx.commit().unwrap();
    std::thread::sleep(Duration::from_millis(60));
    let now = Timestamp::now();
    assert!(ks.get("short").unwrap().is_none());
    assert!(ks.get("tx").unwrap().is_none());
    // Expired, it hides the older version rather than uncovering it.
    assert!(ks.get("old").unwrap().is_none());
    // Before expiry it still reads through time travel; after it, not.
    assert_eq!(
        ks.get_at("short", t).unwrap().as_deref(),
        Some(&b"lived"[..])
    );
    assert!(ks.get_at("short", now).unwrap().is_none());
    let keys: Vec<_> = ks.iter().unwrap().map(|e| e.unwrap().0.to_vec()).collect();
    assert_eq!(keys, vec![b"keep".to_vec()]);
    let hist = ks.history("short").unwrap();
    assert_eq!(hist.len(), 1);
    assert!(hist[0].expires_at.is_some_and(|e| e <= now));
}

#[test]
fn ttl_entries_are_dropped_by_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small(Duration::ZERO)).unwrap();
    let ks = db.keyspace("k").unwrap();
    for i in 0..500 {
        ks.put_with_ttl(
            format!("{i:04}"),
            noise(i + 3, 100),
            Duration::from_millis(20),
        )
        .unwrap();
    }
    db.compact().unwrap();
    let before: u64 = db
        .stats()
        .keyspace("k")
        .unwrap()
        .levels
        .iter()
        .map(|l| l.bytes)
        .sum();
    std::thread::sleep(Duration::from_millis(40));
    ks.put("trigger", "x").unwrap();
    db.compact().unwrap();
    let after: u64 = db
        .stats()
        .keyspace("k")
        .unwrap()
        .levels
        .iter()
        .map(|l| l.bytes)
        .sum();
    assert!(
        before > 25_000 && after < 2_000,
        "before {before}, after {after}"
    );
    assert_eq!(ks.iter().unwrap().count(), 1);
}

/// N accounts, 4 threads of random transfers with retries. Under
/// serializable isolation the total is the same in every snapshot taken
/// while they run, and after a reopen.
#[test]
fn bank_transfers_keep_the_total() {
    const ACCOUNTS: u64 = 20;
    const START: u64 = 1000;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small(Duration::ZERO)).unwrap();
    let ks = db.keyspace("bank").unwrap();
    for a in 0..ACCOUNTS {
        ks.put(format!("acct{a:02}"), START.to_string()).unwrap();
    }
    let total = |it: strata_engine::Iter| -> u64 {
        it.map(|e| {
            std::str::from_utf8(&e.unwrap().1)
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let (db, ks) = (db.clone(), ks.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(t * 7919 + 1);
                let mut done = 0;
                for _ in 0..750 {
                    let (from, to) = (rng.below(ACCOUNTS), rng.below(ACCOUNTS));
                    let amount = rng.below(50);
                    let r = db.transaction(Isolation::Serializable, |tx| {
                        let f = format!("acct{from:02}");
                        let g = format!("acct{to:02}");
                        let fb: u64 = std::str::from_utf8(&tx.get(&ks, &f)?.unwrap())
                            .unwrap()
                            .parse()
                            .unwrap();
                        if fb < amount || from == to {
                            return Ok(false);
                        }
                        let gb: u64 = std::str::from_utf8(&tx.get(&ks, &g)?.unwrap())
                            .unwrap()
                            .parse()
                            .unwrap();
                        tx.put(&ks, &f, (fb - amount).to_string())?;
                        tx.put(&ks, &g, (gb + amount).to_string())?;
                        Ok(true)
                    });
                    match r {
                        Ok(_) => done += 1,
                        Err(Error::Conflict { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                done
            })
        })
        .collect();
    let auditor = {
        let (db, ks, stop) = (db.clone(), ks.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut audits = 0;
            while !stop.load(Ordering::Relaxed) {
                let snap = db.snapshot().unwrap();
                assert_eq!(
                    total(snap.range::<&str, _>(&ks, ..).unwrap()),
                    ACCOUNTS * START
                );
                audits += 1;
            }
            audits
        })
    };
    let committed: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    stop.store(true, Ordering::Relaxed);
    assert!(auditor.join().unwrap() > 0);
    assert!(committed > 1500, "only {committed} transfers committed");
    assert_eq!(total(ks.iter().unwrap()), ACCOUNTS * START);
    drop(ks);
    db.close().unwrap();
    let db = Db::open(dir.path(), small(Duration::ZERO)).unwrap();
    let ks = db.keyspace("bank").unwrap();
    assert_eq!(total(ks.iter().unwrap()), ACCOUNTS * START);
    assert_eq!(db.conflict_records(), 0);
}

#[test]
fn timestamps_increase_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut last = Timestamp::ZERO;
    for _ in 0..3 {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        let ks = db.keyspace("k").unwrap();
        assert!(db.last_timestamp() >= last);
        for _ in 0..10 {
            let t = ks.put("a", "b").unwrap();
            assert!(t > last);
            last = t;
        }
    }
    // A timestamp converts to and from wall-clock time.
    let t = Timestamp::now();
    let back = Timestamp::from(std::time::SystemTime::from(t));
    assert_eq!(back, t);
}

#[test]
fn the_conflict_log_is_bounded_by_the_oldest_running_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let ks = db.keyspace("k").unwrap();
    let long = db.begin(Isolation::Serializable).unwrap();
    for i in 0..100 {
        ks.put(format!("{i}"), "v").unwrap();
    }
    // Every commit since the long transaction began is kept for it.
    assert_eq!(db.conflict_records(), 100);
    let short = db.begin(Isolation::Snapshot).unwrap();
    drop(long);
    ks.put("one more", "v").unwrap();
    // Only what the remaining transaction may conflict with is left.
    assert_eq!(db.conflict_records(), 1);
    drop(short);
    assert_eq!(db.conflict_records(), 0);
}

#[test]
fn reads_at_future_timestamps_are_refused_and_the_present_is_repeatable() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small(Duration::from_secs(3600))).unwrap();
    let ks = db.keyspace("k").unwrap();
    ks.put("a", "1").unwrap();
    assert!(matches!(
        ks.get_at("a", Timestamp::MAX),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        db.snapshot_at(Timestamp::MAX),
        Err(Error::InvalidArgument(_))
    ));
    // A read at the wall clock's present moves the clock: later commits
    // come after it, so the read repeats.
    let now = Timestamp::now();
    assert_eq!(ks.get_at("a", now).unwrap().as_deref(), Some(&b"1"[..]));
    let t = ks.put("a", "2").unwrap();
    assert!(t > now);
    assert_eq!(ks.get_at("a", now).unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(ks.get("a").unwrap().as_deref(), Some(&b"2"[..]));
}
