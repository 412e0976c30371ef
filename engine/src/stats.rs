//! Counters the engine keeps, and the snapshot `Db::stats` returns.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Slots of a [`Striped`] counter: enough that two threads rarely share one
/// on a machine of a few dozen cores.
const STRIPES: usize = 8;

/// One slot, alone in its cache lines (adjacent-line prefetch pairs them).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Slot(AtomicU64);

/// A counter every reading or writing thread adds to on its hot path:
/// each thread adds to its own slot, so counting is not a cache line that
/// every core writes in turn. Reading it sums the slots.
#[derive(Debug, Default)]
pub(crate) struct Striped {
    slots: [Slot; STRIPES],
}

impl Striped {
    /// Adds `n`.
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        self.slots[stripe()].0.fetch_add(n, Ordering::Relaxed);
    }

    /// The total so far.
    pub(crate) fn get(&self) -> u64 {
        self.slots
            .iter()
            .fold(0u64, |sum, s| sum.wrapping_add(s.0.load(Ordering::Relaxed)))
    }
}

/// This thread's slot, handed out in turn as threads first count.
#[inline]
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|s| *s)
}

/// Live counters of one keyspace, bumped by whoever does the work and read
/// into [`KeyspaceStats`].
#[derive(Debug, Default)]
pub(crate) struct KeyspaceCounters {
    user_bytes: Striped,
    flush_bytes: AtomicU64,
    compaction_bytes_written: AtomicU64,
    compaction_bytes_read: AtomicU64,
    flushes: AtomicU64,
    compactions: AtomicU64,
    bloom_checks: Striped,
    bloom_false_positives: Striped,
}

impl KeyspaceCounters {
    /// A commit wrote `bytes` of keys and values.
    #[inline]
    pub(crate) fn wrote(&self, bytes: u64) {
        self.user_bytes.add(bytes);
    }

    /// A flush wrote `bytes` of tables.
    pub(crate) fn flushed(&self, bytes: u64) {
        add(&self.flush_bytes, bytes);
        add(&self.flushes, 1);
    }

    /// A compaction read `read` bytes and wrote `written`.
    pub(crate) fn compacted(&self, read: u64, written: u64) {
        add(&self.compactions, 1);
        add(&self.compaction_bytes_read, read);
        add(&self.compaction_bytes_written, written);
    }

    /// A point read consulted a table's bloom filter; `false_positive` when
    /// it passed but the key was not there.
    #[inline]
    pub(crate) fn bloom_checked(&self, false_positive: bool) {
        self.bloom_checks.add(1);
        if false_positive {
            self.bloom_false_positives.add(1);
        }
    }

    /// Copies the counters into `out`.
    pub(crate) fn fill(&self, out: &mut KeyspaceStats) {
        out.user_bytes_written = self.user_bytes.get();
        out.flush_bytes_written = get(&self.flush_bytes);
        out.compaction_bytes_written = get(&self.compaction_bytes_written);
        out.compaction_bytes_read = get(&self.compaction_bytes_read);
        out.flushes = get(&self.flushes);
        out.compactions = get(&self.compactions);
        out.bloom_checks = self.bloom_checks.get();
        out.bloom_false_positives = self.bloom_false_positives.get();
    }
}

/// Live counters of the whole database's write stalls and open.
#[derive(Debug, Default)]
pub(crate) struct DbCounters {
    slowdowns: AtomicU64,
    stalls: AtomicU64,
    stall_micros: AtomicU64,
    removed_at_open: AtomicU64,
    yielded: AtomicU64,
    /// What the last open left alone as not the engine's.
    foreign_files: parking_lot::Mutex<Vec<String>>,
}

impl DbCounters {
    /// A writer slowed down.
    pub(crate) fn slowed(&self) {
        add(&self.slowdowns, 1);
    }

    /// A writer stalled for `micros`.
    pub(crate) fn stalled(&self, micros: u64) {
        add(&self.stalls, 1);
        add(&self.stall_micros, micros);
    }

    /// A background compaction stopped for a full compaction.
    pub(crate) fn compaction_yielded(&self) {
        add(&self.yielded, 1);
    }

    /// Open removed `n` leftover files.
    pub(crate) fn removed_at_open(&self, n: u64) {
        add(&self.removed_at_open, n);
    }

    /// Open left these files alone as not the engine's.
    pub(crate) fn set_foreign_files(&self, names: Vec<String>) {
        *self.foreign_files.lock() = names;
    }

