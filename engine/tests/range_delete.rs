//! Range deletes: reads in both directions, snapshots and reads of the
//! past, histories, batches and transactions, across flush, compaction and
//! reopen, encrypted too; and compaction collecting what they delete.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use strata_engine::{
    Db, Error, Isolation, Keyspace, MemoryKeyProvider, Options, Timestamp, WriteBatch, WriteOptions,
};

fn opts(retention: Duration) -> Options {
    Options {
        history_retention: retention,
        ..common::small_options()
    }
}

fn key(i: usize) -> Vec<u8> {
    format!("k{i:04}").into_bytes()
}

/// Writes in order with their timestamps: the reference every read is
/// checked against.
#[derive(Default)]
struct Model {
    writes: Vec<(Timestamp, Op)>,
}

enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    DeleteRange(Vec<u8>, Vec<u8>),
}

impl Model {
    fn at(&self, ts: Timestamp) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut m = BTreeMap::new();
        for (t, op) in &self.writes {
            if *t > ts {
                break;
            }
            match op {
                Op::Put(k, v) => {
                    m.insert(k.clone(), v.clone());
                }
                Op::Delete(k) => {
                    m.remove(k);
                }
                Op::DeleteRange(s, e) => m.retain(|k, _| k < s || k >= e),
            }
        }
        m
    }

    fn put(&mut self, ks: &Keyspace, k: &[u8], v: &[u8]) -> Timestamp {
        let t = ks.put(k, v).unwrap();
        self.writes.push((t, Op::Put(k.to_vec(), v.to_vec())));
        t
    }

    fn delete_range(&mut self, ks: &Keyspace, s: &[u8], e: &[u8]) -> Timestamp {
        let t = ks.delete_range(s..e).unwrap();
        self.writes
            .push((t, Op::DeleteRange(s.to_vec(), e.to_vec())));
        t
    }
}

fn collect(
    it: impl Iterator<Item = strata_engine::Result<strata_engine::KvPair>>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    it.map(|r| {
        let (k, v) = r.unwrap();
        (k.to_vec(), v.to_vec())
    })
    .collect()
}

/// Every read of `ks` at `ts` agrees with `want`: scans both ways, a
/// bounded range both ways, a prefix, and point reads of every key ever
/// written.
fn check_at(ks: &Keyspace, ts: Timestamp, want: &BTreeMap<Vec<u8>, Vec<u8>>, keys: &[Vec<u8>]) {
    let all: Vec<_> = want.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(
        collect(ks.range_at::<&[u8], _>(.., ts).unwrap()),
        all,
        "forward at {ts:?}"
    );
    let mut back = collect(ks.range_at::<&[u8], _>(.., ts).unwrap().rev());
    back.reverse();
    assert_eq!(back, all, "reverse at {ts:?}");
    let (lo, hi) = (key(15), key(45));
    let inside: Vec<_> = all
        .iter()
        .filter(|(k, _)| *k >= lo && *k < hi)
        .cloned()
        .collect();
    assert_eq!(
        collect(ks.range_at(lo.clone()..hi.clone(), ts).unwrap()),
        inside
    );
    let mut back = collect(ks.range_at(lo.clone()..hi.clone(), ts).unwrap().rev());
    back.reverse();
    assert_eq!(back, inside);
    for k in keys {
        assert_eq!(
            ks.get_at(k, ts).unwrap().map(|v| v.to_vec()),
            want.get(k).cloned(),
            "get_at {k:?} at {ts:?}"
        );
    }
}

