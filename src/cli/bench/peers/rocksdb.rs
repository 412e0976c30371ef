//! RocksDB through rust-rocksdb, set up as its "Setup Options and Basic
//! Tuning" guide recommends: 16 KiB blocks, a 10-bit bloom filter, index
//! and filter blocks charged to the block cache with level 0's pinned,
//! 1 MiB `bytes_per_sync`, background jobs for the machine's cores.

use std::path::Path;

use super::super::engines::{count, err, BenchDb, EngineSettings};
use super::rmw;

pub(super) struct Rocks {
    db: rocksdb::DB,
    /// BlobDB is on.
    blobs: bool,
}

impl Rocks {
    pub(super) fn open(dir: &Path, s: EngineSettings) -> Result<Self, String> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as i32;
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.increase_parallelism(cores);
        opts.set_max_background_jobs(cores.max(2));
        opts.set_bytes_per_sync(1 << 20);
        opts.set_level_compaction_dynamic_level_bytes(true);
        let mut table = rocksdb::BlockBasedOptions::default();
        let cache = rocksdb::Cache::new_lru_cache(s.cache_bytes);
        table.set_block_cache(&cache);
        table.set_block_size(16 << 10);
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        opts.set_block_based_table_factory(&table);
        opts.set_compression_type(if s.compression {
            rocksdb::DBCompressionType::Zstd
        } else {
            rocksdb::DBCompressionType::None
        });
        if let Some(min) = s.separate_from {
            // BlobDB: values written once to blob files at flush, garbage
            // collected as compaction rewrites the oldest blob files.
            opts.set_enable_blob_files(true);
            opts.set_min_blob_size(min as u64);
            opts.set_enable_blob_gc(true);
        }
        let db = rocksdb::DB::open(&opts, dir).map_err(err)?;
        Ok(Rocks {
            db,
            blobs: s.separate_from.is_some(),
        })
    }
}

impl BenchDb for Rocks {
    fn settings(&self) -> String {
        let base = "16 KiB blocks, bloom 10 bits/key, index and filter blocks in the block cache \
         (level 0's pinned), dynamic level bytes, bytes_per_sync 1 MiB, WAL synced only by fillsync";
        if self.blobs {
            format!("{base}, BlobDB (enable_blob_files, min_blob_size 4096, blob GC)")
        } else {
            base.into()
        }
    }
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<(), String> {
        let mut wo = rocksdb::WriteOptions::default();
        wo.set_sync(sync);
        self.db.put_opt(key, value, &wo).map_err(err)
    }
    fn get(&self, key: &[u8]) -> Result<Option<usize>, String> {
        Ok(self.db.get_pinned(key).map_err(err)?.map(|v| v.len()))
    }
    fn scan(&self, start: &[u8], n: usize) -> Result<usize, String> {
        let it = self.db.iterator(rocksdb::IteratorMode::From(
            start,
            rocksdb::Direction::Forward,
        ));
        count(it.take(n))
    }
    fn scan_all(&self, reverse: bool) -> Result<usize, String> {
        let mode = if reverse {
            rocksdb::IteratorMode::End
        } else {
            rocksdb::IteratorMode::Start
        };
        count(self.db.iterator(mode))
    }
    fn read_modify_write(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        rmw(self, key, value)
    }
    fn settle(&self) -> Result<(), String> {
        self.db.flush().map_err(err)
    }
    fn compact(&self) -> Result<bool, String> {
        self.db.compact_range::<&[u8], &[u8]>(None, None);
        Ok(true)
    }
}
