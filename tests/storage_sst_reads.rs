//! Reading a large blob back: with mapped SSTs (the default) the mapped
//! file pages count in the process's resident memory; with
//! `engine.sst_reads = "pread"` they do not. Alone in its test binary, so
//! no other test's mappings move the figures.

mod common;

use std::io::Read;

use strata::engine::SstReads;
use strata::{StorageKey, StorageOptions, StorageSystem, StorageSystemConfig};

/// Writes a blob of `size` bytes, compacts it into SSTs, reopens, then
/// reads it back; returns how much `RssFile` grew while reading.
fn file_memory_grown_by_reading(reads: SstReads, size: usize) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StorageSystemConfig::default();
    config.engine.sync_writes = false;
    config.engine.memtable_size = 8 << 20;
    config.engine.block_cache_size = 8 << 20;
    config.engine.sst_reads = reads;
    // The chunks stay in the tables this test reads through.
    config.engine.blob_threshold = 0;
    let open = || {
        StorageSystem::builder()
            .path(dir.path())
            .with_config(config.clone())
            .build()
            .unwrap()
    };
    let storage = open();
    // Bytes that do not compress, so the tables are as large as the blob.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..size).map(|_| common::xorshift(&mut x) as u8).collect();
    let key = StorageKey::new("big");
    storage
        .get_blob_storage()
        .unwrap()
        .put_stream(&key, &data[..], &StorageOptions::new())
        .unwrap();
    storage.db().compact().unwrap();
    storage.close().unwrap();
    drop(storage);
    let storage = open();
    let before = common::rss_file();
    let mut r = storage.get_blob_storage().unwrap().open(&key).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut peak = before;
    let mut at = 0;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert!(buf[..n] == data[at..at + n], "content differs at {at}");
        at += n;
        peak = peak.max(common::rss_file());
    }
    assert_eq!(at, size);
    peak.saturating_sub(before)
}

#[test]
fn positioned_sst_reads_keep_file_pages_out_of_resident_memory() {
    let size = 96 << 20;
    let mapped = file_memory_grown_by_reading(SstReads::Mmap, size);
    let pread = file_memory_grown_by_reading(SstReads::Pread, size);
    eprintln!(
        "reading a {} MiB blob: mapped file memory grew by {} MiB with mmap, {} MiB with pread",
        size >> 20,
        mapped >> 20,
        pread >> 20
    );
    assert!(pread < 8 << 20, "pread: grew by {} MiB", pread >> 20);
    assert!(
        mapped > (size as u64) / 2,
        "mmap: grew by {} MiB",
        mapped >> 20
    );
}