/// The present: `get`, `get_entry`, scans, prefix scans.
fn check_now(ks: &Keyspace, want: &BTreeMap<Vec<u8>, Vec<u8>>, keys: &[Vec<u8>]) {
    common::check(ks, want);
    for k in keys {
        assert_eq!(ks.get(k).unwrap().map(|v| v.to_vec()), want.get(k).cloned());
        assert_eq!(ks.get_entry(k).unwrap().is_some(), want.contains_key(k));
    }
    let prefix: Vec<_> = want
        .iter()
        .filter(|(k, _)| k.starts_with(b"k002"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(collect(ks.prefix("k002").unwrap()), prefix);
    let mut back = collect(ks.prefix("k002").unwrap().rev());
    back.reverse();
    assert_eq!(back, prefix);
}

/// Reads before and after range deletes, of the present and of the past,
/// through snapshots taken before and after, in memtables, after a flush,
/// after a compaction and after reopening.
#[test]
fn reads_honour_range_deletes_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(Duration::from_secs(3600));
    let db = Db::open(dir.path(), o.clone()).unwrap();
    let ks = db.keyspace("t").unwrap();
    let mut m = Model::default();
    let keys: Vec<_> = (0..60).map(key).collect();
    for k in &keys {
        m.put(&ks, k, b"one");
    }
    let before = db.snapshot().unwrap();
    // Deleted in memtables, then flushed, then compacted, then reopened:
    // the three deletes live in different places by the end.
    let t1 = m.delete_range(&ks, &key(10), &key(30));
    let after_first = db.snapshot().unwrap();
    m.put(&ks, &key(20), b"two"); // a put after the delete, in its range
    db.flush().unwrap();
    let t2 = m.delete_range(&ks, &key(25), &key(40)); // overlaps the first
    db.flush().unwrap();
    let t3 = m.delete_range(&ks, &key(5), &key(12)); // in the memtable
    let mut times = vec![before.ts(), t1, after_first.ts(), t2, t3];
    for stage in ["memtable", "compacted", "reopened"] {
        if stage == "compacted" {
            db.compact().unwrap();
        }
        let (db, ks) = if stage == "reopened" {
            db.close().unwrap();
            let db = Db::open(dir.path(), o.clone()).unwrap();
            let ks = db.keyspace("t").unwrap();
            (db, ks)
        } else {
            (db.clone(), ks.clone())
        };
        let now = db.last_timestamp();
        times.push(now);
        check_now(&ks, &m.at(now), &keys);
        for &t in &times {
            check_at(&ks, t, &m.at(t), &keys);
        }
        if stage != "reopened" {
            // Snapshots from before and after see their own states.
            assert_eq!(
                before.get(&ks, key(15)).unwrap().as_deref(),
                Some(&b"one"[..])
            );
            assert_eq!(after_first.get(&ks, key(15)).unwrap(), None);
            assert_eq!(
                after_first.get(&ks, key(35)).unwrap().as_deref(),
                Some(&b"one"[..])
            );
            let seen = collect(after_first.range(&ks, key(0)..key(60)).unwrap());
            let want: Vec<_> = m.at(after_first.ts()).into_iter().collect();
            assert_eq!(seen, want);
        }
        // The history of a key deleted by two ranges, with a put between.
        let h = ks.history(key(27)).unwrap();
        let got: Vec<_> = h.iter().map(|v| (v.ts, v.value.is_some())).collect();
        assert_eq!(
            got,
            vec![(t2, false), (t1, false), (times_of(&m, &key(27))[0], true)]
        );
        let h = ks.history(key(20)).unwrap();
        let got: Vec<_> = h
            .iter()
            .map(|v| v.value.as_deref().map(<[u8]>::to_vec))
            .collect();
        assert_eq!(
            got,
            vec![Some(b"two".to_vec()), None, Some(b"one".to_vec())]
        );
        assert!(db.verify().unwrap().is_ok());
    }
}

fn times_of(m: &Model, k: &[u8]) -> Vec<Timestamp> {
    m.writes
        .iter()
        .filter(|(_, op)| matches!(op, Op::Put(p, _) if p == k))
        .map(|(t, _)| *t)
        .collect()
}

/// In one batch, a write before a range delete is overwritten by it and a
/// write after it stays; other keyspaces are untouched.
#[test]
fn a_batch_orders_its_writes_around_a_range_delete() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts(Duration::ZERO)).unwrap();
    let a = db.keyspace("a").unwrap();
    let b = db.keyspace("b").unwrap();
    for k in ["a", "b", "c", "d"] {
        a.put(k, "old").unwrap();
        b.put(k, "old").unwrap();
    }
    let mut batch = WriteBatch::new();
    batch.put(&a, "b", "before").unwrap();
    batch.delete_range(&a, "a"..="c").unwrap();
    batch.put(&a, "c", "after").unwrap();
    db.write(batch, WriteOptions::default()).unwrap();
    let want = |ks: &Keyspace| collect(ks.iter().unwrap());
    assert_eq!(
        want(&a),
        vec![
            (b"c".to_vec(), b"after".to_vec()),
            (b"d".to_vec(), b"old".to_vec())
        ]
    );
    assert_eq!(want(&b).len(), 4);
    db.flush().unwrap();
    db.compact().unwrap();
    assert_eq!(want(&a).len(), 2);
    // Empty and inverted ranges write nothing.
    let t = db.last_timestamp();
    a.delete_range("x".."x").unwrap();
    #[allow(clippy::reversed_empty_ranges)]
    a.delete_range("z".."a").unwrap();
    assert_eq!(db.last_timestamp(), t);
    // Unbounded ends reach every key.
    a.put(vec![0xffu8; 100], "max").unwrap();
    a.delete_range::<&[u8], _>(..).unwrap();
    assert!(want(&a).is_empty());
}

