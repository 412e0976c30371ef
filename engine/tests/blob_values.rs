//! Key-value separation: values at or above `blob_threshold` live in blob
//! files. Checked against a model across flushes, compactions (with
//! relocation out of mostly-dead blob files), reopening, time-travel
//! reads, checkpoints, damage and encryption.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::Rng;
use strata_engine::{Db, MemoryKeyProvider, Options, Timestamp};

fn options() -> Options {
    Options {
        blob_threshold: Some(100),
        blob_garbage_ratio: 0.3,
        ..common::small_options()
    }
}

/// The blob files in `dir`: (number, size).
fn blob_files(dir: &Path) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_suffix(".blob")?.parse().ok()?;
            Some((n, e.metadata().unwrap().len()))
        })
        .collect();
    out.sort_unstable();
    out
}

fn value(rng: &mut Rng, step: u64) -> Vec<u8> {
    // Half below the threshold, half above, some spanning log blocks.
    let len = match rng.below(4) {
        0 => rng.below(100),
        1 => 100 + rng.below(400),
        2 => rng.below(3000),
        _ => 40_000 + rng.below(10_000),
    } as usize;
    (0..len).map(|i| (step as usize * 31 + i) as u8).collect()
}

#[test]
fn separated_values_match_a_model_across_flush_compaction_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options();
    let mut rng = Rng(0xb10b);
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut step = 0u64;
    for round in 0..5 {
        let db = common::open(dir.path(), &opts);
        let ks = db.keyspace("data").unwrap();
        common::check(&ks, &model);
        for _ in 0..1500 {
            step += 1;
            let key = format!("k{:04}", rng.below(400)).into_bytes();
            match rng.below(10) {
                0 => {
                    ks.delete(&key).unwrap();
                    model.remove(&key);
                }
                1 => {
                    let mut b = db.batch();
                    let mut writes = Vec::new();
                    for _ in 0..1 + rng.below(4) {
                        let k = format!("k{:04}", rng.below(400)).into_bytes();
                        let v = value(&mut rng, step);
                        b.put(&ks, &k, &v).unwrap();
                        writes.push((k, v));
                    }
                    db.write(
                        b,
                        strata_engine::WriteOptions {
                            sync: rng.below(2) == 0,
                        },
                    )
                    .unwrap();
                    for (k, v) in writes {
                        model.insert(k, v);
                    }
                }
                _ => {
                    let v = value(&mut rng, step);
                    ks.put(&key, &v).unwrap();
                    model.insert(key, v);
                }
            }
        }
        common::check(&ks, &model);
        match round % 3 {
            0 => db.flush().unwrap(),
            1 => db.compact().unwrap(),
            _ => {}
        }
        common::check(&ks, &model);
        assert!(
            db.verify().unwrap().is_ok(),
            "round {round}: verify found damage"
        );
        drop(ks);
        db.close().unwrap();
        assert!(!blob_files(dir.path()).is_empty(), "no value was separated");
    }
    // Overwrite every key with a small value and compact: nothing points
    // into any blob file any more, and every one of them is deleted.
    let db = common::open(dir.path(), &opts);
    let ks = db.keyspace("data").unwrap();
    let before = blob_files(dir.path());
    for k in model.keys().cloned().collect::<Vec<_>>() {
        ks.put(&k, b"small").unwrap();
        model.insert(k, b"small".to_vec());
    }
    db.compact().unwrap();
    common::check(&ks, &model);
    drop(ks);
    db.close().unwrap();
    let after = blob_files(dir.path());
    assert!(!before.is_empty());
    assert!(
        after.is_empty(),
        "blob files left: {after:?} (before: {before:?})"
    );
}

