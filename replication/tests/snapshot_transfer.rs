//! Snapshot transfer in chunks: a real checkpoint survives the trip and
//! opens with the same contents; a damaged byte, a chunk out of order, a
//! manifest naming paths or exceeding the limits are refused with an error
//! naming the file; a failed or abandoned receive leaves nothing behind.

use std::path::{Path, PathBuf};

use strata_engine::{Db, Options};
use strata_replication::snapshot_transfer::{
    Chunk, FileEntry, ReceiveLimits, SnapshotManifest, SnapshotReceiver, SnapshotSender,
    TransferError, DEFAULT_CHUNK_BYTES,
};

const LIMITS: ReceiveLimits = ReceiveLimits {
    max_files: 1000,
    max_total_bytes: 1 << 30,
    max_chunk_bytes: DEFAULT_CHUNK_BYTES,
};

type Contents = Vec<(String, Vec<(Vec<u8>, Vec<u8>)>)>;

/// Every entry of every keyspace but the engine's own.
fn contents(db: &Db) -> Contents {
    let mut names = db.keyspaces();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let ks = db.keyspace(&name).unwrap();
            let kvs = ks
                .iter()
                .unwrap()
                .map(|kv| {
                    let (k, v) = kv.unwrap();
                    (k.to_vec(), v.to_vec())
                })
                .collect();
            (name, kvs)
        })
        .collect()
}

/// A checkpoint of a database with SSTs (several flushes, values larger
/// than a chunk among them) and a WAL tail; returns its directory and
/// contents.
fn checkpoint(root: &Path) -> (PathBuf, Contents) {
    let db = Db::open(root.join("db"), Options::default()).unwrap();
    let (a, b) = (db.keyspace("a").unwrap(), db.keyspace("b").unwrap());
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    for round in 0..3u32 {
        for i in 0..400u32 {
            a.put(format!("k{round}-{i:05}"), noise(200)).unwrap();
        }
        b.put(format!("big{round}"), noise(3 * DEFAULT_CHUNK_BYTES / 2))
            .unwrap();
        db.flush().unwrap();
    }
    a.delete("k0-00007").unwrap();
    a.put("unflushed", b"in the WAL").unwrap();
    let dir = root.join("checkpoint");
    db.checkpoint(&dir).unwrap();
    let want = contents(&db);
    db.close().unwrap();
    (dir, want)
}

/// Every chunk of `dir` in chunks of `size`, and its manifest.
fn chunks(dir: &Path, size: usize) -> (SnapshotManifest, Vec<Chunk>) {
    let sender = SnapshotSender::new(dir, size).unwrap();
    let manifest = sender.manifest().clone();
    let chunks = sender.collect::<Result<Vec<_>, _>>().unwrap();
    (manifest, chunks)
}

/// A small snapshot-like directory: three files, one empty.
fn small_dir(root: &Path) -> PathBuf {
    let dir = root.join("small");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("000001.sst"), vec![7u8; 10_000]).unwrap();
    std::fs::write(dir.join("CURRENT"), b"MANIFEST-000002\n").unwrap();
    std::fs::write(dir.join("empty"), b"").unwrap();
    dir
}

#[test]
fn a_checkpoint_round_trips_and_opens_with_the_same_contents() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, want) = checkpoint(tmp.path());
    for size in [DEFAULT_CHUNK_BYTES, 4096] {
        let (manifest, chunks) = chunks(&dir, size);
        assert!(manifest.files.iter().any(|f| f.name.ends_with(".sst")));
        assert!(chunks
            .iter()
            .all(|c| !c.data.is_empty() && c.data.len() <= size));
        // More chunks than files: the large values span several.
        assert!(chunks.len() > manifest.files.len(), "{}", chunks.len());
        assert_eq!(
            chunks.iter().map(|c| c.data.len() as u64).sum::<u64>(),
            manifest.total_bytes()
        );
        let staging = tmp.path().join(format!("incoming-{size}"));
        let mut rx = SnapshotReceiver::new(&staging, manifest.clone(), LIMITS).unwrap();
        for c in &chunks {
            rx.accept(c).unwrap();
        }
        assert_eq!(rx.expected(), None);
        let files = rx.finish().unwrap();
        assert_eq!(files.dir(), staging);
        // The copy lists the same files with the same bytes, and opens
        // with the same contents.
        assert_eq!(SnapshotManifest::of_dir(&staging).unwrap(), manifest);
        let db = Db::open(&staging, Options::default()).unwrap();
        assert_eq!(contents(&db), want);
        db.close().unwrap();
        std::fs::remove_dir_all(&staging).unwrap();
    }
}

