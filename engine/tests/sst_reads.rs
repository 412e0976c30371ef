//! SSTs read through memory mappings and through positioned reads
//! (`Options::sst_reads`): the same answers either way, across flushes,
//! compactions and reopens (also switching between the two), and damage met
//! by a positioned read is an error naming the file and the offset, never a
//! panic.

mod common;

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_engine::{Db, Error, Keyspace, MemoryKeyProvider, Options, SstReads};

use common::Rng;

fn options(reads: SstReads, encrypted: bool) -> Options {
    let mut o = common::small_options();
    o.sst_reads = reads;
    // A small block cache and table cache, so reads keep reaching the files
    // and tables are reopened.
    o.block_cache_size = 16 * 1024;
    o.table_cache_capacity = 4;
    if encrypted {
        o.key_provider = Some(Arc::new(MemoryKeyProvider::new(1, [0x37; 32])));
    }
    o
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn pairs(
    it: impl Iterator<Item = strata_engine::Result<strata_engine::KvPair>>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    it.map(|r| {
        let (k, v) = r.unwrap();
        (k.to_vec(), v.to_vec())
    })
    .collect()
}

fn bound(rng: &mut Rng) -> Bound<Vec<u8>> {
    let key = format!("k{:04}", rng.below(1300)).into_bytes();
    match rng.below(3) {
        0 => Bound::Included(key),
        1 => Bound::Excluded(key),
        _ => Bound::Unbounded,
    }
}

/// Point reads and bounded scans both ways, checked against the model;
/// returns what was read, so runs under different settings can be compared.
fn read_and_check(ks: &Keyspace, model: &Model, rng: &mut Rng, out: &mut Vec<String>) {
    for _ in 0..300 {
        let key = format!("k{:04}", rng.below(1300)).into_bytes();
        let got = ks.get(&key).unwrap().map(|v| v.to_vec());
        assert_eq!(got.as_ref(), model.get(&key), "get {key:?}");
        out.push(format!("{key:?}={:?}", got.map(|v| v.len())));
    }
    for _ in 0..20 {
        let (lo, hi) = (bound(rng), bound(rng));
        // Filtered, not `BTreeMap::range`: bounds may cross.
        let expected: Vec<(Vec<u8>, Vec<u8>)> = model
            .iter()
            .filter(|(k, _)| RangeBounds::<Vec<u8>>::contains(&(lo.as_ref(), hi.as_ref()), *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let range = (lo.clone(), hi.clone());
        let forward = pairs(ks.range::<Vec<u8>, _>(range.clone()).unwrap());
        assert_eq!(forward, expected, "{lo:?}..{hi:?}");
        let mut backward = pairs(ks.range::<Vec<u8>, _>(range).unwrap().rev());
        backward.reverse();
        assert_eq!(backward, expected, "reverse {lo:?}..{hi:?}");
        let bytes: usize = forward.iter().map(|(k, v)| k.len() + v.len()).sum();
        out.push(format!(
            "{lo:?}..{hi:?}: {} entries, {bytes} bytes",
            forward.len()
        ));
    }
    common::check(ks, model);
}

/// Paths of the SSTs of `dir` this process has mapped now.
fn mapped_tables(dir: &Path) -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let dir = dir.to_string_lossy().into_owned();
    maps.lines()
        .filter(|l| l.contains(&dir) && l.ends_with(".sst"))
        .map(str::to_owned)
        .collect()
}

/// The same workload, round `r` opened with `schedule[r]`: puts (some of
/// blob-like size) and deletes across flushes and compactions, reads
/// after each, a reopen between rounds. Returns everything read.
fn run(dir: &Path, schedule: &[SstReads], encrypted: bool) -> Vec<String> {
    let mut rng = Rng(0x5eed_0f55_7ab1_e5e5);
    let mut model = Model::new();
    let mut out = Vec::new();
    let mut compactions = 0;
    for (round, &reads) in schedule.iter().enumerate() {
        let db = Db::open(dir, options(reads, encrypted)).unwrap();
        let ks = db.keyspace("t").unwrap();
        read_and_check(&ks, &model, &mut rng, &mut out);
        for step in 0..2500u64 {
            let key = format!("k{:04}", rng.below(1200)).into_bytes();
            if rng.below(6) == 0 {
                ks.delete(&key).unwrap();
                model.remove(&key);
            } else {
                let len = if rng.below(50) == 0 {
                    4096 + rng.below(12_000) as usize
                } else {
                    rng.below(300) as usize
                };
                let value: Vec<u8> = (0..len).map(|i| (step as usize * 7 + i) as u8).collect();
                ks.put(&key, &value).unwrap();
                model.insert(key, value);
            }
            if step == 1200 {
                db.flush().unwrap();
            }
        }
        match round % 3 {
            0 => db.compact().unwrap(),
            1 => db.flush().unwrap(),
            _ => {}
        }
        read_and_check(&ks, &model, &mut rng, &mut out);
        let stats = db.stats();
        let k = stats.keyspace("t").unwrap();
        assert!(k.flushes > 0, "round {round}: nothing flushed");
        compactions += k.compactions;
        let mapped = mapped_tables(dir);
        match reads {
            SstReads::Pread => assert!(mapped.is_empty(), "SSTs mapped: {mapped:?}"),
            SstReads::Mmap => assert!(!mapped.is_empty(), "no SST mapped"),
        }
        drop(ks);
        db.close().unwrap();
    }
    assert!(compactions > 0, "nothing was compacted");
    let db = Db::open(dir, options(schedule[0], encrypted)).unwrap();
    let stats = db.stats();
    let k = stats.keyspace("t").unwrap();
    assert!(k.levels.iter().map(|l| l.files).sum::<usize>() > 1);
    let report = db.verify().unwrap();
    assert!(report.is_ok(), "{:?}", report.damaged);
    out
}

#[test]
fn mapped_and_positioned_reads_give_the_same_answers() {
    use SstReads::{Mmap, Pread};
    for encrypted in [false, true] {
        let mut runs = Vec::new();
        for schedule in [[Mmap; 4], [Pread; 4], [Pread, Mmap, Pread, Mmap]] {
            let dir = tempfile::tempdir().unwrap();
            runs.push((schedule, run(dir.path(), &schedule, encrypted)));
        }
        let (first, reads) = &runs[0];
        for (schedule, other) in &runs[1..] {
            assert_eq!(
                reads.len(),
                other.len(),
                "{first:?} and {schedule:?}, encrypted {encrypted}"
            );
            for (a, b) in reads.iter().zip(other) {
                assert_eq!(a, b, "{first:?} and {schedule:?}, encrypted {encrypted}");
            }
        }
    }
}

/// Options without background threads: no compaction replaces the
/// damaged tables while a test reads them.
fn quiet(reads: SstReads) -> Options {
    Options {
        background_threads: false,
        ..options(reads, false)
    }
}

/// A database of one keyspace "t" with `n` keys flushed to SSTs, closed.
fn flushed_db(dir: &Path, n: u32) -> Model {
    let mut model = Model::new();
    let db = Db::open(dir, quiet(SstReads::Pread)).unwrap();
    let ks = db.keyspace("t").unwrap();
    for i in 0..n {
        let key = format!("k{i:05}").into_bytes();
        let value = vec![(i % 251) as u8; 100];
        ks.put(&key, &value).unwrap();
        model.insert(key, value);
    }
    db.flush().unwrap();
    drop(ks);
    db.close().unwrap();
    model
}

fn tables(dir: &Path) -> Vec<PathBuf> {
    let mut t: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sst"))
        .collect();
    t.sort();
    t
}

/// Checks an error met reading a damaged table: corruption, naming the
/// table's file and an offset.
fn assert_names_file_and_offset(e: &Error, tables: &[PathBuf]) {
    match e {
        Error::Format { path, .. } => assert!(tables.contains(path), "{e}"),
        other => panic!("not a format error: {other}"),
    }
    assert!(e.is_corruption(), "{e}");
    assert!(e.to_string().contains("at offset"), "{e}");
}

/// Every key read, or the errors met; never a panic, never wrong data.
fn read_all(ks: &Keyspace, model: &Model) -> Vec<Error> {
    let mut errors = Vec::new();
    for (k, v) in model {
        match ks.get(k) {
            Ok(got) => assert_eq!(got.as_deref(), Some(&v[..]), "{k:?}"),
            Err(e) => errors.push(e),
        }
    }
    for reverse in [false, true] {
        let it = ks.iter().unwrap();
        let it: Box<dyn Iterator<Item = _>> = if reverse {
            Box::new(it.rev())
        } else {
            Box::new(it)
        };
        for r in it {
            match r {
                Ok((k, v)) => assert_eq!(model.get(&k[..]).map(|v| &v[..]), Some(&v[..])),
                Err(e) => {
                    errors.push(e);
                    break;
                }
            }
        }
    }
    errors
}

/// An SST cut short while the database has it open: through a mapping the
/// next read of a page past the cut would be SIGBUS; through positioned
/// reads it is an error naming the file and the offset of the short read,
/// and what lies before the cut still reads.
#[test]
fn a_table_cut_short_under_positioned_reads_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let model = flushed_db(dir.path(), 3000);
    let mut opts = quiet(SstReads::Pread);
    opts.block_cache_size = 0;
    opts.table_cache_capacity = 1000;
    let db = Db::open(dir.path(), opts).unwrap();
    let ks = db.keyspace("t").unwrap();
    // Open every table (the table cache keeps them, with their size).
    assert!(read_all(&ks, &model).is_empty());
    let tables = tables(dir.path());
    assert!(!tables.is_empty());
    for t in &tables {
        let len = std::fs::metadata(t).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(t).unwrap();
        f.set_len(len / 2).unwrap();
    }
    let errors = read_all(&ks, &model);
    assert!(!errors.is_empty(), "no read met the cut");
    for e in &errors {
        assert_names_file_and_offset(e, &tables);
        assert!(e.to_string().contains("bytes asked"), "{e}");
    }
    // Keys before the cut of their table still read.
    let first = model.keys().next().unwrap();
    assert!(ks.get(first).is_ok());
    drop(ks);
    drop(db);
}

/// A flipped byte in a table's data, read through positioned reads, is
/// reported (checksum) with the file and the block's offset, by reads and
/// by `verify_dir`.
#[test]
fn a_corrupted_table_under_positioned_reads_is_an_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let model = flushed_db(dir.path(), 3000);
    let tables = tables(dir.path());
    for t in &tables {
        let mut bytes = std::fs::read(t).unwrap();
        let at = bytes.len() / 3;
        bytes[at] ^= 0x40;
        std::fs::write(t, bytes).unwrap();
    }
    let report = Db::verify_dir(dir.path(), &quiet(SstReads::Pread)).unwrap();
    assert!(!report.damaged.is_empty());
    for d in &report.damaged {
        assert!(tables.contains(&d.path), "{}", d.error);
        assert_names_file_and_offset(&d.error, &tables);
    }
    let mut opts = quiet(SstReads::Pread);
    opts.block_cache_size = 0;
    let db = Db::open(dir.path(), opts).unwrap();
    let ks = db.keyspace("t").unwrap();
    let errors = read_all(&ks, &model);
    assert!(!errors.is_empty(), "the damage went unnoticed");
    for e in &errors {
        assert_names_file_and_offset(e, &tables);
    }
}
