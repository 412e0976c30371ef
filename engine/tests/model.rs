//! Large random workloads checked against a `BTreeMap` model across flushes,
//! compactions and reopens, and iteration with every kind of bound.

mod common;

use std::collections::BTreeMap;
use std::ops::Bound;

use proptest::prelude::*;
use strata_engine::Keyspace;

/// A deterministic pseudo-random sequence (xorshift), so failures repeat.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn random_workload_matches_model_across_flush_compaction_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    // About half the values are stored apart from the tree.
    let opts = strata_engine::Options {
        blob_threshold: Some(100),
        ..common::small_options()
    };
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let names = ["alpha", "beta", "gamma"];
    let mut models: Vec<BTreeMap<Vec<u8>, Vec<u8>>> = vec![BTreeMap::new(); names.len()];
    for round in 0..6 {
        let db = common::open(dir.path(), &opts);
        let spaces: Vec<Keyspace> = names.iter().map(|n| db.keyspace(n).unwrap()).collect();
        for (ks, model) in spaces.iter().zip(&models) {
            common::check(ks, model);
        }
        for step in 0..4000u64 {
            let which = rng.below(names.len() as u64) as usize;
            let key = format!("k{:05}", rng.below(3000)).into_bytes();
            if rng.below(5) == 0 {
                spaces[which].delete(&key).unwrap();
                models[which].remove(&key);
            } else {
                let len = rng.below(200) as usize;
                let value: Vec<u8> = (0..len).map(|i| (step as usize + i) as u8).collect();
                spaces[which].put(&key, &value).unwrap();
                models[which].insert(key, value);
            }
            if step % 1500 == 1499 {
                for (ks, model) in spaces.iter().zip(&models) {
                    common::check(ks, model);
                }
            }
        }
        match round % 3 {
            0 => db.flush().unwrap(),
            1 => db.compact().unwrap(),
            _ => {}
        }
        for (ks, model) in spaces.iter().zip(&models) {
            common::check(ks, model);
        }
        let stats = db.stats();
        let flushes: u64 = stats.keyspaces.iter().map(|k| k.flushes).sum();
        let compactions: u64 = stats.keyspaces.iter().map(|k| k.compactions).sum();
        assert!(flushes > 0, "round {round}: the workload never flushed");
        assert!(compactions > 0, "round {round}: nothing was compacted");
        eprintln!(
            "round {round}: {flushes} flushes, {compactions} compactions, levels {:?}",
            stats
                .keyspaces
                .iter()
                .map(|k| k.levels.iter().map(|l| l.files).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        );
        drop(spaces);
        db.close().unwrap();
    }
    // Compaction ran in the background too.
    let db = common::open(dir.path(), &opts);
    let stats = db.stats();
    let files: usize = stats
        .keyspaces
        .iter()
        .flat_map(|k| &k.levels)
        .map(|l| l.files)
        .sum();
    assert!(files > 0);
}

fn bound(kind: u8, key: Vec<u8>) -> Bound<Vec<u8>> {
    match kind % 3 {
        0 => Bound::Included(key),
        1 => Bound::Excluded(key),
        _ => Bound::Unbounded,
    }
}

