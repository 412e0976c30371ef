//! Recovery from the states a crash leaves: torn WALs, orphan files, and
//! damage that must be reported rather than served.

mod common;

use std::path::{Path, PathBuf};

use strata_engine::format::codec::Compression;
use strata_engine::format::log::{LogHeader, LogKind, LogWriter};
use strata_engine::{Db, Error, Options};

fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

/// A database whose only WAL holds `n` single-key batches, left as a crash
/// would leave it (the process state is dropped without flushing).
fn crashed_image(n: u32) -> (tempfile::TempDir, PathBuf) {
    crashed_image_with(n, false)
}

/// Like [`crashed_image`], with every write synced when `sync`.
fn crashed_image_with(n: u32, sync: bool) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let image = dir.path().join("image");
    let db = Db::open(&live, Options::default()).unwrap();
    let ks = db.keyspace("k").unwrap();
    for i in 0..n {
        let mut b = db.batch();
        b.put(&ks, format!("{i:04}"), format!("v{i}")).unwrap();
        db.write(b, strata_engine::WriteOptions { sync }).unwrap();
    }
    std::fs::create_dir_all(&image).unwrap();
    for e in std::fs::read_dir(&live).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), image.join(e.file_name())).unwrap();
        }
    }
    drop(ks);
    db.close().unwrap();
    (dir, image)
}

/// The number of the manifest `CURRENT` names: one the database handed
/// out, so a file with its number is the database's own (an orphan, or a
/// WAL written after the older ones), where a file with a number the
/// manifest never handed out would not be.
fn current_manifest_number(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("CURRENT"))
        .unwrap()
        .trim()
        .strip_prefix("MANIFEST-")
        .unwrap()
        .parse()
        .unwrap()
}

fn empty_wal(dir: &Path, number: u64) -> Vec<u8> {
    let header = LogHeader {
        kind: LogKind::Wal,
        file_number: number,
        file_uid: [1; 16],
        key_id: None,
    };
    let w = LogWriter::new(Vec::new(), header, Compression::None, None).unwrap();
    let bytes = w.into_inner();
    std::fs::write(dir.join(format!("{number:06}.log")), &bytes).unwrap();
    bytes
}

#[test]
fn a_torn_wal_followed_by_an_empty_one_opens_to_its_prefix() {
    // The state after a crash during a recovery that had created its new
    // WAL but not yet flushed the old one.
    let (_tmp, image) = crashed_image(50);
    let wal = files_with(&image, "log").pop().unwrap();
    let bytes = std::fs::read(&wal).unwrap();
    let end = common::records_end(&bytes);
    std::fs::write(&wal, &bytes[..end - 5]).unwrap();
    let later = current_manifest_number(&image);
    assert!(wal < image.join(format!("{later:06}.log")));
    empty_wal(&image, later);
    let db = Db::open(&image, Options::default()).unwrap();
    let ks = db.keyspace("k").unwrap();
    assert_eq!(ks.iter().unwrap().count(), 49);
    assert_eq!(ks.get("0048").unwrap().as_deref(), Some(&b"v48"[..]));
    assert!(ks.get("0049").unwrap().is_none());
}

#[test]
fn a_torn_wal_followed_by_later_writes_is_corruption() {
    let (_tmp, image) = crashed_image(50);
    let wal = files_with(&image, "log").pop().unwrap();
    let bytes = std::fs::read(&wal).unwrap();
    let end = common::records_end(&bytes);
    std::fs::write(&wal, &bytes[..end - 5]).unwrap();
    // A later WAL holding the original's records: writes after the hole.
    let number = current_manifest_number(&image);
    let later = image.join(format!("{number:06}.log"));
    assert!(wal < later);
    let header = LogHeader {
        kind: LogKind::Wal,
        file_number: number,
        file_uid: [1; 16],
        key_id: None,
    };
    let mut w = LogWriter::new(Vec::new(), header, Compression::None, None).unwrap();
    let mut rec = Vec::new();
    let mut b = strata_engine::format::batch::BatchBuilder::new();
    b.add(
        strata_engine::format::key::ValueKind::Put,
        0,
        b"late",
        b"write",
    );
    b.encode_into(10_000, &mut rec);
    w.add_record(&rec).unwrap();
    std::fs::write(&later, w.into_inner()).unwrap();
    let err = Db::open(&image, Options::default()).unwrap_err();
    assert!(err.is_corruption(), "{err}");
    assert!(err.to_string().contains(".log"), "{err}");
}

