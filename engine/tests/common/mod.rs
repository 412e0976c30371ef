//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use strata_engine::{Db, Keyspace, Options};

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
