//! Blobs: streams in and out in chunks, seeking, content hashes,
//! transactions, space reclaimed, and memory that stays flat whatever the
//! size. `STRATA_BLOB_GIB=1` streams a 1 GiB blob (the normal run streams
//! 256 MiB); the peak memory bound is the same.

mod common;

use std::io::{Read, Seek, SeekFrom};

use strata::{
    DeleteOptions, KeyPattern, RetrieveOptions, StorageError, StorageKey, StorageOptions,
    StorageProvider, StorageSystem, StorageSystemConfig, StorageType,
};

/// The tests of this file run one at a time: one measures the process's
/// peak memory, and one fills a small disk, and neither may see another's
/// allocations or files.
static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ALONE.lock().unwrap_or_else(|e| e.into_inner())
}

fn key(s: &str) -> StorageKey {
    StorageKey::new(s)
}

/// Deterministic bytes that do not compress.
struct Pattern {
    left: u64,
    state: u64,
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for b in &mut buf[..n] {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            *b = self.state as u8;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn pattern(len: u64) -> Pattern {
    Pattern {
        left: len,
        state: 0x9e37_79b9_7f4a_7c15,
    }
}

fn small_chunks(dir: &std::path::Path) -> StorageSystem {
    let mut config = StorageSystemConfig::default();
    // No history kept: replaced chunks can go at the next compaction.
    config.engine.history_retention_secs = 0;
    config.providers.insert(
        StorageType::Blob,
        strata::ProviderConfig {
            provider_type: "blob".into(),
            chunk_size: 1000,
            ..Default::default()
        },
    );
    config.engine.sync_writes = false;
    StorageSystem::builder()
        .path(dir)
        .with_config(config)
        .build()
        .unwrap()
}

fn chunk_count(storage: &StorageSystem) -> usize {
    let ks = storage.db().keyspace("blob").unwrap();
    ks.prefix("c/").unwrap().count()
}

#[test]
fn streams_in_and_out_with_seeks_and_hashes() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let storage = small_chunks(dir.path());
    let blobs = storage.get_blob_storage().unwrap();
    let mut data = Vec::new();
    pattern(10_500).read_to_end(&mut data).unwrap();
    let meta = blobs
        .put_stream(&key("b/1"), pattern(10_500), &StorageOptions::new())
        .unwrap();
    assert_eq!(
        (meta.size, meta.chunks, meta.chunk_size),
        (10_500, 11, 1000)
    );
    assert_eq!(
        meta.content_hash,
        format!("{:032x}", xxhash_rust_digest(&data))
    );
    let mut r = blobs.open(&key("b/1")).unwrap();
    let mut back = Vec::new();
    r.read_to_end(&mut back).unwrap();
    assert_eq!(back, data);
    assert!(r.verify().unwrap());
    // Seeks across chunk boundaries.
    for (at, len) in [(0u64, 10u64), (995, 10), (9_999, 501), (10_490, 50)] {
        r.seek(SeekFrom::Start(at)).unwrap();
        let mut got = Vec::new();
        (&mut r).take(len).read_to_end(&mut got).unwrap();
        let end = (at + len).min(data.len() as u64) as usize;
        assert_eq!(got, data[at as usize..end], "at {at}");
    }
    assert_eq!(r.seek(SeekFrom::End(-5)).unwrap(), 10_495);
    assert!(r.seek(SeekFrom::Current(-20_000)).is_err());

    // The provider interface works on blobs too, and an empty blob is one.
    let p = storage.get_provider(StorageType::Blob).unwrap();
    assert_eq!(
        p.retrieve(&key("b/1"), &RetrieveOptions::new())
            .unwrap()
            .value,
        data
    );
    p.store(&key("b/empty"), b"", &StorageOptions::new())
        .unwrap();
    assert!(p
        .retrieve(&key("b/empty"), &RetrieveOptions::new())
        .unwrap()
        .value
        .is_empty());
    assert_eq!(
        p.list_keys(&KeyPattern::prefix("b/")).unwrap(),
        vec![key("b/1"), key("b/empty")]
    );
    assert!(matches!(
        blobs.open(&key("b/none")),
        Err(StorageError::NotFound(_))
    ));
}

fn xxhash_rust_digest(data: &[u8]) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(data);
    h.digest128()
}