#[test]
fn compaction_relocates_mostly_dead_blob_files_and_deletes_them() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        memtable_size: 64 * 1024,
        ..options()
    };
    let db = common::open(dir.path(), &opts);
    let ks = db.keyspace("data").unwrap();
    let big = |i: u64, gen: u8| vec![gen; 1000 + i as usize];
    for i in 0..200u64 {
        ks.put(format!("k{i:04}"), big(i, 1)).unwrap();
    }
    db.flush().unwrap();
    let first = blob_files(dir.path());
    assert!(!first.is_empty());
    // Overwrite three in four keys: the first files are mostly dead.
    for i in (0..200u64).filter(|i| i % 4 != 0) {
        ks.put(format!("k{i:04}"), big(i, 2)).unwrap();
    }
    db.compact().unwrap();
    let after = blob_files(dir.path());
    for (n, _) in &first {
        assert!(
            !after.iter().any(|(m, _)| m == n),
            "blob file {n} survived its relocation: {after:?}"
        );
    }
    for i in 0..200u64 {
        let gen = if i % 4 == 0 { 1 } else { 2 };
        assert_eq!(
            ks.get(format!("k{i:04}")).unwrap().as_deref(),
            Some(&big(i, gen)[..])
        );
    }
    // What is left is about what is live: 200 values of ~1.1 KB.
    let total: u64 = after.iter().map(|(_, s)| s).sum();
    let live: u64 = (0..200u64).map(|i| 1000 + i).sum();
    assert!(
        total < live * 3 / 2,
        "blob files hold {total} bytes for {live} live"
    );
    drop(ks);
    db.close().unwrap();
    let db = common::open(dir.path(), &opts);
    let ks = db.keyspace("data").unwrap();
    assert_eq!(ks.get("k0001").unwrap().as_deref(), Some(&big(1, 2)[..]));
}

#[test]
fn old_versions_of_separated_values_stay_readable_through_relocation() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        history_retention: std::time::Duration::from_secs(3600),
        blob_garbage_ratio: 0.01,
        ..options()
    };
    let db = common::open(dir.path(), &opts);
    let ks = db.keyspace("data").unwrap();
    let mut stamps: Vec<(Timestamp, Vec<u8>)> = Vec::new();
    for gen in 0..5u8 {
        let v = vec![gen; 5000];
        stamps.push((ks.put("key", &v).unwrap(), v));
        for i in 0..20 {
            ks.put(format!("other{i}"), vec![gen; 300]).unwrap();
        }
        db.flush().unwrap();
        db.compact().unwrap();
    }
    for (ts, v) in &stamps {
        assert_eq!(ks.get_at("key", *ts).unwrap().as_deref(), Some(&v[..]));
    }
    let history = ks.history("key").unwrap();
    assert_eq!(history.len(), stamps.len());
    for (h, (ts, v)) in history.iter().rev().zip(&stamps) {
        assert_eq!(h.ts, *ts);
        assert_eq!(h.value.as_deref(), Some(&v[..]));
    }
}

#[test]
fn a_damaged_blob_record_is_an_error_naming_the_file_never_wrong_data() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options();
    {
        let db = common::open(dir.path(), &opts);
        let ks = db.keyspace("data").unwrap();
        ks.put("big", vec![7u8; 20_000]).unwrap();
        ks.put("small", b"s").unwrap();
        db.flush().unwrap();
        db.close().unwrap();
    }
    let (n, size) = blob_files(dir.path())[0];
    let path = dir.path().join(format!("{n:06}.blob"));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[size as usize / 2] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let db = common::open(dir.path(), &opts);
    let ks = db.keyspace("data").unwrap();
    let err = ks.get("big").unwrap_err();
    assert!(err.to_string().contains(".blob"), "{err}");
    assert!(ks.iter().unwrap().any(|r| r.is_err()));
    // The rest reads on; verify names the damaged file.
    assert_eq!(ks.get("small").unwrap().as_deref(), Some(&b"s"[..]));
    let report = db.verify().unwrap();
    assert!(!report.is_ok());
    assert!(format!("{report:?}").contains(".blob"), "{report:?}");
}

#[test]
fn a_missing_blob_file_fails_the_open_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options();
    {
        let db = common::open(dir.path(), &opts);
        let ks = db.keyspace("data").unwrap();
        ks.put("big", vec![7u8; 20_000]).unwrap();
        db.flush().unwrap();
        db.close().unwrap();
    }
    let (n, _) = blob_files(dir.path())[0];
    std::fs::remove_file(dir.path().join(format!("{n:06}.blob"))).unwrap();
    let err = Db::open(dir.path(), opts).unwrap_err();
    assert!(err.to_string().contains(&format!("{n:06}.blob")), "{err}");
}