fn model_range(
    model: &BTreeMap<Vec<u8>, Vec<u8>>,
    lo: &Bound<Vec<u8>>,
    hi: &Bound<Vec<u8>>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let in_lo = |k: &Vec<u8>| match lo {
        Bound::Included(l) => k >= l,
        Bound::Excluded(l) => k > l,
        Bound::Unbounded => true,
    };
    let in_hi = |k: &Vec<u8>| match hi {
        Bound::Included(h) => k <= h,
        Bound::Excluded(h) => k < h,
        Bound::Unbounded => true,
    };
    model
        .iter()
        .filter(|(k, _)| in_lo(k) && in_hi(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
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

/// A transaction's scans merge its own puts and deletes with the
/// committed state for every kind of bound, in a keyspace beside another
/// the transaction also wrote to.
#[test]
fn transaction_scans_merge_own_writes_within_every_kind_of_bound() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path(), &common::small_options());
    let (ks, other) = (db.keyspace("ks").unwrap(), db.keyspace("zz").unwrap());
    let mut model = BTreeMap::new();
    for k in ["a", "ab", "b", "bb", "c", "d"] {
        ks.put(k, b"base").unwrap();
        model.insert(k.as_bytes().to_vec(), b"base".to_vec());
    }
    let mut tx = db.begin(strata_engine::Isolation::Snapshot).unwrap();
    for (k, put) in [
        ("", true),
        ("aa", true),
        ("ab", false),
        ("bb", true),
        ("c", false),
        ("e", true),
    ] {
        if put {
            tx.put(&ks, k, b"own").unwrap();
            model.insert(k.as_bytes().to_vec(), b"own".to_vec());
        } else {
            tx.delete(&ks, k).unwrap();
            model.remove(k.as_bytes());
        }
    }
    tx.put(&other, "a", b"elsewhere").unwrap();
    let keys = ["", "a", "aa", "ab", "abc", "b", "bb", "c", "cd", "e", "f"];
    for lo_kind in 0..3u8 {
        for hi_kind in 0..3u8 {
            for lo in keys {
                for hi in keys {
                    let l = bound(lo_kind, lo.as_bytes().to_vec());
                    let h = bound(hi_kind, hi.as_bytes().to_vec());
                    let got = collect(tx.range(&ks, (l.clone(), h.clone())).unwrap());
                    assert_eq!(got, model_range(&model, &l, &h), "{l:?}..{h:?}");
                }
            }
        }
    }
}

#[test]
fn iteration_with_every_kind_of_bound() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path(), &common::small_options());
    let ks = db.keyspace("ks").unwrap();
    let mut model = BTreeMap::new();
    let mut rng = Rng(99);
    for i in 0..3000u64 {
        let key = vec![
            b'a' + rng.below(4) as u8,
            b'a' + rng.below(4) as u8,
            b'a' + rng.below(4) as u8,
        ];
        if i % 4 == 0 {
            ks.delete(&key).unwrap();
            model.remove(&key);
        } else {
            ks.put(&key, i.to_be_bytes()).unwrap();
            model.insert(key, i.to_be_bytes().to_vec());
        }
        // Leave data in the memtable, in L0 and deeper, all at once.
        if i == 1000 {
            db.compact().unwrap();
        }
        if i == 2000 {
            db.flush().unwrap();
        }
    }
    let keys: Vec<Vec<u8>> = [
        "", "a", "aa", "ab", "abc", "b", "bbb", "c", "cd", "dd", "ddd", "e",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    for lo_kind in 0..3u8 {
        for hi_kind in 0..3u8 {
            for lo in &keys {
                for hi in &keys {
                    let (l, h) = (bound(lo_kind, lo.clone()), bound(hi_kind, hi.clone()));
                    let expected = model_range(&model, &l, &h);
                    let range = (l.clone(), h.clone());
                    assert_eq!(
                        collect(ks.range::<Vec<u8>, _>(range.clone()).unwrap()),
                        expected,
                        "{l:?}..{h:?}"
                    );
                    let mut rev = collect(ks.range::<Vec<u8>, _>(range.clone()).unwrap().rev());
                    rev.reverse();
                    assert_eq!(rev, expected, "reverse {l:?}..{h:?}");
                    // Both ends at once meet in the middle without overlap.
                    let mut it = ks.range::<Vec<u8>, _>(range).unwrap();
                    let (mut front, mut back) = (Vec::new(), Vec::new());
                    loop {
                        match it.next() {
                            Some(r) => front.push(r.unwrap()),
                            None => break,
                        }
                        match it.next_back() {
                            Some(r) => back.push(r.unwrap()),
                            None => break,
                        }
                    }
                    back.reverse();
                    let both: Vec<_> = front
                        .into_iter()
                        .chain(back)
                        .map(|(k, v)| (k.to_vec(), v.to_vec()))
                        .collect();
                    assert_eq!(both, expected, "both ends {l:?}..{h:?}");
                }
            }
        }
    }
    for p in ["", "a", "ab", "abc", "d", "z"] {
        let expected: Vec<_> = model
            .iter()
            .filter(|(k, _)| k.starts_with(p.as_bytes()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(collect(ks.prefix(p).unwrap()), expected, "prefix {p:?}");
        let mut rev = collect(ks.prefix(p).unwrap().rev());
        rev.reverse();
        assert_eq!(rev, expected, "reverse prefix {p:?}");
    }
    // A prefix of 0xff bytes has no upper bound.
    ks.put([0xff, 0xff], b"top").unwrap();
    assert_eq!(
        collect(ks.prefix([0xff]).unwrap()),
        vec![(vec![0xff, 0xff], b"top".to_vec())]
    );
}

#[test]
fn an_iterator_sees_the_state_of_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path(), &common::small_options());
    let ks = db.keyspace("ks").unwrap();
    for i in 0..500u32 {
        ks.put(format!("{i:04}"), b"old").unwrap();
    }
    let it = ks.iter().unwrap();
    for i in 0..500u32 {
        ks.put(format!("{i:04}"), b"new").unwrap();
        ks.put(format!("{i:04}x"), b"added").unwrap();
    }
    db.flush().unwrap();
    db.compact().unwrap();
    let seen = collect(it);
    assert_eq!(seen.len(), 500);
    assert!(seen.iter().all(|(_, v)| v == b"old"));
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8, Vec<u8>),
    Delete(u8, u8),
    /// Keyspace, two keys and how each bounds the range.
    DeleteRange(u8, u8, u8, u8, u8),
    Batch(Vec<(u8, u8, Option<Vec<u8>>)>),
    /// A snapshot, checked against the models of its time until a reopen.
    Snapshot,
    Flush,
    Compact,
    Reopen,
    Scan(u8, u8, u8, bool),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..40;
    let ks = 0u8..2;
    prop_oneof![
        10 => (ks.clone(), key.clone(), proptest::collection::vec(any::<u8>(), 0..300)).prop_map(|(s, k, v)| Op::Put(s, k, v)),
        4 => (ks.clone(), key.clone()).prop_map(|(s, k)| Op::Delete(s, k)),
        2 => (ks.clone(), key.clone(), key.clone(), 0u8..3, 0u8..3).prop_map(|(s, a, b, x, y)| Op::DeleteRange(s, a, b, x, y)),
        1 => Just(Op::Snapshot),
        3 => proptest::collection::vec((ks.clone(), key.clone(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..50))), 1..8).prop_map(Op::Batch),
        1 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
        2 => (ks, key.clone(), key, any::<bool>()).prop_map(|(s, a, b, r)| Op::Scan(s, a, b, r)),
    ]
}

