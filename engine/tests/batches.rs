//! Batches across keyspaces are atomic, while running and across a crash;
//! concurrent writers and readers never see a lost or torn batch.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use strata_engine::{Db, Keyspace, Options, WriteOptions};

/// Writes batch `n`: the same value to ten keys spread over three keyspaces.
fn write_batch(db: &Db, spaces: &[Keyspace], base: u64, n: u64) {
    let mut b = db.batch();
    for i in 0..10u64 {
        let ks = &spaces[(i % 3) as usize];
        b.put(ks, format!("{i}:{base}"), n.to_be_bytes()).unwrap();
    }
    db.write(b, WriteOptions::default()).unwrap();
}

/// Reads the ten keys of group `base`; they must agree.
fn read_group(spaces: &[Keyspace], base: u64) -> Option<u64> {
    let values: Vec<Option<Vec<u8>>> = (0..10u64)
        .map(|i| {
            spaces[(i % 3) as usize]
                .get(format!("{i}:{base}"))
                .unwrap()
                .map(|v| v.to_vec())
        })
        .collect();
    assert!(
        values.windows(2).all(|w| w[0] == w[1]),
        "torn batch in group {base}: {values:?}"
    );
    values[0]
        .as_ref()
        .map(|v| u64::from_be_bytes(v[..8].try_into().unwrap()))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_batch_across_keyspaces_survives_a_crash_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let db = Db::open(&live, Options::default()).unwrap();
    let spaces: Vec<Keyspace> = ["a", "b", "c"]
        .iter()
        .map(|n| db.keyspace(n).unwrap())
        .collect();
    for n in 0..40u64 {
        write_batch(&db, &spaces, n % 4, n);
    }
    // What a crash would leave: the files as they are now, with the WAL cut
    // at every possible length.
    let image = dir.path().join("image");
    copy_dir(&live, &image);
    let wal = std::fs::read_dir(&image)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "log"))
        .unwrap();
    let full = std::fs::read(&wal).unwrap();
    // The live WAL's space is allocated ahead: past its records lie zeros.
    let end = common::records_end(&full);
    let mut seen_complete = 0;
    for cut in (0..=end).step_by(7).chain([end, full.len()]) {
        let trial = dir.path().join(format!("trial{cut}"));
        copy_dir(&image, &trial);
        std::fs::write(trial.join(wal.file_name().unwrap()), &full[..cut]).unwrap();
        let db = Db::open(&trial, Options::default()).unwrap();
        let spaces: Vec<Keyspace> = ["a", "b", "c"]
            .iter()
            .map(|n| db.keyspace(n).unwrap())
            .collect();
        // Each group holds the newest batch that made it, whole.
        let got: Vec<Option<u64>> = (0..4).map(|base| read_group(&spaces, base)).collect();
        // Batches are a prefix: if batch n survived, every earlier one did.
        let newest = got.iter().flatten().max().copied();
        if let Some(newest) = newest {
            for base in 0..4u64 {
                let expected = (0..=newest).filter(|n| n % 4 == base).max();
                assert_eq!(got[base as usize], expected, "cut {cut}: not a prefix");
            }
        }
        if newest == Some(39) {
            seen_complete += 1;
        }
        drop(spaces);
        db.close().unwrap();
        std::fs::remove_dir_all(&trial).unwrap();
    }
    assert!(seen_complete >= 1, "the uncut WAL must replay every batch");
    drop(spaces);
    db.close().unwrap();
}

#[test]
fn four_writers_and_four_readers() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path(), &common::small_options());
    let spaces: Arc<Vec<Keyspace>> = Arc::new(
        ["a", "b", "c"]
            .iter()
            .map(|n| db.keyspace(n).unwrap())
            .collect(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    const PER_WRITER: u64 = 400;
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let (db, spaces) = (db.clone(), spaces.clone());
            std::thread::spawn(move || {
                for n in 1..=PER_WRITER {
                    // Writer w owns groups 4w..4w+4; values only grow.
                    write_batch(&db, &spaces, w * 4 + n % 4, n);
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (spaces, stop) = (spaces.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut last = [0u64; 16];
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // One scan is one consistent view: within it, the keys a
                    // batch wrote to this keyspace hold the same value.
                    for ks in spaces.iter() {
                        let mut groups: Vec<Option<Vec<u8>>> = vec![None; 16];
                        let mut counts = [0usize; 16];
                        for r in ks.iter().unwrap() {
                            let (k, v) = r.unwrap();
                            let key = std::str::from_utf8(&k).unwrap();
                            let base: usize = key.split(':').nth(1).unwrap().parse().unwrap();
                            match &groups[base] {
                                Some(seen) => {
                                    assert_eq!(seen, &v.to_vec(), "torn batch in group {base}")
                                }
                                None => groups[base] = Some(v.to_vec()),
                            }
                            counts[base] += 1;
                        }
                        for base in 0..16 {
                            // All of a group's keys in this keyspace, or none.
                            assert!(
                                counts[base] == 0
                                    || counts[base]
                                        == [4, 3, 3][spaces
                                            .iter()
                                            .position(|s| s.name() == ks.name())
                                            .unwrap()]
                            );
                            if let Some(v) = &groups[base] {
                                let v = u64::from_be_bytes(v[..8].try_into().unwrap());
                                assert!(v >= last[base], "group {base} went back in time");
                                last[base] = v;
                            }
                        }
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    // Nothing lost: every group holds its writer's last batch.
    for w in 0..4u64 {
        for g in 0..4u64 {
            let last = (1..=PER_WRITER).filter(|n| n % 4 == g).max();
            assert_eq!(read_group(&spaces, w * 4 + g), last);
        }
    }
    let stats = db.stats();
    assert_eq!(stats.writes, 4 * PER_WRITER);
    assert!(stats.write_groups <= stats.writes);
}

#[test]
fn synced_concurrent_writers_share_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let ks = db.keyspace("k").unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (db, ks) = (db.clone(), ks.clone());
            std::thread::spawn(move || {
                for i in 0..100 {
                    let mut b = db.batch();
                    b.put(&ks, format!("{t}-{i}"), b"v").unwrap();
                    db.write(b, WriteOptions { sync: true }).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = db.stats();
    assert_eq!(stats.writes, 400);
    // Every write was synced, by its own sync or by its group's.
    assert!(stats.wal_syncs <= stats.write_groups);
    assert_eq!(ks.iter().unwrap().count(), 400);
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let ks = db.keyspace("k").unwrap();
    let big_key = vec![0u8; 64 * 1024 + 1];
    assert!(matches!(
        ks.put(&big_key, b"v"),
        Err(strata_engine::Error::KeyTooLarge(_))
    ));
    assert!(matches!(
        ks.get(&big_key),
        Err(strata_engine::Error::KeyTooLarge(_))
    ));
    let mut b = db.batch();
    b.put(&ks, b"fine", b"v").unwrap();
    assert!(b.put(&ks, &big_key, b"v").is_err());
    assert_eq!(b.len(), 1);
    assert!(db.keyspace("").is_err());
    assert_eq!(ks.iter().unwrap().count(), 0);
    db.drop_keyspace("k").unwrap();
    assert!(matches!(
        ks.put(b"a", b"b"),
        Err(strata_engine::Error::KeyspaceNotFound(_))
    ));
    assert!(db.drop_keyspace("k").is_err());
    assert_eq!(db.keyspaces(), Vec::<String>::new());
}