#[test]
fn replaced_and_deleted_blobs_give_their_space_back() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let storage = small_chunks(dir.path());
    let blobs = storage.get_blob_storage().unwrap();
    blobs
        .put_stream(&key("x"), pattern(5_000), &StorageOptions::new())
        .unwrap();
    let before = blobs.open(&key("x")).unwrap();
    blobs
        .put_stream(&key("x"), pattern(3_000), &StorageOptions::new())
        .unwrap();
    // Only the new chunks remain; a reader opened before still reads the
    // old content (its snapshot keeps it).
    assert_eq!(chunk_count(&storage), 3);
    let mut old = Vec::new();
    let mut before = before;
    before.read_to_end(&mut old).unwrap();
    assert_eq!(old.len(), 5_000);
    assert!(blobs.delete_blob(&key("x")).unwrap());
    assert_eq!(chunk_count(&storage), 0);
    assert!(!blobs.delete_blob(&key("x")).unwrap());

    // Compaction reclaims the bytes on disk.
    put_blobs(&blobs, "y", 20, 50_000);
    storage.db().compact().unwrap();
    let full = sst_bytes(&storage);
    for i in 0..20 {
        blobs.delete_blob(&key(&format!("y{i}"))).unwrap();
    }
    storage.db().compact().unwrap();
    let after = sst_bytes(&storage);
    assert!(
        after * 10 < full,
        "{after} of {full} bytes left after deleting every blob"
    );
}

/// Stores `n` blobs of `len` pattern bytes under `prefix0`, `prefix1`, ...
fn put_blobs(blobs: &strata::BlobStorageProvider, prefix: &str, n: usize, len: u64) {
    for i in 0..n {
        blobs
            .put_stream(
                &key(&format!("{prefix}{i}")),
                pattern(len),
                &StorageOptions::new(),
            )
            .unwrap();
    }
}

fn sst_bytes(storage: &StorageSystem) -> u64 {
    storage
        .db()
        .stats()
        .keyspaces
        .iter()
        .flat_map(|k| k.levels.iter().map(|l| l.bytes))
        .sum()
}

#[test]
fn blobs_in_transactions_appear_at_commit_and_vanish_on_rollback() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let storage = small_chunks(dir.path());
    let blobs = storage.get_blob_storage().unwrap();
    let facts = storage.get_provider(StorageType::Fact).unwrap();
    blobs
        .put_stream(&key("doc"), pattern(2_500), &StorageOptions::new())
        .unwrap();

    let tx = storage.begin_transaction().unwrap();
    let o = StorageOptions::new().with_transaction(&tx);
    blobs.put_stream(&key("doc"), pattern(4_500), &o).unwrap();
    facts.store(&key("f"), b"doc replaced", &o).unwrap();
    assert_eq!(blobs.metadata(&key("doc")).unwrap().size, 2_500);
    // Inside the transaction, its own blob is the one read.
    let p = storage.get_provider(StorageType::Blob).unwrap();
    let inside = p
        .retrieve(&key("doc"), &RetrieveOptions::new().with_transaction(&tx))
        .unwrap();
    assert_eq!(inside.value.len(), 4_500);
    storage.commit_transaction(tx.id).unwrap();
    assert_eq!(blobs.metadata(&key("doc")).unwrap().size, 4_500);
    assert_eq!(chunk_count(&storage), 5, "the old chunks are gone");

    let tx = storage.begin_transaction().unwrap();
    blobs
        .put_stream(
            &key("new"),
            pattern(3_000),
            &StorageOptions::new().with_transaction(&tx),
        )
        .unwrap();
    storage.rollback_transaction(tx.id).unwrap();
    assert!(matches!(
        blobs.metadata(&key("new")),
        Err(StorageError::NotFound(_))
    ));
    assert_eq!(chunk_count(&storage), 5, "the rolled-back chunks are gone");

    let tx = storage.begin_transaction().unwrap();
    let p = storage.get_provider(StorageType::Blob).unwrap();
    p.delete(&key("doc"), &DeleteOptions::new().with_transaction(&tx))
        .unwrap();
    storage.commit_transaction(tx.id).unwrap();
    assert_eq!(chunk_count(&storage), 0);
}

#[test]
fn chunks_of_an_interrupted_write_are_collected_at_open() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    {
        let storage = small_chunks(dir.path());
        let blobs = storage.get_blob_storage().unwrap();
        blobs
            .put_stream(&key("kept"), pattern(2_000), &StorageOptions::new())
            .unwrap();
        // A write cut short: its marker and chunks, no metadata.
        let ks = storage.db().keyspace("blob").unwrap();
        ks.put("p/deadbeef", "").unwrap();
        for i in 0u64..3 {
            let mut k = b"c/deadbeef/".to_vec();
            k.extend_from_slice(&i.to_be_bytes());
            ks.put(k, [0u8; 1000]).unwrap();
        }
        assert_eq!(chunk_count(&storage), 5);
        storage.close().unwrap();
    }
    let storage = small_chunks(dir.path());
    assert_eq!(chunk_count(&storage), 2);
    let blobs = storage.get_blob_storage().unwrap();
    assert!(blobs.open(&key("kept")).unwrap().verify().unwrap());
}