#[test]
fn manifest_and_chunks_survive_serialization() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, chunks) = chunks(&small_dir(tmp.path()), 4096);
    let m: SnapshotManifest =
        serde_json::from_str(&serde_json::to_string(&manifest).unwrap()).unwrap();
    assert_eq!(m, manifest);
    for c in &chunks {
        let back: Chunk = serde_json::from_slice(&serde_json::to_vec(c).unwrap()).unwrap();
        assert_eq!(&back, c);
    }
}

#[test]
fn a_damaged_byte_fails_the_checksum_and_removes_the_staging_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, mut chunks) = chunks(&small_dir(tmp.path()), 4096);
    // The second chunk of the SST (file 0).
    chunks[1].data[17] ^= 1;
    let staging = tmp.path().join("incoming");
    let mut rx = SnapshotReceiver::new(&staging, manifest, LIMITS).unwrap();
    let err = chunks
        .iter()
        .map(|c| rx.accept(c))
        .find_map(Result::err)
        .expect("a checksum error");
    match &err {
        TransferError::Checksum { name, .. } => assert_eq!(name, "000001.sst"),
        e => panic!("{e}"),
    }
    assert!(err.to_string().contains("000001.sst"), "{err}");
    assert!(!staging.exists());
    // The transfer is over.
    assert!(matches!(rx.accept(&chunks[0]), Err(TransferError::Closed)));
    assert!(matches!(rx.finish(), Err(TransferError::Closed)));
}

#[test]
fn chunks_out_of_order_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, chunks) = chunks(&small_dir(tmp.path()), 4096);
    assert_eq!(chunks.len(), 4, "three of the SST, one of CURRENT");
    let cases: [(&str, Vec<usize>); 4] = [
        ("a gap", vec![0, 2]),
        ("a repeat", vec![0, 0]),
        ("another file first", vec![3]),
        ("a step back", vec![0, 1, 0]),
    ];
    for (what, order) in cases {
        let staging = tmp.path().join("incoming");
        let mut rx = SnapshotReceiver::new(&staging, manifest.clone(), LIMITS).unwrap();
        let (last, ok) = order.split_last().unwrap();
        for &i in ok {
            rx.accept(&chunks[i]).unwrap();
        }
        match rx.accept(&chunks[*last]) {
            Err(e @ TransferError::OutOfOrder { .. }) => {
                assert!(e.to_string().contains("offset"), "{what}: {e}")
            }
            other => panic!("{what}: {other:?}"),
        }
        assert!(!staging.exists(), "{what}");
    }
    // A chunk with a shifted offset, and one with a file index past the
    // manifest.
    for bad in [
        Chunk {
            offset: 1,
            ..chunks[0].clone()
        },
        Chunk {
            file: 99,
            ..chunks[0].clone()
        },
    ] {
        let staging = tmp.path().join("incoming");
        let mut rx = SnapshotReceiver::new(&staging, manifest.clone(), LIMITS).unwrap();
        assert!(matches!(
            rx.accept(&bad),
            Err(TransferError::OutOfOrder { .. })
        ));
    }
    // A chunk after the last.
    let staging = tmp.path().join("incoming");
    let mut rx = SnapshotReceiver::new(&staging, manifest, LIMITS).unwrap();
    for c in &chunks {
        rx.accept(c).unwrap();
    }
    assert!(matches!(
        rx.accept(&chunks[3]),
        Err(TransferError::AfterEnd { file: 1, .. })
    ));
}

