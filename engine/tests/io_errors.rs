//! I/O errors (crash scenario S8 of the reliability checklist): every write,
//! sync, rename, remove and directory sync can fail with EIO, ENOSPC or a
//! short write, once or from then on. A failed call never acknowledges a
//! write, puts the database in an error state where writes fail and reads
//! work, and `resume` gets it going again once the cause is gone, with
//! nothing acknowledged lost.
//!
//! `STRATA_IO_ERROR_FULL=1` sweeps every fault position of a longer
//! workload.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_engine::fs::{FaultFs, FaultKind, FaultPlan, FaultTarget, FileSystem, SimFs};
use strata_engine::{Db, Error, Options, SstReads, WriteOptions};

const DIR: &str = "/db";

fn options(fs: Arc<dyn FileSystem>) -> Options {
    let mut o = common::small_options();
    o.fs = fs;
    o.memtable_size = 4 * 1024;
    o.target_file_size = 4 * 1024;
    o.base_level_size = 16 * 1024;
    o
}

/// Operation `i` writes these keys, all in one batch.
fn op_keys(i: usize) -> Vec<(String, Vec<u8>)> {
    (0..3)
        .map(|j| {
            (
                format!("k{i:04}-{j}"),
                vec![b'a' + (i % 26) as u8; 100 + j * 50],
            )
        })
        .collect()
}

/// The outcome of each operation: acknowledged, or failed (unknown).
#[derive(Debug, Default)]
struct Outcomes {
    acked: Vec<usize>,
    failed: Vec<usize>,
}

/// Runs `ops` synced batches with a flush and a compaction along the way,
/// continuing after failures (which must then be the error state). Returns
/// what was acknowledged.
fn workload(db: &Db, ops: usize) -> Outcomes {
    let mut out = Outcomes::default();
    let Ok(ks) = db.keyspace("data") else {
        return out;
    };
    let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for i in 0..ops {
        let mut b = db.batch();
        for (k, v) in op_keys(i) {
            b.put(&ks, &k, &v).unwrap();
        }
        let resumes = db.stats().resumes;
        match db.write(b, WriteOptions { sync: true }) {
            Ok(_) => {
                out.acked.push(i);
                model.extend(op_keys(i));
            }
            Err(e) => {
                out.failed.push(i);
                // An error is an I/O error or the error state, never
                // corruption or a panic.
                assert!(
                    matches!(e, Error::Io { .. } | Error::Poisoned(_)),
                    "write {i} failed with {e}"
                );
                // Once a write failed, later writes fail until a resume:
                // the caller's, or the background thread's own after an
                // I/O error in a flush or compaction.
                let mut b = db.batch();
                b.put(&ks, "probe", "x").unwrap();
                let probe = db.write(b, WriteOptions { sync: true });
                assert!(
                    matches!(probe, Err(Error::Poisoned(_))) || db.stats().resumes > resumes,
                    "a write after a failed one ({e}), with no resume between: {probe:?}"
                );
                // Reads keep working and see every acknowledged write.
                for (k, v) in model.iter().take(5) {
                    assert_eq!(ks.get(k).unwrap().as_deref(), Some(&v[..]));
                }
            }
        }
        if i == ops / 3 {
            let _ = db.flush();
        }
        if i == 2 * ops / 3 {
            let _ = db.compact();
        }
    }
    out
}

/// Checks a reopened database: every acknowledged operation whole, every
/// failed one whole or absent, nothing else.
fn check(db: &Db, out: &Outcomes, what: &str) {
    let ks = db.keyspace("data").unwrap();
    let mut expected: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for &i in &out.acked {
        for (k, v) in op_keys(i) {
            expected.insert(k.into_bytes(), v);
        }
    }
    let got: BTreeMap<Vec<u8>, Vec<u8>> = common::scan(&ks)
        .into_iter()
        .filter(|(k, _)| k.as_slice() != b"probe")
        .collect();
    let mut extra: BTreeMap<Vec<u8>, Vec<u8>> = got.clone();
    for (k, v) in &expected {
        assert_eq!(
            extra.remove(k).as_ref(),
            Some(v),
            "{what}: acknowledged key {} lost",
            String::from_utf8_lossy(k)
        );
    }
    for &i in &out.failed {
        let keys = op_keys(i);
        let present: Vec<bool> = keys
            .iter()
            .map(|(k, v)| extra.remove(k.as_bytes()).as_ref() == Some(v))
            .collect();
        assert!(
            present.iter().all(|&p| p) || present.iter().all(|&p| !p),
            "{what}: failed op {i} half applied: {present:?}"
        );
    }
    assert!(
        extra.is_empty(),
        "{what}: unexpected keys {:?}",
        extra.keys()
    );
}

