//! `Db::open_read_only`: nothing created, written or deleted; WAL contents
//! read in memory; every write refused with a typed error; many readers at
//! once.

mod common;

use std::path::Path;
use std::sync::Arc;

use strata_engine::fs::{FileSystem, SimFs};
use strata_engine::{Db, Error, Options};

const DIR: &str = "/db";

fn listing(sim: &SimFs) -> Vec<(String, u64)> {
    let mut v: Vec<_> = sim
        .list(Path::new(DIR))
        .unwrap()
        .into_iter()
        .map(|n| {
            let size = sim.file_size(&Path::new(DIR).join(&n)).unwrap();
            (n, size)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_read_only_open_reads_everything_and_writes_nothing() {
    let sim = SimFs::new();
    let mut o = common::small_options();
    o.fs = Arc::new(sim.clone()) as Arc<dyn FileSystem>;
    {
        let db = Db::open(DIR, o.clone()).unwrap();
        let ks = db.keyspace("data").unwrap();
        for i in 0..300 {
            ks.put(format!("k{i:04}"), format!("flushed-{i}")).unwrap();
        }
        db.flush().unwrap();
        // Only in the WAL when the database closes.
        ks.put("k0001", "in-the-wal").unwrap();
        db.close().unwrap();
    }
    let before = listing(&sim);
    let ops = sim.ops();
    let a = Db::open_read_only(DIR, o.clone()).unwrap();
    let b = Db::open_read_only(DIR, o.clone()).unwrap();
    for db in [&a, &b] {
        let ks = db.keyspace("data").unwrap();
        assert_eq!(
            ks.get("k0001").unwrap().as_deref(),
            Some(&b"in-the-wal"[..])
        );
        assert_eq!(
            ks.get("k0299").unwrap().as_deref(),
            Some(&b"flushed-299"[..])
        );
        assert_eq!(common::scan(&ks).len(), 300);
        assert!(matches!(ks.put("x", "y"), Err(Error::ReadOnly(_))));
        assert!(matches!(db.flush(), Err(Error::ReadOnly(_))));
        assert!(matches!(db.compact(), Err(Error::ReadOnly(_))));
        assert!(matches!(db.keyspace("new"), Err(Error::ReadOnly(_))));
        assert!(matches!(db.drop_keyspace("data"), Err(Error::ReadOnly(_))));
        let tx = db.begin(strata_engine::Isolation::Snapshot);
        assert!(matches!(tx, Err(Error::ReadOnly(_))));
        let report = db.verify().unwrap();
        assert!(report.is_ok(), "{:?}", report.damaged);
        assert!(db.stats().error_state.is_none());
    }
    a.close().unwrap();
    drop(b);
    assert_eq!(sim.ops(), ops, "a read-only open changed the disk");
    assert_eq!(listing(&sim), before);
    // The writer still opens it, with the WAL's write.
    let db = Db::open(DIR, o).unwrap();
    let ks = db.keyspace("data").unwrap();
    assert_eq!(
        ks.get("k0001").unwrap().as_deref(),
        Some(&b"in-the-wal"[..])
    );
}

#[test]
fn a_read_only_open_of_a_directory_without_a_database_fails_cleanly() {
    let sim = SimFs::new();
    let o = Options {
        fs: Arc::new(sim.clone()) as Arc<dyn FileSystem>,
        ..Options::default()
    };
    sim.create_dir_all(Path::new(DIR)).unwrap();
    let e = Db::open_read_only(DIR, o).unwrap_err();
    assert!(e.to_string().contains("CURRENT"), "{e}");
    assert!(sim.list(Path::new(DIR)).unwrap().is_empty());
}

/// On a real read-only mount (a tmpfs remounted read-only; needs root, and
/// skips with a reason otherwise): reads, `verify_dir` and `describe_dir`.
#[test]
fn reads_and_checks_work_on_a_read_only_mount() {
    let Some(mount) = common::TmpfsMount::new() else {
        return;
    };
    let dir = mount.path().join("db");
    {
        let db = Db::open(&dir, Options::default()).unwrap();
        let ks = db.keyspace("data").unwrap();
        ks.put("a", "1").unwrap();
        db.flush().unwrap();
        ks.put("b", "2").unwrap();
        db.close().unwrap();
    }
    assert!(mount.remount_read_only(), "remount read-only failed");
    let db = Db::open_read_only(&dir, Options::default()).unwrap();
    let ks = db.keyspace("data").unwrap();
    assert_eq!(ks.get("a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(ks.get("b").unwrap().as_deref(), Some(&b"2"[..]));
    drop(db);
    assert!(Db::verify_dir(&dir, &Options::default()).unwrap().is_ok());
    let d = Db::describe_dir(&dir, &Options::default()).unwrap();
    assert_eq!(d.keyspaces.len(), 1);
    assert!(matches!(
        Db::open(&dir, Options::default()),
        Err(Error::Io { .. })
    ));
}
