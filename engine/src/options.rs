//! How a database is configured.

use std::sync::Arc;
use std::time::Duration;

use strata_format::codec::Compression;

use crate::fs::{FileSystem, StdFs};

/// Options of a database, fixed at open.
#[derive(Debug, Clone)]
pub struct Options {
    /// Size at which a memtable is switched to immutable and flushed.
    pub memtable_size: usize,
    /// Immutable memtables allowed to wait for a flush before writers stall.
    pub max_immutable_memtables: usize,
    /// Target size of a data block before compression.
    pub block_size: usize,
    /// Entries between restart points in a data block.
    pub restart_interval: usize,
    /// Bloom filter bits per key.
    pub bloom_bits_per_key: u32,
    /// Compression per level (index = level); the last entry applies to all
    /// deeper levels.
    pub compression: Vec<Compression>,
    /// Capacity of the shared block cache in bytes.
    pub block_cache_size: usize,
    /// Open tables kept (mapped, or with their file open, as `sst_reads`
    /// says). With `SstReads::Pread` each holds a file descriptor: keep it
    /// below the process's limit (`ulimit -n`), or opens of tables beyond
    /// it fail.
    pub table_cache_capacity: usize,
    /// How SSTs are read: through a memory mapping of each open table, or
    /// with positioned reads into the block cache. See [`SstReads`].
    pub sst_reads: SstReads,
    /// L0 files that trigger an L0 → L1 compaction.
    pub l0_compaction_trigger: usize,
    /// L0 files at which each write is delayed.
    pub l0_slowdown_trigger: usize,
    /// L0 files at which writes stop until compaction catches up.
    pub l0_stop_trigger: usize,
    /// Target size of L1; each deeper level is `level_size_ratio` times larger.
    pub base_level_size: u64,
    /// Size ratio between adjacent levels.
    pub level_size_ratio: u64,
    /// Target size of one compaction output file.
    pub target_file_size: u64,
    /// Number of levels (L0 included).
    pub num_levels: usize,
    /// Threads a full compaction (`Db::compact`) merges its key ranges on,
    /// at most; 0 (the default) is one per core. Background compactions
    /// use one thread each, so they leave cores to the writers.
    pub full_compaction_threads: usize,
    /// Values of puts at least this many bytes long are stored apart from
    /// the tree, in blob files, written once when committed; the tree
    /// holds a pointer to each (SPEC §13.8). Flushes and compactions then
    /// move pointers instead of values. `None` keeps every value in the
    /// tree. Default 4 KiB. Values with a TTL always stay in the tree.
    pub blob_threshold: Option<usize>,
    /// Compression of the values stored in blob files (default none:
    /// large values are often compressed already).
    pub blob_compression: Compression,
    /// A compaction that meets a pointer into a blob file at least this
    /// fraction of whose bytes no SST points to any more copies the value
    /// into a new blob file, so the old one can be deleted once nothing
    /// points into it (default 0.5; 1.0 or more never relocates).
    pub blob_garbage_ratio: f64,
    /// When set, the WAL is synced in the background at this interval, so
    /// writes without `sync` lose at most about this much on power loss.
    pub wal_sync_interval: Option<Duration>,
    /// Append to the WAL through a memory mapping of its preallocated
    /// space where the file system allows it (ext4, XFS, tmpfs; default
    /// true): a copy per commit instead of a system call. The cost: an I/O
    /// error while writing the WAL (a journal aborted by a failing disk)
    /// reaches the process as SIGBUS, which ends it, instead of as an
    /// error that puts the database in the error state (reads go on).
    /// No acknowledged write is lost either way. Set it to false where
    /// the process must outlive such a failure.
    pub wal_mmap: bool,
    /// Run flushes and compactions on background threads (the default).
    /// When false the engine starts no thread: the writer that fills the
    /// memtables flushes and compacts before it returns. Slower, but every
    /// run of a workload is the same sequence of file operations, which
    /// deterministic simulation tests rely on. `wal_sync_interval` needs the
    /// threads and has no effect without them.
    pub background_threads: bool,
    /// How far back reads of the past (`get_at`, `range_at`,
    /// `snapshot_at`, `history`) may go: compaction keeps every version a
    /// read within this window can see. Zero keeps only what live snapshots
    /// and transactions need.
    pub history_retention: Duration,
    /// Size at which the manifest is rewritten as a single snapshot record
    /// (it is also rewritten at every open).
    pub max_manifest_size: u64,
    /// Where encryption keys come from. When set, every new SST (unless its
    /// keyspace is listed in `plaintext_keyspaces`), WAL and manifest is
    /// encrypted with the provider's current key.
    pub key_provider: Option<Arc<dyn crate::encryption::EncryptionKeyProvider>>,
    /// Keyspaces whose SSTs stay plaintext under a key provider (data that
    /// is public anyway). The WAL and the manifest are encrypted regardless.
    pub plaintext_keyspaces: Vec<String>,
    /// The file system all I/O goes through.
    pub fs: Arc<dyn FileSystem>,
    /// The clock commit timestamps and the history window follow.
    pub clock: Arc<dyn crate::timestamp::Clock>,
    /// When set, the database is a replica: writes and transaction commits
    /// go to the committer, which applies them back at the timestamp it
    /// decides (`Db::write_at`); reads at a timestamp not yet applied wait
    /// for it (SPEC §18.5).
    pub committer: Option<Arc<dyn crate::committer::Committer>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            memtable_size: 64 << 20,
            max_immutable_memtables: 2,
            block_size: 4096,
            restart_interval: 16,
            bloom_bits_per_key: 10,
            compression: vec![
                Compression::None,
                Compression::None,
                Compression::Zstd { level: 3 },
            ],
            block_cache_size: 64 << 20,
            table_cache_capacity: 4096,
            sst_reads: SstReads::default(),
            l0_compaction_trigger: 4,
            l0_slowdown_trigger: 12,
            l0_stop_trigger: 20,
            base_level_size: 256 << 20,
            level_size_ratio: 10,
            target_file_size: 64 << 20,
            num_levels: 7,
            full_compaction_threads: 0,
            blob_threshold: Some(4096),
            blob_compression: Compression::None,
            blob_garbage_ratio: 0.5,
            wal_sync_interval: None,
            wal_mmap: true,
            background_threads: true,
            history_retention: Duration::ZERO,
            max_manifest_size: 64 << 20,
            key_provider: None,
            plaintext_keyspaces: Vec::new(),
            fs: Arc::new(StdFs),
            clock: Arc::new(crate::timestamp::SystemClock),
            committer: None,
        }
    }
}