#[test]
fn damage_inside_the_wal_is_reported_with_file_and_offset() {
    // Synced writes: damage to them is corruption, not a torn tail.
    let (_tmp, image) = crashed_image_with(200, true);
    let wal = files_with(&image, "log").pop().unwrap();
    let mut bytes = std::fs::read(&wal).unwrap();
    bytes[500] ^= 0x40;
    std::fs::write(&wal, &bytes).unwrap();
    let err = Db::open(&image, Options::default()).unwrap_err();
    match &err {
        Error::Format { path, source } => {
            assert_eq!(path, &wal);
            assert!(source.is_corruption());
        }
        other => panic!("expected a format error, got {other}"),
    }
}

#[test]
fn damage_to_unsynced_writes_is_a_torn_tail() {
    // Nothing was synced: after a crash any of it may be lost, so damage
    // ends the replay there instead of failing the open.
    let (_tmp, image) = crashed_image(200);
    let wal = files_with(&image, "log").pop().unwrap();
    let mut bytes = std::fs::read(&wal).unwrap();
    bytes[500] ^= 0x40;
    std::fs::write(&wal, &bytes).unwrap();
    let db = Db::open(&image, Options::default()).unwrap();
    let ks = db.keyspace("k").unwrap();
    let n = common::scan(&ks).len();
    assert!(n < 200, "the damaged record and all after it are dropped");
    for i in 0..n {
        assert_eq!(
            ks.get(format!("{i:04}")).unwrap().as_deref(),
            Some(format!("v{i}").as_bytes())
        );
    }
}

#[test]
fn orphans_of_an_interrupted_flush_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        db.keyspace("k").unwrap().put("a", "b").unwrap();
        db.close().unwrap();
    }
    // A table numbered as the database numbers them, with a number it
    // handed out, that no version lists.
    let orphan = format!("{:06}.sst", current_manifest_number(dir.path()));
    std::fs::write(dir.path().join(&orphan), b"half a table").unwrap();
    std::fs::write(dir.path().join("CURRENT.tmp"), b"MANIFEST-").unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert!(!dir.path().join(&orphan).exists());
    assert!(!dir.path().join("CURRENT.tmp").exists());
    assert_eq!(
        db.keyspace("k").unwrap().get("a").unwrap().as_deref(),
        Some(&b"b"[..])
    );
}

#[test]
fn a_damaged_table_is_an_error_naming_it_never_wrong_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        let ks = db.keyspace("k").unwrap();
        for i in 0..1000u32 {
            ks.put(format!("{i:04}"), [i as u8; 50]).unwrap();
        }
        db.compact().unwrap();
        db.close().unwrap();
    }
    let sst = files_with(dir.path(), "sst").pop().unwrap();
    let mut bytes = std::fs::read(&sst).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&sst, &bytes).unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let ks = db.keyspace("k").unwrap();
    let mut errors = 0;
    for i in 0..1000u32 {
        match ks.get(format!("{i:04}")) {
            Ok(Some(v)) => assert_eq!(&v[..], &[i as u8; 50][..]),
            Ok(None) => panic!("key {i} silently missing"),
            Err(e) => {
                assert!(e.is_corruption(), "{e}");
                assert!(e.to_string().contains(".sst"), "{e}");
                errors += 1;
            }
        }
    }
    assert!(errors > 0);
    let scan: Vec<_> = ks.iter().unwrap().collect();
    assert!(scan.last().unwrap().is_err());
}

