//! A full compaction (`Db::compact`) cut into key ranges merged on several
//! threads keeps exactly what one thread keeps: the present, every version
//! a read of the past can see, and range deletes that span the cuts,
//! across reopen.

mod common;

use common::Rng;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use strata_engine::{Db, ManualClock, Options, Timestamp};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Each level's tables as their user-key ranges.
type Ranges = Vec<Vec<(Vec<u8>, Vec<u8>)>>;

fn tables(db: &Db) -> Ranges {
    let stats = db.stats();
    let ks = stats.keyspaces.iter().find(|k| k.name == "k").unwrap();
    ks.levels.iter().map(|l| l.key_ranges.clone()).collect()
}

fn opts(threads: usize, background: bool) -> Options {
    Options {
        history_retention: Duration::from_secs(3600),
        full_compaction_threads: threads,
        background_threads: background,
        // A clock standing still: the same timestamps, so the same bytes,
        // in every run.
        clock: Arc::new(ManualClock::new(Timestamp(1 << 60))),
        ..common::small_options()
    }
}

fn key(i: u64) -> Vec<u8> {
    format!("k{i:05}").into_bytes()
}

/// Every read at `ts` equals `want`: a scan forward and back, a bounded
/// range, and point reads of a sample of keys.
fn check_at(db: &Db, ts: Timestamp, want: &Model) {
    let ks = db.keyspace("k").unwrap();
    let all: Vec<_> = want.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let scan = |rev: bool| {
        let it = ks.range_at::<&[u8], _>(.., ts).unwrap();
        let mut v: Vec<_> = if rev {
            it.rev().map(|r| r.unwrap()).collect()
        } else {
            it.map(|r| r.unwrap()).collect()
        };
        if rev {
            v.reverse();
        }
        v.into_iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect::<Vec<_>>()
    };
    assert_eq!(scan(false), all, "forward at {ts:?}");
    assert_eq!(scan(true), all, "reverse at {ts:?}");
    for i in (0..4000).step_by(37) {
        let k = key(i);
        assert_eq!(
            ks.get_at(&k, ts).unwrap().map(|v| v.to_vec()),
            want.get(&k).cloned(),
            "get_at {k:?} at {ts:?}"
        );
    }
}

/// What a run leaves: the tables' key ranges before and after the
/// compaction, and the entries in its tables.
struct Outcome {
    before: Ranges,
    after: Ranges,
    entries: u64,
}

/// Writes six phases of puts, deletes and range deletes with flushes
/// between, compacts everything, and checks every phase's state before and
/// after reopening.
fn run(dir: &Path, threads: usize, background: bool, seed: u64) -> Outcome {
    let db = Db::open(dir, opts(threads, background)).unwrap();
    let ks = db.keyspace("k").unwrap();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut model = Model::new();
    let mut phases: Vec<(Timestamp, Model)> = Vec::new();
    for phase in 0..6u64 {
        for _ in 0..1500 {
            let k = key(rng.below(4000));
            let v = format!("v{phase}-{}", rng.below(1_000_000)).repeat(3);
            ks.put(&k, v.as_bytes()).unwrap();
            model.insert(k, v.into_bytes());
        }
        for _ in 0..100 {
            let k = key(rng.below(4000));
            ks.delete(&k).unwrap();
            model.remove(&k);
        }
        // Narrow range deletes, some of which end where a cut would
        // fall, and one wide enough to span a cut.
        let mut last = Timestamp(0);
        for wide in [false, false, false, false, false, false, false, false, true] {
            let start = rng.below(3500);
            let span = if wide {
                50 + rng.below(400)
            } else {
                1 + rng.below(12)
            };
            let (s, e) = (key(start), key(start + span));
            last = ks.delete_range(s.clone()..e.clone()).unwrap();
            model.retain(|k, _| *k < s || *k >= e);
        }
        phases.push((last, model.clone()));
        if phase % 2 == 1 {
            db.flush().unwrap();
        }
    }
    let before = tables(&db);
    db.compact().unwrap();
    let after = tables(&db);
    let (_, upper) = after.split_last().unwrap();
    assert!(
        upper.iter().all(Vec::is_empty),
        "a full compaction leaves files only in the last level: {after:?}"
    );
    for (ts, want) in &phases {
        check_at(&db, *ts, want);
    }
    common::check(&ks, &model);
    let entries = db.verify().unwrap().entries_checked;
    drop(ks);
    drop(db);
    let db = Db::open(dir, opts(threads, background)).unwrap();
    for (ts, want) in &phases {
        check_at(&db, *ts, want);
    }
    common::check(&db.keyspace("k").unwrap(), &model);
    Outcome {
        before,
        after,
        entries,
    }
}

/// Without background threads every run is the same: the same tables go
/// into the compaction, and three threads' ranges show as tables cut where
/// one thread's are not.
#[test]
fn a_full_compaction_cut_into_ranges_keeps_what_one_range_keeps() {
    let last = |r: &Ranges| r.last().map_or(0, Vec::len);
    let mut cut = 0;
    for seed in 0..8 {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let one = run(a.path(), 1, false, seed);
        let three = run(b.path(), 3, false, seed);
        assert_eq!(
            one.before, three.before,
            "seed {seed}: the same workload, the same tables"
        );
        // Every version kept once: none lost at a cut, none copied by both
        // ranges beside it.
        assert_eq!(one.entries, three.entries, "seed {seed}");
        // Each range ends in a table of its own, so cutting shows as more
        // (smaller) tables for the same data.
        if last(&three.after) > last(&one.after) {
            cut += 1;
        }
    }
    assert!(cut >= 4, "only {cut} of 8 compactions were cut");
}

/// With background threads the ranges merge in parallel.
#[test]
fn a_full_compaction_on_three_threads_keeps_every_version() {
    for seed in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        run(dir.path(), 3, true, seed);
    }
}

#[test]
fn a_full_compaction_stops_a_running_background_one_which_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        memtable_size: 256 * 1024,
        target_file_size: 256 * 1024,
        base_level_size: 1 << 20,
        l0_compaction_trigger: 2,
        ..common::small_options()
    };
    let db = common::open(dir.path(), &opts);
    let ks = db.keyspace("k").unwrap();
    let mut model = Model::new();
    let mut rng = Rng(0xfeed_beef_0123_4567);
    // A full compaction called while the background one that the last
    // flushes started is merging: each round gives it a chance to stop
    // one. Whether it stopped one or not, nothing may be lost and no file
    // left behind.
    let mut round = 0;
    while round < 40 && (round < 3 || db.stats().compactions_yielded == 0) {
        for _ in 0..20_000 {
            let k = key(rng.below(50_000));
            let v = vec![rng.below(256) as u8; 40 + rng.below(60) as usize];
            ks.put(&k, &v).unwrap();
            model.insert(k, v);
        }
        db.compact().unwrap();
        let levels = tables(&db);
        let last = levels.len() - 1;
        assert!(
            levels[..last].iter().all(Vec::is_empty),
            "round {round}: a full compaction left files above the last level"
        );
        assert_eq!(
            common::files_ending(dir.path(), ".sst"),
            levels[last].len(),
            "round {round}: tables on disk that no level holds"
        );
        common::check(&ks, &model);
        round += 1;
    }
    eprintln!(
        "{round} rounds, {} background compactions stopped",
        db.stats().compactions_yielded
    );
    assert!(
        db.stats().compactions_yielded > 0,
        "no background compaction was running when {round} full compactions began"
    );
    drop(ks);
    db.close().unwrap();
    let db = common::open(dir.path(), &opts);
    common::check(&db.keyspace("k").unwrap(), &model);
}