/// Many overlapping range deletes and puts, flushed and compacted at
/// random points, against the model at every timestamp.
#[test]
fn overlapping_range_deletes_against_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(Duration::from_secs(3600));
    let db = Db::open(dir.path(), o.clone()).unwrap();
    let ks = db.keyspace("t").unwrap();
    let mut m = Model::default();
    let keys: Vec<_> = (0..60).map(key).collect();
    let mut r = 0x9e37_79b9_u64;
    let mut next = |n: u64| {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        (r % n) as usize
    };
    let mut times = Vec::new();
    for step in 0..400 {
        let t = match next(10) {
            0..=5 => {
                let k = next(60);
                m.put(&ks, &key(k), format!("v{step}").as_bytes())
            }
            6 => {
                let k = key(next(60));
                let t = ks.delete(&k).unwrap();
                m.writes.push((t, Op::Delete(k)));
                t
            }
            _ => {
                let s = next(60);
                let e = s + 1 + next(20);
                m.delete_range(&ks, &key(s), &key(e))
            }
        };
        times.push(t);
        match step % 97 {
            13 => db.flush().unwrap(),
            50 => db.compact().unwrap(),
            _ => {}
        }
    }
    for &t in times.iter().step_by(23) {
        check_at(&ks, t, &m.at(t), &keys);
    }
    check_now(&ks, &m.at(db.last_timestamp()), &keys);
    db.close().unwrap();
    let db = Db::open(dir.path(), o).unwrap();
    let ks = db.keyspace("t").unwrap();
    for &t in times.iter().step_by(41) {
        check_at(&ks, t, &m.at(t), &keys);
    }
    db.compact().unwrap();
    check_now(&ks, &m.at(db.last_timestamp()), &keys);
    assert!(db.verify().unwrap().is_ok());
}

/// A full compaction with no snapshot and no history window removes the
/// deleted entries and the tombstone itself; a snapshot from before the
/// delete keeps both.
#[test]
fn compaction_collects_range_deleted_entries_and_the_tombstone() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts(Duration::ZERO)).unwrap();
    let ks = db.keyspace("t").unwrap();
    for i in 0..3000 {
        ks.put(key(i), [7u8; 100]).unwrap();
    }
    ks.put("z-kept", "v").unwrap();
    db.compact().unwrap();
    let full = db.verify().unwrap();
    assert_eq!(full.entries_checked, 3001);
    let sst_bytes = |db: &Db| -> u64 {
        db.stats()
            .keyspaces
            .iter()
            .flat_map(|k| &k.levels)
            .map(|l| l.bytes)
            .sum()
    };
    let bytes_full = sst_bytes(&db);

    let snap = db.snapshot().unwrap();
    ks.delete_range(key(0)..key(3000)).unwrap();
    db.compact().unwrap();
    let held = db.verify().unwrap();
    assert_eq!(held.entries_checked, 3001, "the snapshot still reads them");
    assert!(held.range_deletions_checked >= 1);
    assert!(db
        .stats()
        .keyspaces
        .iter()
        .any(|k| k.levels.iter().any(|l| l.files > 1)));
    for i in (0..3000).step_by(7) {
        assert_eq!(
            snap.get(&ks, key(i)).unwrap().as_deref(),
            Some(&[7u8; 100][..])
        );
        assert_eq!(ks.get(key(i)).unwrap(), None);
    }
    assert_eq!(snap.range::<&[u8], _>(&ks, ..).unwrap().count(), 3001);
    assert_eq!(snap.range::<&[u8], _>(&ks, ..).unwrap().rev().count(), 3001);
    assert_eq!(ks.iter().unwrap().count(), 1);
    assert_eq!(ks.iter().unwrap().rev().count(), 1);
    drop(snap);

    db.compact().unwrap();
    let after = db.verify().unwrap();
    assert_eq!(after.entries_checked, 1, "only z-kept is left");
    assert_eq!(after.range_deletions_checked, 0, "the tombstone is gone");
    assert!(sst_bytes(&db) < bytes_full / 10);
    assert_eq!(
        collect(ks.iter().unwrap()),
        vec![(b"z-kept".to_vec(), b"v".to_vec())]
    );
}