#[test]
fn blob_files_are_encrypted_and_checkpoints_carry_them() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        key_provider: Some(Arc::new(MemoryKeyProvider::new(3, [9; 32]))),
        ..options()
    };
    let pattern = b"SECRET-PATTERN-0123456789".repeat(200);
    let db = common::open(dir.path(), &opts);
    let ks = db.keyspace("data").unwrap();
    ks.put("flushed", &pattern).unwrap();
    db.flush().unwrap();
    // One more in the WAL's own blob file, not yet flushed.
    ks.put("unflushed", &pattern).unwrap();
    for (n, _) in blob_files(dir.path()) {
        let bytes = std::fs::read(dir.path().join(format!("{n:06}.blob"))).unwrap();
        assert!(
            !bytes.windows(14).any(|w| w == b"SECRET-PATTERN"),
            "blob file {n} holds the value in the clear"
        );
    }
    let copy = dir.path().join("copy");
    db.checkpoint(&copy).unwrap();
    drop(ks);
    db.close().unwrap();
    let db = common::open(&copy, &opts);
    let ks = db.keyspace("data").unwrap();
    assert_eq!(ks.get("flushed").unwrap().as_deref(), Some(&pattern[..]));
    assert_eq!(ks.get("unflushed").unwrap().as_deref(), Some(&pattern[..]));
    assert!(db.verify().unwrap().is_ok());
}

#[test]
fn values_with_a_ttl_and_values_below_the_threshold_stay_in_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options();
    let db = common::open(dir.path(), &opts);
    let ks = db.keyspace("data").unwrap();
    ks.put("small", vec![1u8; 99]).unwrap();
    ks.put_with_ttl("ttl", vec![2u8; 5000], std::time::Duration::from_secs(3600))
        .unwrap();
    db.flush().unwrap();
    assert!(blob_files(dir.path()).is_empty());
    ks.put("big", vec![3u8; 100]).unwrap();
    db.flush().unwrap();
    assert_eq!(blob_files(dir.path()).len(), 1);
    assert_eq!(ks.get("ttl").unwrap().as_deref(), Some(&[2u8; 5000][..]));
    assert_eq!(ks.get("big").unwrap().as_deref(), Some(&[3u8; 100][..]));
}

#[test]
fn reencrypt_moves_separated_values_to_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(MemoryKeyProvider::new(1, [1; 32]));
    let opts = Options {
        key_provider: Some(provider.clone()),
        ..options()
    };
    let db = common::open(dir.path(), &opts);
    let ks = db.keyspace("data").unwrap();
    for i in 0..50u32 {
        ks.put(format!("k{i:02}"), vec![i as u8; 2000]).unwrap();
    }
    db.flush().unwrap();
    provider.add_key(2, [2; 32]);
    provider.set_current(2).unwrap();
    db.reencrypt().unwrap();
    let stats = db.stats();
    assert_eq!(
        stats.bytes_by_key_id.keys().copied().collect::<Vec<_>>(),
        vec![Some(2)],
        "{stats:?}"
    );
    assert!(stats.blob_files > 0 && stats.blob_live_bytes > 0);
    drop(ks);
    db.close().unwrap();
    provider.remove_key(1).unwrap();
    let db = common::open(dir.path(), &opts);
    let ks = db.keyspace("data").unwrap();
    for i in 0..50u32 {
        assert_eq!(
            ks.get(format!("k{i:02}")).unwrap().as_deref(),
            Some(&vec![i as u8; 2000][..])
        );
    }
    assert!(db.verify().unwrap().is_ok());
}

/// A blob file the state no longer holds stays while a reader of the
/// writer can still reach it, whatever another process opening the
/// directory read-only (or describing it) does meanwhile: only the process
/// that logged the removal deletes it.
#[test]
fn a_read_only_open_never_deletes_a_blob_file_a_writer_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options();
    let db = common::open(dir.path(), &opts);
    let ks = db.keyspace("data").unwrap();
    for i in 0..20u32 {
        ks.put(format!("k{i:02}"), vec![1u8; 3000]).unwrap();
    }
    db.flush().unwrap();
    // An iterator pins the files it reads, not the versions compaction
    // keeps: the first blob file leaves the state but not the disk.
    let mut it = ks.iter().unwrap();
    assert_eq!(it.next().unwrap().unwrap().1.as_ref(), &[1u8; 3000][..]);
    for i in 0..20u32 {
        ks.put(format!("k{i:02}"), vec![2u8; 3000]).unwrap();
    }
    db.compact().unwrap();
    let first = blob_files(dir.path())[0];
    let ro = Db::open_read_only(dir.path(), opts.clone()).unwrap();
    assert_eq!(
        ro.keyspace("data").unwrap().get("k03").unwrap().as_deref(),
        Some(&[2u8; 3000][..])
    );
    drop(ro);
    let _ = Db::describe_dir(dir.path(), &opts);
    assert!(
        blob_files(dir.path()).contains(&first),
        "{first:?} was deleted"
    );
    assert_eq!(it.count(), 19);
    assert!(
        !blob_files(dir.path()).contains(&first),
        "{first:?} outlived its readers"
    );
    drop(ks);
    db.close().unwrap();
}
