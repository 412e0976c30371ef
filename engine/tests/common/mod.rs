//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use strata_engine::{Db, Keyspace, Options, Snapshot, Timestamp};

/// Options that make flushes and compactions happen after a few kilobytes.
pub fn small_options() -> Options {
    Options {
        memtable_size: 16 * 1024,
        block_size: 512,
        base_level_size: 64 * 1024,
        target_file_size: 16 * 1024,
        l0_compaction_trigger: 2,
        l0_slowdown_trigger: 8,
        l0_stop_trigger: 12,
        block_cache_size: 256 * 1024,
        ..Options::default()
    }
}

/// Every entry of a keyspace, forward.
pub fn scan(ks: &Keyspace) -> Vec<(Vec<u8>, Vec<u8>)> {
    ks.iter()
        .unwrap()
        .map(|r| {
            let (k, v) = r.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

/// Checks a keyspace against a model: full scans both ways and point reads.
pub fn check(ks: &Keyspace, model: &BTreeMap<Vec<u8>, Vec<u8>>) {
    let expected: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(scan(ks), expected, "forward scan");
    let mut back: Vec<_> = ks
        .iter()
        .unwrap()
        .rev()
        .map(|r| {
            let (k, v) = r.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect();
    back.reverse();
    assert_eq!(back, expected, "reverse scan");
    for (k, v) in model {
        assert_eq!(ks.get(k).unwrap().as_deref(), Some(&v[..]), "get {k:?}");
    }
}

/// Opens `dir` with `opts`.
pub fn open(dir: &std::path::Path, opts: &Options) -> Db {
    Db::open(dir, opts.clone()).unwrap()
}

/// Where a live WAL's records end: past them lie the zeros allocated ahead
/// of the appends (the last record ends in its checksummed payload, not in
/// zeros, for the writes these tests make).
pub fn records_end(wal: &[u8]) -> usize {
    wal.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
}

#[allow(unused_imports)]
pub use strata_engine::fs::TmpfsMount;

/// A deterministic pseudo-random sequence (xorshift), so failures repeat.
pub struct Rng(pub u64);

/// How many files in `dir` have names ending in `suffix`.
pub fn files_ending(dir: &std::path::Path, suffix: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(suffix)
        })
        .count()
}

impl Rng {
    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Every keyspace's entries, with each version's commit timestamp.
pub type State = BTreeMap<String, BTreeMap<Vec<u8>, (Vec<u8>, Option<Timestamp>)>>;

/// The whole database as `snap` sees it (keyspaces without entries left
/// out, so a copy that never created them compares equal).
pub fn state_of(db: &Db, snap: &Snapshot) -> State {
    let mut out = State::new();
    for name in db.keyspaces() {
        let ks = db.keyspace(&name).unwrap();
        let m = out.entry(name).or_default();
        for r in snap.range::<&[u8], _>(&ks, ..).unwrap() {
            let (k, _) = r.unwrap();
            let e = snap.get_entry(&ks, &k).unwrap().unwrap();
            m.insert(k.to_vec(), (e.value.to_vec(), e.ts));
        }
    }
    out.retain(|_, m| !m.is_empty());
    out
}

/// The whole database as of now.
pub fn latest(db: &Db) -> State {
    state_of(db, &db.snapshot().unwrap())
}
