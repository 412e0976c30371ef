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

/// On a real file system (a small tmpfs; needs root to mount, and skips
/// with a reason otherwise): the disk kept full for 20 s while compactions
/// fail gives a bounded number of retries and no growth of files or
/// manifest; freeing space lets the engine recover by itself at once.
#[test]
fn a_real_disk_kept_full_for_20_seconds() {
    let Some(mount) = common::TmpfsMount::with_size_mib(8) else {
        return;
    };
    let dir = mount.path().join("db");
    let o = Options {
        l0_compaction_trigger: 4,
        l0_slowdown_trigger: 8,
        l0_stop_trigger: 12,
        memtable_size: 4 << 20,
        wal_mmap: false,
        ..Options::default()
    };
    let db = Db::open(&dir, o).unwrap();
    let ks = db.keyspace("data").unwrap();
    let value = |t: usize, i: usize| -> Vec<u8> {
        // Incompressible enough that a merge needs the space of its inputs.
        (0..400)
            .map(|j| ((i * 31 + j * 7 + t * 13) % 251) as u8)
            .collect()
    };
    for t in 0..3 {
        for i in 0..1000 {
            ks.put(format!("k{i:05}"), value(t, i)).unwrap();
        }
        db.flush().unwrap();
    }
    // Fill the disk, leaving room for a small flush but not for a merge.
    let filler = mount.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    let free_bytes = |_: ()| {
        let len = std::fs::metadata(&filler).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&filler)
            .unwrap()
            .set_len(len.saturating_sub(96 * 1024))
            .unwrap();
    };
    free_bytes(());
    for i in 0..50 {
        ks.put(format!("k{i:05}"), value(3, i)).unwrap();
    }
    let _ = db.flush();
    let start = Instant::now();
    while db.stats().background_errors == 0 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(db.stats().background_errors > 0, "nothing failed");
    let count = |suffix: &str| common::files_ending(&dir, suffix);
    let manifest = || -> u64 {
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().starts_with("MANIFEST"))
            .map(|e| e.metadata().unwrap().len())
            .sum()
    };
    let (files0, manifest0, resumes0) = (count(""), manifest(), db.stats().resumes);
    std::thread::sleep(Duration::from_secs(20));
    let s = db.stats();
    let cycles = s.resumes - resumes0;
    eprintln!(
        "20 s full: {cycles} resume cycles, {} errors, files {files0} -> {}, manifest {manifest0} -> {} bytes",
        s.background_errors,
        count(""),
        manifest()
    );
    assert!(cycles <= 25, "{cycles} error -> resume cycles in 20 s");
    assert!(
        count("") <= files0 + 2,
        "files grew: {files0} -> {}",
        count("")
    );
    assert!(manifest() <= manifest0 + 1024, "manifest grew");
    // Space comes back: the engine notices and recovers without a resume.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    while db.stats().error_state.is_some() && freed.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        db.stats().error_state.is_none(),
        "not recovered after freeing space"
    );
    db.compact().unwrap();
    assert_eq!(ks.get("k00001").unwrap().as_deref(), Some(&value(3, 1)[..]));
    drop(ks);
    db.close().unwrap();
}