#[test]
fn data_survives_many_reopens_without_close() {
    let dir = tempfile::tempdir().unwrap();
    let opts = common::small_options();
    let mut model = std::collections::BTreeMap::new();
    for round in 0..5u32 {
        let db = Db::open(dir.path(), opts.clone()).unwrap();
        let ks = db.keyspace("k").unwrap();
        common::check(&ks, &model);
        for i in 0..500u32 {
            let k = format!("{:04}", (i * 31 + round) % 700).into_bytes();
            let v = format!("{round}-{i}").into_bytes();
            ks.put(&k, &v).unwrap();
            model.insert(k, v);
        }
        // Dropped, not closed: the last handle closes it.
        drop(ks);
        drop(db);
    }
}

#[test]
fn the_manifest_is_rewritten_when_it_grows() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        max_manifest_size: 4096,
        ..Options::default()
    };
    let manifests = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("MANIFEST-"))
            .collect();
        v.sort();
        v
    };
    let first;
    {
        let db = Db::open(dir.path(), opts.clone()).unwrap();
        first = manifests(dir.path());
        for i in 0..300 {
            db.keyspace(&format!("ks{i:03}")).unwrap();
        }
        let ks = db.keyspace("ks007").unwrap();
        ks.put("k", "v").unwrap();
        let now = manifests(dir.path());
        assert_eq!(now.len(), 1, "old manifests are deleted: {now:?}");
        assert_ne!(now, first, "the manifest was rewritten");
        assert!(std::fs::metadata(dir.path().join(&now[0])).unwrap().len() < 16 * 1024);
        db.close().unwrap();
    }
    let db = Db::open(dir.path(), opts).unwrap();
    assert_eq!(db.keyspaces().len(), 300);
    assert_eq!(
        db.keyspace("ks007").unwrap().get("k").unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

#[test]
fn a_lost_current_file_is_refused_rather_than_starting_empty() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        db.keyspace("k").unwrap().put("a", "b").unwrap();
        db.close().unwrap();
    }
    std::fs::remove_file(dir.path().join("CURRENT")).unwrap();
    let before: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let err = Db::open(dir.path(), Options::default()).unwrap_err();
    assert!(err.to_string().contains("CURRENT"), "{err}");
    for p in before {
        assert!(p.exists(), "{p:?} was deleted");
    }
}

/// The live WAL is allocated ahead of its appends; a crash leaves that
/// space as zeros after the last record, which recovery reads as the end
/// of the log. A sealed WAL gives the space back.
#[test]
fn a_preallocated_wal_recovers_every_synced_write_and_is_cut_when_sealed() {
    let (_tmp, image) = crashed_image_with(200, true);
    let wals = files_with(&image, "log");
    assert_eq!(wals.len(), 1);
    let size = std::fs::metadata(&wals[0]).unwrap().len();
    assert!(
        size >= 1 << 20,
        "the live WAL was not preallocated: {size} bytes"
    );
    let db = Db::open(&image, Options::default()).unwrap();
    let ks = db.keyspace("k").unwrap();
    for i in 0..200 {
        assert_eq!(
            ks.get(format!("{i:04}")).unwrap().as_deref(),
            Some(format!("v{i}").as_bytes()),
            "key {i}"
        );
    }
    let mut b = db.batch();
    b.put(&ks, "after", "crash").unwrap();
    db.write(b, strata_engine::WriteOptions { sync: true })
        .unwrap();
    drop(ks);
    db.close().unwrap();
    // Closed cleanly, every WAL ends where its records end.
    for w in files_with(&image, "log") {
        let len = std::fs::metadata(&w).unwrap().len();
        assert!(len < 1 << 20, "{}: {len} bytes after sealing", w.display());
    }
    let db = Db::open(&image, Options::default()).unwrap();
    let ks = db.keyspace("k").unwrap();
    assert_eq!(ks.get("after").unwrap().as_deref(), Some(&b"crash"[..]));
}
