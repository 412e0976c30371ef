//! `Db::checkpoint`: a consistent, openable copy at one commit timestamp,
//! made while writes, flushes and compactions go on; SSTs hard-linked,
//! WALs copied to their acknowledged end; encrypted copies stay encrypted.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strata_engine::{Db, Error, Keyspace, MemoryKeyProvider, Options};

fn opts() -> Options {
    Options {
        history_retention: Duration::from_secs(3600),
        ..common::small_options()
    }
}

use common::{latest, state_of as state_at};

fn writer(db: Db, stop: Arc<AtomicBool>, seed: u64) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let a = db.keyspace("a").unwrap();
        let b = db.keyspace("b").unwrap();
        let mut x = seed;
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = format!("k{:04}", x % 3000);
            let mut batch = db.batch();
            batch
                .put(&a, &k, format!("v{n}-{}", "x".repeat((x % 200) as usize)))
                .unwrap();
            if x.is_multiple_of(5) {
                batch
                    .delete(&b, format!("k{:04}", (x >> 8) % 3000))
                    .unwrap();
            } else {
                batch.put(&b, &k, n.to_string()).unwrap();
            }
            db.write(batch, Default::default()).unwrap();
            n += 1;
        }
        n
    })
}

#[test]
fn a_checkpoint_taken_during_writes_holds_exactly_the_state_at_its_timestamp() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path().join("db"), opts()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(db.clone(), stop.clone(), 7);
    let compactor = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                db.compact().unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let mut checkpoints = Vec::new();
    for i in 0..4 {
        let dir = tmp.path().join(format!("cp{i}"));
        let info = db.checkpoint(&dir).unwrap();
        checkpoints.push((dir, info));
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let writes = w.join().unwrap();
    compactor.join().unwrap();
    assert!(writes > 100, "{writes}");
    for (dir, info) in checkpoints {
        assert!(info.linked > 0, "SSTs are linked: {info:?}");
        assert!(info.bytes_written < info.total_bytes, "{info:?}");
        let want = state_at(&db, &db.snapshot_at(info.ts).unwrap());
        let copy = Db::open(&dir, opts()).unwrap();
        assert_eq!(latest(&copy), want, "checkpoint at {:?}", info.ts);
        assert!(copy.last_timestamp() >= info.ts);
        assert!(copy.verify().unwrap().is_ok());
        // Time travel inside the copy agrees with the source too.
        let earlier = strata_engine::Timestamp(info.ts.as_u64() - 1);
        assert_eq!(
            state_at(&copy, &copy.snapshot_at(earlier).unwrap()),
            state_at(&db, &db.snapshot_at(earlier).unwrap())
        );
        copy.close().unwrap();
    }
}

#[test]
fn a_checkpoint_is_independent_of_its_source_and_reopens() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path().join("db"), opts()).unwrap();
    let ks = db.keyspace("a").unwrap();
    for i in 0..2000 {
        ks.put(format!("k{i:05}"), vec![b'v'; 50]).unwrap();
    }
    db.flush().unwrap();
    // Some in SSTs, some only in the WAL.
    ks.put("wal-only", "1").unwrap();
    let dir = tmp.path().join("cp");
    let info = db.checkpoint(&dir).unwrap();
    assert_eq!(info.files, std::fs::read_dir(&dir).unwrap().count());
    let want = latest(&db);
    // Writes after the checkpoint, to either side, stay on that side.
    ks.put("after", "source").unwrap();
    ks.delete("k00001").unwrap();
    db.compact().unwrap();
    {
        let copy = Db::open(&dir, opts()).unwrap();
        assert_eq!(latest(&copy), want);
        copy.keyspace("a").unwrap().put("copy-only", "1").unwrap();
        copy.close().unwrap();
    }
    assert_eq!(ks.get("copy-only").unwrap(), None);
    assert_eq!(ks.get("after").unwrap().as_deref(), Some(&b"source"[..]));
    let copy = Db::open(&dir, opts()).unwrap();
    let c = copy.keyspace("a").unwrap();
    assert_eq!(c.get("copy-only").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(c.get("after").unwrap(), None);
    assert!(c.get("k00001").unwrap().is_some());
    assert!(copy.stats().foreign_files.is_empty());
}

#[test]
fn a_checkpoint_into_an_existing_path_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path().join("db"), opts()).unwrap();
    db.keyspace("a").unwrap().put("k", "v").unwrap();
    let dir = tmp.path().join("taken");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let e = db.checkpoint(&dir).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2);
    // Through a file too.
    let file = tmp.path().join("file");
    std::fs::write(&file, "x").unwrap();
    assert!(db.checkpoint(&file).is_err());
}

#[test]
fn an_encrypted_checkpoint_stays_encrypted_under_the_same_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let provider = Arc::new(MemoryKeyProvider::new(1, [7u8; 32]));
    let enc = Options {
        key_provider: Some(provider.clone()),
        ..opts()
    };
    let db = Db::open(tmp.path().join("db"), enc.clone()).unwrap();
    let ks: Keyspace = db.keyspace("secret").unwrap();
    for i in 0..500 {
        ks.put(format!("k{i}"), format!("PLAINTEXT-MARKER-{i}"))
            .unwrap();
    }
    db.flush().unwrap();
    ks.put("in-wal", "PLAINTEXT-MARKER-wal").unwrap();
    let dir = tmp.path().join("cp");
    db.checkpoint(&dir).unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(16).any(|w| w == b"PLAINTEXT-MARKER"),
            "plaintext in the copy"
        );
    }
    // Without the key it does not open; with it, everything is there.
    assert!(Db::open(&dir, opts()).is_err());
    let copy = Db::open(&dir, enc).unwrap();
    assert_eq!(latest(&copy), latest(&db));
}

/// A checkpoint onto another file system (a tmpfs: hard links fail across
/// devices) copies the SSTs instead, and opens the same.
#[test]
fn a_checkpoint_onto_another_file_system_copies() {
    let Some(mount) = strata_engine::fs::TmpfsMount::with_size_mib(64) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path().join("db"), opts()).unwrap();
    let ks = db.keyspace("a").unwrap();
    for i in 0..3000 {
        ks.put(format!("k{i:05}"), vec![b'v'; 40]).unwrap();
    }
    db.flush().unwrap();
    ks.put("wal-only", "1").unwrap();
    let dir = mount.path().join("cp");
    let info = db.checkpoint(&dir).unwrap();
    assert_eq!(info.linked, 0, "{info:?}");
    assert_eq!(info.bytes_written, info.total_bytes, "{info:?}");
    let copy = Db::open(&dir, opts()).unwrap();
    assert_eq!(latest(&copy), latest(&db));
}