#[test]
fn a_large_blob_streams_in_and_out_in_flat_memory() {
    let _alone = alone();
    let gib: u64 = std::env::var("STRATA_BLOB_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let size = if gib > 0 { gib << 30 } else { 256 << 20 };
    let dir = tempfile::tempdir().unwrap();
    let mut config = StorageSystemConfig::default();
    config.engine.memtable_size = 8 << 20;
    config.engine.block_cache_size = 8 << 20;
    config.engine.sync_writes = false;
    let storage = StorageSystem::builder()
        .path(dir.path())
        .with_config(config)
        .build()
        .unwrap();
    let blobs = storage.get_blob_storage().unwrap();
    let base = common::rss_anon();
    let sampler = common::PeakSampler::start();
    let meta = blobs
        .put_stream(&key("big"), pattern(size), &StorageOptions::new())
        .unwrap();
    assert_eq!(meta.size, size);
    let mut r = blobs.open(&key("big")).unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut check = pattern(size);
    let mut expect = vec![0u8; buf.len()];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        check.read_exact(&mut expect[..n]).unwrap();
        assert!(buf[..n] == expect[..n], "content differs at {total}");
        total += n as u64;
    }
    assert_eq!(total, size);
    let grown = sampler.peak().saturating_sub(base);
    eprintln!(
        "{} MiB blob: peak memory grew by {} MiB",
        size >> 20,
        grown >> 20
    );
    assert!(grown < 64 << 20, "peak memory grew by {} MiB", grown >> 20);
}

/// A storage system on a manual clock, with small chunks and no history.
fn on_clock(
    dir: &std::path::Path,
    clock: std::sync::Arc<strata::engine::ManualClock>,
) -> StorageSystem {
    let mut config = StorageSystemConfig::default();
    config.engine.history_retention_secs = 0;
    config.engine.sync_writes = false;
    config.providers.insert(
        StorageType::Blob,
        strata::ProviderConfig {
            provider_type: "blob".into(),
            chunk_size: 64 << 10,
            ..Default::default()
        },
    );
    let opts = strata::engine::Options {
        clock,
        ..Default::default()
    };
    StorageSystem::builder()
        .path(dir)
        .with_config(config)
        .with_engine_options(opts)
        .build()
        .unwrap()
}

/// A blob with a TTL disappears from reads and listings when it expires,
/// and compaction then reclaims its metadata and every chunk.
#[test]
fn expired_blobs_vanish_and_compaction_reclaims_their_chunks() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(strata::engine::ManualClock::new(strata::Timestamp::now()));
    let storage = on_clock(dir.path(), clock.clone());
    let blobs = storage.get_blob_storage().unwrap();
    let ttl = StorageOptions::new().with_ttl(Some(std::time::Duration::from_secs(60)));
    let meta = blobs
        .put_stream(&key("short"), pattern(8 * (64 << 10)), &ttl)
        .unwrap();
    assert_eq!(meta.chunks, 8);
    blobs
        .put_stream(&key("kept"), pattern(1000), &StorageOptions::new())
        .unwrap();
    storage.db().compact().unwrap();
    let before = sst_bytes(&storage);
    assert!(before > 8 * (64 << 10), "{before}");
    assert!(blobs.open(&key("short")).is_ok());

    clock.advance(std::time::Duration::from_secs(61));
    let keys = blobs.list_keys(&KeyPattern::all()).unwrap();
    assert_eq!(keys, vec![key("kept")]);
    assert!(matches!(
        blobs.open(&key("short")),
        Err(StorageError::NotFound(_))
    ));
    assert!(matches!(
        blobs.metadata(&key("short")),
        Err(StorageError::NotFound(_))
    ));
    assert_eq!(chunk_count(&storage), 1, "only the kept blob's chunk reads");

    blobs.cleanup().unwrap();
    // Any later commit moves the readable present past the expiry (until
    // then a read at the last commit's timestamp could still see it).
    blobs
        .put_stream(&key("later"), pattern(10), &StorageOptions::new())
        .unwrap();
    storage.db().compact().unwrap();
    let after = sst_bytes(&storage);
    assert!(after < 64 << 10, "expired chunks still take {after} bytes");
    let mut back = Vec::new();
    blobs
        .open(&key("kept"))
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back.len(), 1000);
}