impl Options {
    /// The key ranges a full compaction is cut into, at most: one per
    /// thread of `full_compaction_threads` (0: one per core).
    pub(crate) fn full_compaction_parts(&self) -> usize {
        match self.full_compaction_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// How values are separated into blob files.
    pub(crate) fn separation(&self) -> crate::blob::Separation {
        crate::blob::Separation {
            threshold: self.blob_threshold,
            compression: self.blob_compression,
        }
    }

    /// The compression used for files written to `level`.
    pub fn compression_for(&self, level: usize) -> Compression {
        self.compression
            .get(level)
            .or(self.compression.last())
            .copied()
            .unwrap_or_default()
    }

    /// The target size of `level` (levels ≥ 1).
    pub fn level_target(&self, level: usize) -> u64 {
        let mut t = self.base_level_size;
        for _ in 1..level {
            t = t.saturating_mul(self.level_size_ratio);
        }
        t
    }

    pub(crate) fn validate(&self) -> crate::Result<()> {
        let bad = |s: &str| Err(crate::Error::InvalidArgument(s.into()));
        if self.memtable_size < 4096 {
            return bad("memtable_size must be at least 4 KiB");
        }
        if self.num_levels < 2 || self.num_levels > 64 {
            return bad("num_levels must be between 2 and 64");
        }
        if self.l0_compaction_trigger == 0
            || self.l0_slowdown_trigger < self.l0_compaction_trigger
            || self.l0_stop_trigger < self.l0_slowdown_trigger
        {
            return bad("L0 triggers must satisfy 0 < compaction <= slowdown <= stop");
        }
        if self.level_size_ratio < 2 || self.base_level_size == 0 || self.target_file_size == 0 {
            return bad("level sizes must be positive and the ratio at least 2");
        }
        if self.block_size == 0 || self.max_immutable_memtables == 0 {
            return bad("block_size and max_immutable_memtables must be positive");
        }
        if self.blob_threshold == Some(0) {
            return bad("blob_threshold must be positive (None stores every value in the tree)");
        }
        if self.blob_garbage_ratio.is_nan() || self.blob_garbage_ratio <= 0.0 {
            return bad("blob_garbage_ratio must be positive");
        }
        Ok(())
    }
}

/// How the engine reads SSTs (`Options::sst_reads`).
///
/// Either way every block is checked and decoded the same, blocks read go
/// through the block cache the same, and reads give the same results; what
/// differs is where the bytes come from, what a read costs and what counts
/// in the process's resident memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SstReads {
    /// Map each open table into memory and read blocks as slices of the
    /// mapping: no system call, no allocation and no copy per block read.
    /// The default, because it is the faster: up to four times for large
    /// values, which are read without being copied (README, "SST reads").
    /// The cost: the mapped pages a workload touches count in the process's
    /// resident memory (as page cache the kernel can take back) while the
    /// table is open, so large scans and blob reads grow RSS well past the
    /// block cache; and an I/O error under a mapped page, or a table cut
    /// short by another process, reaches the process as SIGBUS, which ends
    /// it.
    #[default]
    Mmap,
    /// Read the footer and each block with a positioned read (`pread`) into
    /// memory the block cache owns; nothing is mapped. Resident memory
    /// stays within the block cache (plus what readers hold), an I/O error
    /// is an error of the read that met it, and a table cut short is
    /// corruption naming the file and the offset. The cost: an allocation,
    /// a system call and a copy per block read from the file, which on
    /// data in the page cache made small-value reads up to 1.6 times and
    /// 1 MiB values about 4 times slower; and each table the table cache
    /// keeps open holds a file descriptor. Choose it where resident memory
    /// is policed, or where the process must outlive a failing disk.
    Pread,
}

/// Durability of one write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Sync the WAL before acknowledging: the write survives power loss. When
    /// false the write is in the operating system's buffers when
    /// acknowledged: it survives a process crash but not a power loss.
    pub sync: bool,
}