/// Range deletes in an encrypted database: the tombstone blocks go through
/// the codec, and everything reads back after reopening with the key.
#[test]
fn range_deletes_in_an_encrypted_database() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(MemoryKeyProvider::new(1, [0x42; 32]));
    let o = Options {
        key_provider: Some(provider.clone()),
        compression: vec![strata_engine::format::codec::Compression::Zstd { level: 3 }],
        ..opts(Duration::ZERO)
    };
    let db = Db::open(dir.path(), o.clone()).unwrap();
    let ks = db.keyspace("t").unwrap();
    let mut m = Model::default();
    let keys: Vec<_> = (0..60).map(key).collect();
    for k in &keys {
        m.put(&ks, k, b"secret-value");
    }
    m.delete_range(&ks, &key(10), &key(50));
    db.flush().unwrap();
    m.put(&ks, &key(30), b"back");
    db.close().unwrap();
    let db = Db::open(dir.path(), o.clone()).unwrap();
    let ks = db.keyspace("t").unwrap();
    check_now(&ks, &m.at(db.last_timestamp()), &keys);
    assert!(db.verify().unwrap().is_ok());
    db.close().unwrap();
    // Without the key nothing opens.
    let err = Db::open(dir.path(), opts(Duration::ZERO)).unwrap_err();
    assert!(matches!(err, Error::Decrypt { .. }), "{err}");
}

/// A transaction sees its own range delete and the writes it made after
/// it, and commits them as one batch.
#[test]
fn a_transaction_reads_its_own_range_delete() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts(Duration::ZERO)).unwrap();
    let ks = db.keyspace("t").unwrap();
    for k in ["a", "b", "c", "d"] {
        ks.put(k, "old").unwrap();
    }
    let mut tx = db.begin(Isolation::Serializable).unwrap();
    tx.put(&ks, "b", "lost").unwrap();
    tx.delete_range(&ks, "a".."d").unwrap();
    tx.put(&ks, "c", "new").unwrap();
    assert_eq!(tx.get(&ks, "a").unwrap(), None);
    assert_eq!(tx.get(&ks, "b").unwrap(), None);
    assert_eq!(tx.get(&ks, "c").unwrap().as_deref(), Some(&b"new"[..]));
    let seen = collect(tx.range(&ks, "a".."z").unwrap());
    assert_eq!(
        seen,
        vec![
            (b"c".to_vec(), b"new".to_vec()),
            (b"d".to_vec(), b"old".to_vec())
        ]
    );
    let mut back = collect(tx.range(&ks, "a".."z").unwrap().rev());
    back.reverse();
    assert_eq!(back, seen);
    // Others still see the old state.
    assert_eq!(ks.get("a").unwrap().as_deref(), Some(&b"old"[..]));
    tx.commit().unwrap();
    assert_eq!(collect(ks.iter().unwrap()), seen);
}