/// A blob write that runs out of disk space leaves chunks behind that its
/// own clean-up cannot delete (the database refuses writes until space is
/// back); the failure is counted, and once an operator frees space,
/// `cleanup()` removes the orphans and compaction gives the space back.
#[test]
fn chunks_of_a_write_that_filled_the_disk_are_collected_by_cleanup() {
    let _alone = alone();
    let Some(mount) = strata_engine::fs::TmpfsMount::with_size_mib(24) else {
        return;
    };
    // Space the operator frees once the disk is full.
    let ballast = mount.path().join("ballast");
    std::fs::write(&ballast, vec![1u8; 8 << 20]).unwrap();
    let dir = mount.path().join("db");
    let mut config = StorageSystemConfig::default();
    config.engine.sync_writes = false;
    config.engine.history_retention_secs = 0;
    config.engine.memtable_size = 1 << 20;
    let storage = StorageSystem::builder()
        .path(&dir)
        .with_config(config)
        .build()
        .unwrap();
    let blobs = storage.get_blob_storage().unwrap();
    let failed = blobs.put_stream(&key("huge"), pattern(20 << 20), &StorageOptions::new());
    assert!(failed.is_err(), "a 20 MiB blob cannot fit");
    assert!(blobs.list_keys(&KeyPattern::all()).unwrap().is_empty());
    let failures = blobs.cleanup_failures();
    std::fs::remove_file(&ballast).unwrap();
    for _ in 0..200 {
        if storage.db().resume().is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // What the failed write's own clean-up could not remove, cleanup does.
    let collected = blobs.cleanup().unwrap();
    assert_eq!(collected, failures.min(1), "failures {failures}");
    assert_eq!(chunk_count(&storage), 0);
    let pending = storage
        .db()
        .keyspace("blob")
        .unwrap()
        .prefix("p/")
        .unwrap()
        .count();
    assert_eq!(pending, 0);
    storage.db().compact().unwrap();
    assert!(sst_bytes(&storage) < 1 << 20, "{}", sst_bytes(&storage));
    blobs
        .put_stream(&key("small"), pattern(1 << 20), &StorageOptions::new())
        .unwrap();
}

/// A blob written in a transaction still open is being written: a
/// cleanup meanwhile leaves its chunks, and the blob reads whole after
/// the commit.
#[test]
fn cleanup_leaves_the_chunks_of_a_transaction_still_open() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let storage = small_chunks(dir.path());
    let blobs = storage.get_blob_storage().unwrap();
    let tx = storage.begin().unwrap();
    blobs
        .put_stream(
            &key("pending"),
            pattern(10_000),
            &StorageOptions::new().with_transaction(&tx),
        )
        .unwrap();
    assert_eq!(blobs.cleanup().unwrap(), 0);
    assert_eq!(chunk_count(&storage), 10);
    tx.commit().unwrap();
    let mut back = Vec::new();
    blobs
        .open(&key("pending"))
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    let mut want = Vec::new();
    pattern(10_000).read_to_end(&mut want).unwrap();
    assert_eq!(back, want);
    // Rolled back: its chunks go with it, and cleanup finds nothing left.
    let tx = storage.begin().unwrap();
    blobs
        .put_stream(
            &key("gone"),
            pattern(5_000),
            &StorageOptions::new().with_transaction(&tx),
        )
        .unwrap();
    tx.rollback().unwrap();
    assert_eq!(chunk_count(&storage), 10);
    assert_eq!(blobs.cleanup().unwrap(), 0);
}

/// Chunks of the default size are values stored apart from the tree (SPEC
/// §13.8): the tables hold pointers, the chunks are written once to blob
/// files, and deleting the blobs gives the blob files' space back.
#[test]
fn chunks_are_stored_apart_from_the_tree_and_their_space_comes_back() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let mut config = StorageSystemConfig::default();
    config.engine.history_retention_secs = 0;
    config.engine.sync_writes = false;
    let storage = StorageSystem::builder()
        .path(dir.path())
        .with_config(config)
        .build()
        .unwrap();
    let blobs = storage.get_blob_storage().unwrap();
    put_blobs(&blobs, "z", 5, 300_000);
    storage.db().flush().unwrap();
    let stats = storage.db().stats();
    assert!(stats.blob_files > 0, "{stats:?}");
    assert!(stats.blob_live_bytes >= 1_500_000, "{stats:?}");
    assert!(
        sst_bytes(&storage) < 200_000,
        "the tables hold {} bytes",
        sst_bytes(&storage)
    );
    let mut back = Vec::new();
    blobs
        .open(&key("z3"))
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    let mut expected = Vec::new();
    pattern(300_000).read_to_end(&mut expected).unwrap();
    assert!(back == expected);
    for i in 0..5 {
        blobs.delete_blob(&key(&format!("z{i}"))).unwrap();
    }
    storage.db().compact().unwrap();
    let stats = storage.db().stats();
    assert_eq!((stats.blob_files, stats.blob_bytes), (0, 0), "{stats:?}");
}