/// One fault run: arm the fault at call `n`, run, then remove the cause,
/// resume, write once more, reopen and check. Returns whether the fault
/// fired.
fn run_with_fault(target: FaultTarget, kind: FaultKind, forever: bool, n: u64, ops: usize) -> bool {
    let sim = SimFs::new();
    let plan = FaultPlan::new();
    let fs: Arc<dyn FileSystem> = Arc::new(FaultFs::new(sim.clone(), plan.clone()));
    let what = format!("{target:?} {kind:?} forever={forever} at {n}");
    plan.arm(target, n, kind, forever);
    let mut out = Outcomes::default();
    match Db::open(DIR, options(fs.clone())) {
        Ok(db) => {
            out = workload(&db, ops);
            plan.disarm();
            // The cause is gone: resume, and writes work again.
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match db.resume() {
                    Ok(()) => break,
                    Err(e) => {
                        assert!(
                            Instant::now() < deadline,
                            "{what}: resume keeps failing: {e}"
                        );
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
            let ks = db.keyspace("data").unwrap();
            let i = ops + 1;
            let mut b = db.batch();
            for (k, v) in op_keys(i) {
                b.put(&ks, &k, &v).unwrap();
            }
            db.write(b, WriteOptions { sync: true })
                .unwrap_or_else(|e| panic!("{what}: write after resume: {e}"));
            out.acked.push(i);
            let _ = db.close();
        }
        Err(e) => {
            assert!(
                matches!(e, Error::Io { .. } | Error::Poisoned(_)),
                "{what}: open failed with {e}"
            );
            plan.disarm();
        }
    }
    let fired = plan.faults() > 0;
    let db = Db::open(DIR, options(fs.clone())).unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
    check(&db, &out, &what);
    db.close().unwrap();
    // Nothing is left behind: what the reopen found unreferenced it
    // removed, so a second open finds nothing to remove.
    let db = Db::open(DIR, options(fs)).unwrap();
    assert_eq!(
        db.stats().files_removed_at_open,
        0,
        "{what}: leftover files"
    );
    db.close().unwrap();
    fired
}

#[test]
fn every_failing_call_of_a_workload_loses_nothing_acknowledged() {
    let full = std::env::var_os("STRATA_IO_ERROR_FULL").is_some();
    let ops = if full { 60 } else { 24 };
    let targets = [
        FaultTarget {
            writes: true,
            ..FaultTarget::default()
        },
        FaultTarget {
            syncs: true,
            ..FaultTarget::default()
        },
        FaultTarget {
            metadata: true,
            ..FaultTarget::default()
        },
    ];
    let mut runs = 0;
    for target in targets {
        for (kind, forever) in [
            (FaultKind::Eio, false),
            (FaultKind::NoSpace, true),
            (FaultKind::ShortWrite, false),
        ] {
            if target != targets[0] && kind == FaultKind::ShortWrite {
                continue;
            }
            // Sweep the fault position until the workload no longer
            // reaches it (every position in the full mode, every third
            // otherwise, plus the first ten).
            let mut n = 1;
            loop {
                runs += 1;
                if !run_with_fault(target, kind, forever, n, ops) {
                    break;
                }
                n += if full || n < 10 { 1 } else { 3 };
            }
        }
    }
    eprintln!("{runs} fault runs");
    assert!(runs > 100, "only {runs} runs");
}

#[test]
fn a_failed_wal_sync_refuses_writes_until_resumed() {
    let sim = SimFs::new();
    let plan = FaultPlan::new();
    let fs: Arc<dyn FileSystem> = Arc::new(FaultFs::new(sim, plan.clone()));
    let db = Db::open(DIR, options(fs.clone())).unwrap();
    let ks = db.keyspace("k").unwrap();
    let sync = WriteOptions { sync: true };
    let put = |k: &str| {
        let mut b = db.batch();
        b.put(&ks, k, "v").unwrap();
        db.write(b, sync)
    };
    put("before").unwrap();
    plan.arm(
        FaultTarget {
            syncs: true,
            ..FaultTarget::default()
        },
        1,
        FaultKind::Eio,
        true,
    );
    assert!(matches!(put("failed"), Err(Error::Io { .. })));
    // The error state: no retry-and-acknowledge, reads work.
    assert!(matches!(put("refused"), Err(Error::Poisoned(_))));
    assert!(db.stats().error_state.is_some());
    assert_eq!(ks.get("before").unwrap().as_deref(), Some(&b"v"[..]));
    // The cause is still there: resume fails and changes nothing.
    assert!(db.resume().is_err());
    assert!(matches!(put("refused"), Err(Error::Poisoned(_))));
    plan.disarm();
    db.resume().unwrap();
    assert!(db.stats().error_state.is_none());
    put("after").unwrap();
    assert_eq!(db.stats().resumes, 1);
    db.close().unwrap();
    let db = Db::open(DIR, options(fs)).unwrap();
    let ks = db.keyspace("k").unwrap();
    assert!(ks.get("before").unwrap().is_some());
    assert!(ks.get("after").unwrap().is_some());
    assert!(ks.get("refused").unwrap().is_none());
}

#[test]
fn a_full_disk_during_flush_recovers_by_itself_when_space_returns() {
    let sim = SimFs::new();
    let plan = FaultPlan::new();
    let fs: Arc<dyn FileSystem> = Arc::new(FaultFs::new(sim.clone(), plan.clone()));
    let db = Db::open(DIR, options(fs.clone())).unwrap();
    let ks = db.keyspace("k").unwrap();
    for i in 0..20 {
        ks.put(format!("a{i:03}"), [b'v'; 100]).unwrap();
    }
    // Every table write fails from now on.
    plan.arm(
        FaultTarget {
            writes: true,
            suffix: Some(".sst"),
            ..FaultTarget::default()
        },
        1,
        FaultKind::NoSpace,
        true,
    );
    assert!(db.flush().is_err());
    assert!(db.stats().error_state.is_some());
    assert!(matches!(ks.put("x", "y"), Err(Error::Poisoned(_))));
    assert_eq!(ks.get("a005").unwrap().as_deref(), Some(&[b'v'; 100][..]));
    plan.disarm();
    // The flush thread retries on its own.
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.stats().error_state.is_some() {
        assert!(Instant::now() < deadline, "the engine did not resume");
        std::thread::sleep(Duration::from_millis(10));
    }
    ks.put("x", "y").unwrap();
    db.close().unwrap();
    let db = Db::open(DIR, options(fs)).unwrap();
    let ks = db.keyspace("k").unwrap();
    assert_eq!(common::scan(&ks).len(), 21);
}

#[test]
fn failed_reads_are_errors_that_leave_the_database_writable() {
    for reads in [SstReads::Mmap, SstReads::Pread] {
        failed_reads_leave_the_database_writable(reads);
    }
}

/// A failed `map` (SstReads::Mmap), or a failed open or positioned read
/// (SstReads::Pread), is an I/O error of the read that met it.
fn failed_reads_leave_the_database_writable(reads: SstReads) {
    let sim = SimFs::new();
    let plan = FaultPlan::new();
    let fs: Arc<dyn FileSystem> = Arc::new(FaultFs::new(sim, plan.clone()));
    let mut opts = options(fs.clone());
    opts.sst_reads = reads;
    // No block cache and a one-entry table cache, so reads reach the files.
    opts.block_cache_size = 0;
    opts.table_cache_capacity = 1;
    let db = Db::open(DIR, opts.clone()).unwrap();
    let ks = db.keyspace("k").unwrap();
    for i in 0..200 {
        ks.put(format!("key{i:03}"), [b'v'; 64]).unwrap();
    }
    db.compact().unwrap();
    let other = db.keyspace("other").unwrap();
    for i in 0..200 {
        other.put(format!("key{i:03}"), [b'w'; 64]).unwrap();
    }
    db.compact().unwrap();
    plan.arm(
        FaultTarget {
            reads: true,
            ..FaultTarget::default()
        },
        1,
        FaultKind::Eio,
        true,
    );
    // Reads that need a file fail with an I/O error naming it.
    let mut failed = 0;
    for i in (0..200).step_by(17) {
        for k in [&ks, &other] {
            match k.get(format!("key{i:03}")) {
                Ok(v) => assert!(v.is_some()),
                Err(e) => {
                    assert!(matches!(e, Error::Io { .. }), "{reads:?}: {e}");
                    failed += 1;
                }
            }
        }
    }
    assert!(failed > 0, "{reads:?}: no read reached the disk");
    // A failed read is not a failed write: writes go on.
    ks.put("during", "x").unwrap();
    assert!(db.stats().error_state.is_none());
    plan.disarm();
    for i in 0..200 {
        assert!(ks.get(format!("key{i:03}")).unwrap().is_some());
        assert!(other.get(format!("key{i:03}")).unwrap().is_some());
    }
    db.close().unwrap();
}
