//! The error state under failures that last: a disk that stays full, a
//! flush that fails halfway, a caller's compaction that fails, a WAL append
//! that fails. Each is bounded (pauses that grow, no files left behind, no
//! WAL per retry) and says how it is left.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_engine::fs::{FaultFs, FaultKind, FaultPlan, FaultTarget, FileSystem, SimFs};
use strata_engine::{Db, Options};

const DIR: &str = "/db";

fn setup(background: bool) -> (SimFs, FaultPlan, Options) {
    let sim = SimFs::new();
    let plan = FaultPlan::new();
    let fs: Arc<dyn FileSystem> = Arc::new(FaultFs::new(sim.clone(), plan.clone()));
    let mut o = common::small_options();
    o.fs = fs;
    o.background_threads = background;
    (sim, plan, o)
}

fn files(sim: &SimFs, suffix: &str) -> Vec<String> {
    let mut v: Vec<String> = sim
        .list(Path::new(DIR))
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(suffix) || (suffix == "MANIFEST" && n.starts_with(suffix)))
        .collect();
    v.sort();
    v
}

fn manifest_bytes(sim: &SimFs) -> u64 {
    files(sim, "MANIFEST")
        .iter()
        .map(|n| sim.file_size(&Path::new(DIR).join(n)).unwrap())
        .sum()
}

fn sst_writes(forever: bool) -> FaultTarget {
    let _ = forever;
    FaultTarget {
        writes: true,
        syncs: false,
        metadata: false,
        reads: false,
        suffix: Some(".sst"),
    }
}

/// Fills `n` L0 tables of keyspace `ks`.
fn fill_l0(db: &Db, ks: &strata_engine::Keyspace, n: usize, tag: u8) {
    for t in 0..n {
        for i in 0..50 {
            ks.put(format!("k{i:04}"), vec![tag + t as u8; 100])
                .unwrap();
        }
        db.flush().unwrap();
    }
}

#[test]
fn a_disk_kept_full_during_compactions_backs_off_and_grows_nothing() {
    let (sim, plan, mut o) = setup(true);
    // L0 tables pile up without compacting until the disk is full.
    o.l0_compaction_trigger = 4;
    let db = Db::open(DIR, o).unwrap();
    let ks = db.keyspace("data").unwrap();
    fill_l0(&db, &ks, 3, b'a');
    plan.arm(sst_writes(true), 1, FaultKind::NoSpace, true);
    // The fourth table is flushed, then its compaction fails, again and
    // again while the disk stays full.
    for i in 0..50 {
        ks.put(format!("k{i:04}"), vec![b'z'; 100]).unwrap();
    }
    let _ = db.flush();
    let start = Instant::now();
    while db.stats().background_errors == 0 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(db.stats().background_errors > 0, "the compaction failed");
    let (ssts, logs, manifest) = (
        files(&sim, ".sst"),
        files(&sim, ".log"),
        manifest_bytes(&sim),
    );
    let before = db.stats();
    std::thread::sleep(Duration::from_secs(3));
    let after = db.stats();
    // Pauses of 20 ms doubling: at most about 8 tries in 3 s (a pause that
    // restarts at 20 ms gives over a hundred).
    let cycles = after.resumes - before.resumes;
    assert!(cycles <= 9, "{cycles} error -> resume cycles in 3 s");
    assert!(after.background_errors - before.background_errors <= 10);
    // No retry leaves a table, a WAL or a manifest record behind.
    assert_eq!(files(&sim, ".sst"), ssts);
    assert_eq!(files(&sim, ".log"), logs, "a retry created a WAL");
    assert_eq!(manifest_bytes(&sim), manifest, "a retry wrote the manifest");
    // Space comes back: the engine leaves the error state by itself and
    // the compaction goes through.
    plan.disarm();
    let start = Instant::now();
    while (db.stats().error_state.is_some() || db.stats().keyspaces[0].levels[0].files >= 4)
        && start.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = db.stats();
    assert!(s.error_state.is_none(), "{:?}", s.error_state);
    assert!(s.keyspaces[0].levels[0].files < 4);
    assert_eq!(ks.get("k0001").unwrap().as_deref(), Some(&[b'z'; 100][..]));
}