#[test]
fn bad_chunks_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = small_dir(tmp.path());
    let (manifest, chunks) = chunks(&dir, 4096);
    let staging = tmp.path().join("incoming");
    // Past the file's declared length: the last SST chunk grown.
    let mut rx = SnapshotReceiver::new(&staging, manifest.clone(), LIMITS).unwrap();
    rx.accept(&chunks[0]).unwrap();
    rx.accept(&chunks[1]).unwrap();
    let mut long = chunks[2].clone();
    long.data.extend_from_slice(&[7; 10]);
    match rx.accept(&long) {
        Err(TransferError::PastEnd {
            name,
            offset: 8192,
            len,
            file_len: 10_000,
        }) => assert_eq!((name.as_str(), len), ("000001.sst", 1818)),
        other => panic!("{other:?}"),
    }
    assert!(!staging.exists());
    // Empty, and larger than the receiver's limit.
    let mut rx = SnapshotReceiver::new(&staging, manifest.clone(), LIMITS).unwrap();
    let empty = Chunk {
        data: Vec::new(),
        ..chunks[0].clone()
    };
    assert!(matches!(
        rx.accept(&empty),
        Err(TransferError::EmptyChunk { offset: 0, .. })
    ));
    let small = ReceiveLimits {
        max_chunk_bytes: 1000,
        ..LIMITS
    };
    let mut rx = SnapshotReceiver::new(&staging, manifest.clone(), small).unwrap();
    assert!(matches!(
        rx.accept(&chunks[0]),
        Err(TransferError::ChunkTooLarge {
            len: 4096,
            limit: 1000,
            ..
        })
    ));
    // Finished early: the file being received is named.
    let mut rx = SnapshotReceiver::new(&staging, manifest, LIMITS).unwrap();
    rx.accept(&chunks[0]).unwrap();
    match rx.finish() {
        Err(TransferError::Incomplete {
            name,
            received: 4096,
            len: 10_000,
        }) => assert_eq!(name, "000001.sst"),
        other => panic!("{other:?}"),
    }
    assert!(!staging.exists());
}

#[test]
fn bad_manifests_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let staging = tmp.path().join("incoming");
    let entry = |name: &str, len: u64| FileEntry {
        name: name.into(),
        len,
        checksum: 0,
    };
    let manifest = |files: Vec<FileEntry>| SnapshotManifest { files };
    let cases: Vec<(&str, SnapshotManifest)> = vec![
        ("parent", manifest(vec![entry("..", 1)])),
        ("a path", manifest(vec![entry("../escape", 1)])),
        ("a subdirectory", manifest(vec![entry("sub/file", 1)])),
        ("absolute", manifest(vec![entry("/etc/passwd", 1)])),
        ("backslash", manifest(vec![entry("a\\b", 1)])),
        ("empty name", manifest(vec![entry("", 1)])),
        ("dot", manifest(vec![entry(".", 1)])),
        (
            "twice",
            manifest(vec![entry("CURRENT", 1), entry("CURRENT", 2)]),
        ),
        ("no files", manifest(vec![])),
        (
            "too many bytes",
            manifest(vec![entry("a", 1 << 29), entry("b", (1 << 29) + 1)]),
        ),
        (
            "overflowing bytes",
            manifest(vec![entry("a", u64::MAX), entry("b", u64::MAX)]),
        ),
        (
            "too many files",
            manifest((0..1001).map(|i| entry(&format!("f{i}"), 0)).collect()),
        ),
    ];
    for (what, m) in cases {
        let err = SnapshotReceiver::new(&staging, m, LIMITS).expect_err(what);
        let expected = match what {
            "twice" => matches!(err, TransferError::DuplicateName { index: 1, .. }),
            "no files" => matches!(err, TransferError::EmptyManifest),
            "too many bytes" | "overflowing bytes" => {
                matches!(err, TransferError::TooManyBytes { .. })
            }
            "too many files" => matches!(
                err,
                TransferError::TooManyFiles {
                    files: 1001,
                    limit: 1000
                }
            ),
            _ => matches!(err, TransferError::BadName { index: 0, .. }),
        };
        assert!(expected, "{what}: {err}");
        assert!(!staging.exists(), "{what}");
    }
    // A staging directory that exists already is not the receiver's: it is
    // refused and left alone.
    std::fs::create_dir(&staging).unwrap();
    let (m, _) = chunks(&small_dir(tmp.path()), 4096);
    assert!(matches!(
        SnapshotReceiver::new(&staging, m, LIMITS),
        Err(TransferError::Io { .. })
    ));
    assert!(staging.is_dir());
}