    /// Copies the counters into `out`.
    pub(crate) fn fill(&self, out: &mut Stats) {
        out.foreign_files = self.foreign_files.lock().clone();
        out.write_slowdowns = get(&self.slowdowns);
        out.write_stalls = get(&self.stalls);
        out.write_stall_micros = get(&self.stall_micros);
        out.files_removed_at_open = get(&self.removed_at_open);
        out.compactions_yielded = get(&self.yielded);
    }
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// One level of a keyspace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LevelStats {
    /// Number of SSTs.
    pub files: usize,
    /// Bytes of SSTs.
    pub bytes: u64,
    /// Smallest and largest user key of each SST, in the level's order.
    pub key_ranges: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A keyspace's shape and traffic.
#[derive(Debug, Clone, Default)]
pub struct KeyspaceStats {
    /// The keyspace's name.
    pub name: String,
    /// Levels, L0 first.
    pub levels: Vec<LevelStats>,
    /// Bytes in the active memtable.
    pub memtable_bytes: u64,
    /// Bytes in immutable memtables waiting for a flush.
    pub immutable_memtable_bytes: u64,
    /// Bytes of keys and values written by users.
    pub user_bytes_written: u64,
    /// Bytes of SSTs written by flushes.
    pub flush_bytes_written: u64,
    /// Bytes of SSTs written by compactions.
    pub compaction_bytes_written: u64,
    /// Bytes of SSTs read by compactions.
    pub compaction_bytes_read: u64,
    /// Flushes run.
    pub flushes: u64,
    /// Compactions run.
    pub compactions: u64,
    /// Point reads that consulted a table's bloom filter.
    pub bloom_checks: u64,
    /// Filter probes that said "maybe" for a key the table did not have.
    pub bloom_false_positives: u64,
}

impl KeyspaceStats {
    /// Bytes written to SSTs (flushes and compactions) per byte written by
    /// users; WAL bytes are in [`Stats::wal_bytes_written`].
    pub fn write_amplification(&self) -> f64 {
        if self.user_bytes_written == 0 {
            return 0.0;
        }
        (self.flush_bytes_written + self.compaction_bytes_written) as f64
            / self.user_bytes_written as f64
    }
}

/// A snapshot of the database's statistics.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Per keyspace.
    pub keyspaces: Vec<KeyspaceStats>,
    /// Bytes appended to the WAL.
    pub wal_bytes_written: u64,
    /// Bytes of WAL files on disk not yet deleted.
    pub wal_bytes_live: u64,
    /// WAL syncs.
    pub wal_syncs: u64,
    /// Write batches committed.
    pub writes: u64,
    /// Commit groups (one WAL write each): `writes / write_groups` is the
    /// average group size.
    pub write_groups: u64,
    /// Writes delayed because L0 was filling up.
    pub write_slowdowns: u64,
    /// Writes that waited for a flush or a compaction.
    pub write_stalls: u64,
    /// Time writers spent stalled, in microseconds.
    pub write_stall_micros: u64,
    /// Block cache hits.
    pub block_cache_hits: u64,
    /// Block cache misses.
    pub block_cache_misses: u64,
    /// Bytes held in the block cache.
    pub block_cache_bytes: u64,
    /// Bytes of SSTs and blob files on disk per encryption key id
    /// (`None`: plaintext).
    pub bytes_by_key_id: std::collections::BTreeMap<Option<u32>, u64>,
    /// Blob files SSTs point into (values stored apart from the tree).
    pub blob_files: usize,
    /// Bytes of those blob files.
    pub blob_bytes: u64,
    /// Of those, the bytes of the records SSTs point to (the rest is
    /// garbage a compaction relocating the live values reclaims).
    pub blob_live_bytes: u64,
    /// Why writes are refused, when the database is in the error state
    /// (see `Db::resume`).
    pub error_state: Option<String>,
    /// How to leave the error state, when in it: whether the engine
    /// retries by itself (and its next pause), or what the caller must do.
    pub error_remedy: Option<String>,
    /// Times the database entered the error state.
    pub background_errors: u64,
    /// Times it left the error state.
    pub resumes: u64,
    /// Background compactions stopped part way (their outputs removed)
    /// because a full compaction or a re-encryption was waiting for them;
    /// what is still needed afterwards is picked again.
    pub compactions_yielded: u64,
    /// Tables and temporary files the last open found unreferenced and
    /// removed: leftovers of a flush or compaction cut short by a crash or
    /// an error.
    pub files_removed_at_open: u64,
    /// Files the last open found in the directory and left alone because
    /// they are not provably the engine's, sorted by name: names the engine
    /// does not write (`1.log`, `backup.tmp`), and names it does write with
    /// numbers its manifest never handed out (SPEC.md §13.5). They are
    /// never replayed, overwritten or deleted.
    pub foreign_files: Vec<String>,
}

impl Stats {
    /// Total bytes written to disk (WAL and SSTs) per byte written by
    /// users, over every keyspace.
    pub fn write_amplification(&self) -> f64 {
        let user: u64 = self.keyspaces.iter().map(|k| k.user_bytes_written).sum();
        if user == 0 {
            return 0.0;
        }
        let sst: u64 = self
            .keyspaces
            .iter()
            .map(|k| k.flush_bytes_written + k.compaction_bytes_written)
            .sum();
        (sst + self.wal_bytes_written) as f64 / user as f64
    }

    /// The stats of the keyspace named `name`.
    pub fn keyspace(&self, name: &str) -> Option<&KeyspaceStats> {
        self.keyspaces.iter().find(|k| k.name == name)
    }
}