/// One model per keyspace.
type Models = Vec<BTreeMap<Vec<u8>, Vec<u8>>>;

fn key_of(k: u8) -> Vec<u8> {
    format!("key{k:03}").into_bytes()
}

proptest! {
    // 24 cases in the normal run; STRATA_MODEL_CASES=N for a long campaign.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("STRATA_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24),
        ..ProptestConfig::default()
    })]

    /// Random sequences of every operation, checked against the model after
    /// every step.
    #[test]
    fn state_machine(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = common::small_options();
        opts.memtable_size = 4096;
        // Most values stored apart, blob files emptied eagerly.
        opts.blob_threshold = Some(8);
        opts.blob_garbage_ratio = 0.2;
        let mut db = common::open(dir.path(), &opts);
        let mut models = vec![BTreeMap::<Vec<u8>, Vec<u8>>::new(); 2];
        let mut snapshots: Vec<(strata_engine::Snapshot, Models)> = Vec::new();
        let names = ["one", "two"];
        for op in ops {
            let spaces: Vec<Keyspace> = names.iter().map(|n| db.keyspace(n).unwrap()).collect();
            match op {
                Op::Put(s, k, v) => {
                    spaces[s as usize].put(key_of(k), &v).unwrap();
                    models[s as usize].insert(key_of(k), v);
                }
                Op::Delete(s, k) => {
                    spaces[s as usize].delete(key_of(k)).unwrap();
                    models[s as usize].remove(&key_of(k));
                }
                Op::DeleteRange(s, a, b, x, y) => {
                    let (lo, hi) = (bound(x, key_of(a.min(b))), bound(y, key_of(a.max(b))));
                    spaces[s as usize].delete_range((lo.clone(), hi.clone())).unwrap();
                    for (k, _) in model_range(&models[s as usize], &lo, &hi) {
                        models[s as usize].remove(&k);
                    }
                }
                Op::Snapshot => snapshots.push((db.snapshot().unwrap(), models.clone())),
                Op::Batch(writes) => {
                    let mut b = db.batch();
                    for (s, k, v) in &writes {
                        match v {
                            Some(v) => b.put(&spaces[*s as usize], key_of(*k), v).unwrap(),
                            None => b.delete(&spaces[*s as usize], key_of(*k)).unwrap(),
                        }
                    }
                    db.write(b, Default::default()).unwrap();
                    for (s, k, v) in writes {
                        match v {
                            Some(v) => { models[s as usize].insert(key_of(k), v); }
                            None => { models[s as usize].remove(&key_of(k)); }
                        }
                    }
                }
                Op::Flush => db.flush().unwrap(),
                Op::Compact => db.compact().unwrap(),
                Op::Reopen => {
                    drop(spaces);
                    snapshots.clear();
                    db.close().unwrap();
                    db = common::open(dir.path(), &opts);
                    continue;
                }
                Op::Scan(s, a, b, rev) => {
                    let (lo, hi) = (key_of(a.min(b)), key_of(a.max(b)));
                    let expected: Vec<_> = models[s as usize].range(lo.clone()..hi.clone()).map(|(k, v)| (k.clone(), v.clone())).collect();
                    let it = spaces[s as usize].range(lo..hi).unwrap();
                    let mut got = if rev { collect(it.rev()) } else { collect(it) };
                    if rev { got.reverse(); }
                    prop_assert_eq!(got, expected);
                }
            }
            for (ks, model) in spaces.iter().zip(&models) {
                common::check(ks, model);
            }
            for (snap, then) in &snapshots {
                for (ks, model) in spaces.iter().zip(then) {
                    let expected: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    prop_assert_eq!(collect(snap.range::<&[u8], _>(ks, ..).unwrap()), expected.clone());
                    let mut back = collect(snap.range::<&[u8], _>(ks, ..).unwrap().rev());
                    back.reverse();
                    prop_assert_eq!(back, expected);
                    for k in (0..40).map(key_of) {
                        prop_assert_eq!(snap.get(ks, &k).unwrap().map(|v| v.to_vec()), model.get(&k).cloned());
                    }
                }
            }
        }
    }
}