#[test]
fn an_abandoned_receive_leaves_nothing_and_a_finished_one_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, chunks) = chunks(&small_dir(tmp.path()), 4096);
    let staging = tmp.path().join("incoming");
    let mut rx = SnapshotReceiver::new(&staging, manifest.clone(), LIMITS).unwrap();
    rx.accept(&chunks[0]).unwrap();
    assert_eq!(rx.expected(), Some((0, 4096)));
    assert!(staging.join("000001.sst").is_file());
    drop(rx);
    assert!(!staging.exists());
    // Finished, the directory is the caller's.
    let mut rx = SnapshotReceiver::new(&staging, manifest, LIMITS).unwrap();
    for c in &chunks {
        rx.accept(c).unwrap();
    }
    let files = rx.finish().unwrap();
    assert_eq!(std::fs::read(files.dir().join("empty")).unwrap(), b"");
    assert_eq!(
        std::fs::read(files.dir().join("CURRENT")).unwrap(),
        b"MANIFEST-000002\n"
    );
}

#[test]
fn the_sender_refuses_what_it_cannot_send() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = small_dir(tmp.path());
    assert!(matches!(
        SnapshotSender::new(&dir, 0),
        Err(TransferError::ZeroChunkSize)
    ));
    // The lock file is not part of a snapshot.
    std::fs::write(dir.join("LOCK"), b"").unwrap();
    let m = SnapshotManifest::of_dir(&dir).unwrap();
    let names: Vec<&str> = m.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["000001.sst", "CURRENT", "empty"]);
    // A directory that is not flat.
    std::fs::create_dir(dir.join("sub")).unwrap();
    match SnapshotSender::new(&dir, 4096) {
        Err(TransferError::NotFlat { name, .. }) => assert_eq!(name, "sub"),
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir(dir.join("sub")).unwrap();
    // A file that shrinks after its manifest was made.
    let mut sender = SnapshotSender::new(&dir, 4096).unwrap();
    std::fs::write(dir.join("000001.sst"), vec![7u8; 5000]).unwrap();
    sender.next_chunk().unwrap();
    match sender.next_chunk() {
        Err(TransferError::Truncated {
            name,
            offset: 5000,
            len: 10_000,
        }) => assert_eq!(name, "000001.sst"),
        other => panic!("{other:?}"),
    }
    // The sender is done; as an iterator, it ends.
    assert!(matches!(sender.next_chunk(), Err(TransferError::Closed)));
    assert!(sender.next().is_none());
}

/// SPEC §18.3 states the default chunk size the code uses.
#[test]
fn spec_states_the_default_chunk_size() {
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../SPEC.md")).unwrap();
    let section = spec
        .split("\n### ")
        .find(|s| s.starts_with("18.3 "))
        .expect("SPEC §18.3");
    let section = section.split("\n## ").next().unwrap_or(section);
    let stated = format!("`DEFAULT_CHUNK_BYTES` = {DEFAULT_CHUNK_BYTES}");
    assert!(section.contains(&stated), "SPEC §18.3 should say {stated}");
}
