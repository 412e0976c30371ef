//! What `stats()` reports is checked against what happened.

mod common;

use strata_engine::{Db, Options};

#[test]
fn bloom_false_positives_stay_near_the_configured_rate() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options {
            memtable_size: 256 * 1024,
            ..Options::default()
        },
    )
    .unwrap();
    let ks = db.keyspace("k").unwrap();
    const N: u32 = 20_000;
    for i in 0..N {
        ks.put(format!("key{:08}", i * 2), b"value").unwrap();
    }
    db.compact().unwrap();
    let before = db.stats();
    let before = before.keyspace("k").unwrap().clone();
    // Present keys are never false positives.
    for i in (0..N).step_by(10) {
        assert!(ks.get(format!("key{:08}", i * 2)).unwrap().is_some());
    }
    let mid = db.stats();
    let mid = mid.keyspace("k").unwrap();
    assert_eq!(mid.bloom_false_positives, before.bloom_false_positives);
    // Absent keys between present ones: every probe reaches a filter.
    for i in 0..N {
        assert!(ks.get(format!("key{:08}", i * 2 + 1)).unwrap().is_none());
    }
    let after = db.stats();
    let after = after.keyspace("k").unwrap();
    let checks = after.bloom_checks - mid.bloom_checks;
    let fps = after.bloom_false_positives - mid.bloom_false_positives;
    let rate = fps as f64 / checks as f64;
    eprintln!(
        "bloom: {fps} false positives in {checks} checks ({:.3}%)",
        rate * 100.0
    );
    // Every absent key but the last (past the largest key) reaches a filter.
    assert!(checks >= u64::from(N - 1));
    assert!(rate < 0.02, "false-positive rate {rate}");
}

#[test]
fn a_full_compaction_leaves_one_sorted_run() {
    let dir = tempfile::tempdir().unwrap();
    let opts = common::small_options();
    let db = Db::open(dir.path(), opts.clone()).unwrap();
    let ks = db.keyspace("k").unwrap();
    for i in 0..20_000u32 {
        ks.put(format!("{:06}", (i * 7919) % 10_000), i.to_be_bytes())
            .unwrap();
    }
    db.compact().unwrap();
    let stats = db.stats();
    let k = stats.keyspace("k").unwrap();
    let last = k.levels.len() - 1;
    for (level, l) in k.levels.iter().enumerate() {
        if level != last {
            assert_eq!(
                l.files, 0,
                "level {level} not empty after a full compaction"
            );
        }
    }
    let ranges = &k.levels[last].key_ranges;
    assert!(ranges.len() > 1, "expected the run split into files");
    for w in ranges.windows(2) {
        assert!(w[0].1 < w[1].0, "files overlap: {w:?}");
    }
    // Overwritten versions were dropped: the run holds one version per key.
    let bytes = k.levels[last].bytes;
    assert!(bytes < 10_000 * 40, "{bytes} bytes for 10000 live keys");
    assert_eq!(ks.iter().unwrap().count(), 10_000);
    // Write amplification is reported from the byte counters.
    assert!(k.user_bytes_written >= 20_000 * 10);
    assert!(k.flush_bytes_written > 0 && k.compaction_bytes_written > 0);
    assert!(k.write_amplification() > 0.5);
    assert!(stats.write_amplification() > k.write_amplification());
}

#[test]
fn stalls_are_counted_when_flushes_fall_behind() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        memtable_size: 4096,
        max_immutable_memtables: 1,
        l0_compaction_trigger: 100,
        l0_slowdown_trigger: 100,
        l0_stop_trigger: 100,
        ..Options::default()
    };
    let db = Db::open(dir.path(), opts).unwrap();
    let ks = db.keyspace("k").unwrap();
    for i in 0..5_000u32 {
        ks.put(i.to_be_bytes(), [7u8; 100]).unwrap();
    }
    let stats = db.stats();
    let k = stats.keyspace("k").unwrap();
    assert!(k.flushes > 10);
    assert!(
        stats.write_stalls > 0,
        "a 4 KiB memtable with one slot must stall: {stats:?}"
    );
    assert_eq!(ks.iter().unwrap().count(), 5_000);
}