#[test]
fn a_flush_of_two_keyspaces_that_fails_leaves_no_table() {
    let (sim, plan, o) = setup(false);
    let db = Db::open(DIR, o).unwrap();
    let a = db.keyspace("a").unwrap();
    let b = db.keyspace("b").unwrap();
    for i in 0..100 {
        a.put(format!("k{i}"), [1u8; 50]).unwrap();
        b.put(format!("k{i}"), [2u8; 50]).unwrap();
    }
    // The first keyspace's table is written whole; the second one's sync
    // fails.
    plan.arm(
        FaultTarget {
            syncs: true,
            suffix: Some(".sst"),
            ..FaultTarget::default()
        },
        2,
        FaultKind::Eio,
        true,
    );
    assert!(db.flush().is_err());
    assert_eq!(
        files(&sim, ".sst"),
        Vec::<String>::new(),
        "tables left behind"
    );
    plan.disarm();
    db.resume().unwrap();
    assert_eq!(a.get("k7").unwrap().as_deref(), Some(&[1u8; 50][..]));
    assert_eq!(b.get("k7").unwrap().as_deref(), Some(&[2u8; 50][..]));
    assert_eq!(files(&sim, ".sst").len(), 2);
}

#[test]
fn a_callers_compaction_that_fails_for_lack_of_space_is_retried() {
    let (_sim, plan, mut o) = setup(true);
    o.l0_compaction_trigger = 8;
    let db = Db::open(DIR, o).unwrap();
    let ks = db.keyspace("data").unwrap();
    fill_l0(&db, &ks, 3, b'a');
    plan.arm(sst_writes(true), 1, FaultKind::NoSpace, true);
    assert!(db.compact().is_err());
    assert!(db.stats().error_state.is_some());
    let remedy = db.stats().error_remedy.unwrap();
    assert!(remedy.contains("retries by itself"), "{remedy}");
    plan.disarm();
    // Nobody calls resume: the engine does.
    let start = Instant::now();
    while db.stats().error_state.is_some() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(db.stats().error_state.is_none(), "still in the error state");
    db.compact().unwrap();
    assert_eq!(ks.get("k0001").unwrap().as_deref(), Some(&[b'c'; 100][..]));
}

#[test]
fn a_failed_wal_append_stays_in_the_error_state_and_says_how_to_leave_it() {
    let (_sim, plan, o) = setup(true);
    let db = Db::open(DIR, o).unwrap();
    let ks = db.keyspace("data").unwrap();
    ks.put("a", "1").unwrap();
    plan.arm(
        FaultTarget {
            writes: true,
            suffix: Some(".log"),
            ..FaultTarget::default()
        },
        1,
        FaultKind::NoSpace,
        true,
    );
    assert!(ks.put("b", "2").is_err());
    std::thread::sleep(Duration::from_millis(300));
    let s = db.stats();
    let cause = s.error_state.expect("in the error state");
    assert!(
        cause.contains("ENOSPC") || cause.contains("space"),
        "{cause}"
    );
    let remedy = s.error_remedy.expect("a remedy");
    assert!(remedy.contains("Db::resume"), "{remedy}");
    assert!(remedy.contains("does not retry"), "{remedy}");
    assert_eq!(s.resumes, 0, "a WAL failure is not retried by the engine");
    plan.disarm();
    db.resume().unwrap();
    assert!(db.stats().error_remedy.is_none());
    ks.put("c", "3").unwrap();
    assert_eq!(ks.get("a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(ks.get("c").unwrap().as_deref(), Some(&b"3"[..]));
}