/// Phantoms: a serializable transaction that scanned a range fails when a
/// range delete meeting it commits first; one that read a key fails when a
/// range delete covering it commits first; a range delete fails when a
/// write in its range committed after it began. Disjoint ones commit.
#[test]
fn range_deletes_conflict_with_reads_and_writes_in_their_range() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts(Duration::ZERO)).unwrap();
    let ks = db.keyspace("t").unwrap();
    let out = db.keyspace("out").unwrap();
    for k in ["a", "b", "m", "n", "y"] {
        ks.put(k, "1").unwrap();
    }

    // T1 counts [a, n); T2 deletes [m, z) and commits; T1's write fails.
    let mut t1 = db.begin(Isolation::Serializable).unwrap();
    assert_eq!(t1.range(&ks, "a".."n").unwrap().count(), 3);
    let mut t2 = db.begin(Isolation::Serializable).unwrap();
    t2.delete_range(&ks, "m".."z").unwrap();
    t2.commit().unwrap();
    t1.put(&out, "count", "3").unwrap();
    assert!(matches!(t1.commit(), Err(Error::Conflict { .. })));

    // T3 reads b; T4 deletes [a, c) and commits; T3's write fails.
    let mut t3 = db.begin(Isolation::Serializable).unwrap();
    assert!(t3.get(&ks, "b").unwrap().is_some());
    let mut t4 = db.begin(Isolation::Serializable).unwrap();
    t4.delete_range(&ks, "a".."c").unwrap();
    t4.commit().unwrap();
    t3.put(&out, "saw-b", "yes").unwrap();
    assert!(matches!(t3.commit(), Err(Error::Conflict { .. })));

    // T5 deletes [p, r) under snapshot isolation; q is written meanwhile:
    // first committer wins.
    let mut t5 = db.begin(Isolation::Snapshot).unwrap();
    t5.delete_range(&ks, "p".."r").unwrap();
    ks.put("q", "1").unwrap();
    assert!(matches!(t5.commit(), Err(Error::Conflict { .. })));

    // Disjoint: a scan of [a, c) and a range delete of [x, z) both commit.
    let mut t6 = db.begin(Isolation::Serializable).unwrap();
    let _ = t6.range(&ks, "a".."c").unwrap().count();
    let mut t7 = db.begin(Isolation::Serializable).unwrap();
    t7.delete_range(&ks, "x".."z").unwrap();
    t7.commit().unwrap();
    t6.put(&out, "x", "1").unwrap();
    t6.commit().unwrap();
    assert_eq!(ks.get("q").unwrap().as_deref(), Some(&b"1"[..]));
}

/// A table cut between a key and the key that is its successor (the same
/// bytes and a 0) while a kept range tombstone spans the cut: the first
/// table's tombstones must not reach the second key, or both tables of the
/// level would claim it and a point read, looking in the first, would
/// miss it.
#[test]
fn a_table_cut_before_a_successor_key_under_a_tombstone_keeps_it_readable() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(Duration::from_secs(3600));
    // Every new user key starts a table.
    o.target_file_size = 1;
    o.full_compaction_threads = 1;
    let db = Db::open(dir.path(), o).unwrap();
    let ks = db.keyspace("t").unwrap();
    let (a, a0) = (b"a".to_vec(), b"a\0".to_vec());
    ks.put(&a, "old").unwrap();
    ks.put(&a0, "old").unwrap();
    ks.put("c", "old").unwrap();
    // Kept: the history window reaches back past it.
    ks.delete_range(&b"0"[..]..&b"z"[..]).unwrap();
    ks.put(&a, "new").unwrap();
    ks.put(&a0, "new").unwrap();
    db.compact().unwrap();
    let check = |db: &Db| {
        let ks = db.keyspace("t").unwrap();
        assert_eq!(ks.get(&a).unwrap().as_deref(), Some(&b"new"[..]));
        assert_eq!(ks.get(&a0).unwrap().as_deref(), Some(&b"new"[..]), "a\\0");
        assert_eq!(ks.get("c").unwrap(), None);
        assert_eq!(
            collect(ks.iter().unwrap()),
            vec![(a.clone(), b"new".to_vec()), (a0.clone(), b"new".to_vec())]
        );
    };
    check(&db);
    drop(ks);
    drop(db);
    check(&Db::open(dir.path(), opts(Duration::from_secs(3600))).unwrap());
}
