//! The memtable: an ordered, concurrent map of internal keys, readable
//! while it is written, the range tombstones written beside it, and a
//! filter of its user keys.

mod filter;
mod skiplist;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use strata_format::key::ValueKind;
use strata_format::range_del::RangeTombstones;

use filter::KeyFilter;
use skiplist::SkipList;
pub(crate) use skiplist::{Node, NodePos, Probe};

/// One memtable of one keyspace.
#[derive(Debug)]
pub struct Memtable {
    list: SkipList,
    /// Bytes of the values inserted (the nodes' are counted by the list).
    value_bytes: AtomicUsize,
    /// The largest timestamp inserted.
    max_ts: AtomicU64,
    /// Range tombstones, kept apart from the list (see [`RangeDels`]).
    range_dels: Mutex<RangeDels>,
    /// Set once a range tombstone is inserted: reads of a memtable without
    /// any skip its lock.
    has_dels: AtomicBool,
    /// The user keys inserted: a point read of a key the memtable lacks
    /// (most reads, once data has been flushed) skips the list's descent.
    filter: KeyFilter,
    /// The size the filter was made for, passed on to the next memtable.
    expected_bytes: usize,
    /// The blob files its blob pointers point into: kept on disk while the
    /// memtable can be read.
    blobs: Mutex<Vec<Arc<crate::blob::BlobFile>>>,
    /// Where small values are copied to (see [`copy_value`](Self::copy_value)).
    values: Mutex<bytes::BytesMut>,
}

/// Values are copied into chunks of this size, each shared by the values
/// in it and freed with the last of them.
const VALUE_CHUNK: usize = 1 << 20;

/// Values at least this long get an allocation of their own.
const OWN_ALLOCATION: usize = 16 << 10;

/// A memtable's range tombstones: the list as written, and its fragmented
/// form, built on the first read after a write. Range deletes are rare
/// beside point writes, so rebuilding the fragments (`O(n log n)`) when
/// one arrives costs less than keeping a concurrent interval structure.
#[derive(Debug, Default)]
struct RangeDels {
    raw: Vec<(Vec<u8>, Vec<u8>, u64)>,
    fragments: Option<Arc<RangeTombstones>>,
}

impl Memtable {
    /// An empty memtable, its key filter sized for `expected_bytes` of
    /// data (the size at which it is sealed).
    pub fn new(expected_bytes: usize) -> Self {
        Memtable {
            list: SkipList::new(),
            value_bytes: AtomicUsize::new(0),
            max_ts: AtomicU64::new(0),
            range_dels: Mutex::new(RangeDels::default()),
            has_dels: AtomicBool::new(false),
            filter: KeyFilter::new(expected_bytes),
            expected_bytes,
            blobs: Mutex::new(Vec::new()),
            values: Mutex::new(bytes::BytesMut::new()),
        }
    }

    /// A copy of `value` for an entry of this memtable. Small values are
    /// packed into shared chunks rather than allocated one by one: the
    /// memtable is dropped on another thread than the writer's, and
    /// freeing hundreds of thousands of small allocations made there from
    /// the writer's allocator arena held that arena's lock (consolidating
    /// its free lists) for tens of milliseconds, stalling the writer's next
    /// allocation. A chunk is freed with the last value in it, so a reader
    /// holding a value keeps its chunk (at most 1 MiB) a little longer.
    pub(crate) fn copy_value(&self, value: &[u8]) -> Bytes {
        if value.len() >= OWN_ALLOCATION {
            return Bytes::copy_from_slice(value);
        }
        let mut chunk = self.values.lock();
        // Empty after every copy: its capacity is what is left of it.
        if chunk.capacity() < value.len() {
            *chunk = bytes::BytesMut::with_capacity(VALUE_CHUNK);
        }
        chunk.extend_from_slice(value);
        chunk.split().freeze()
    }

    /// Keeps blob file `f` while the memtable lives: entries about to be
    /// inserted point into it.
    pub(crate) fn hold_blob(&self, f: &Arc<crate::blob::BlobFile>) {
        let mut blobs = self.blobs.lock();
        if !blobs.iter().any(|b| Arc::ptr_eq(b, f)) {
            blobs.push(f.clone());
        }
    }

    /// The blob files its entries point into.
    pub(crate) fn blob_files(&self) -> Vec<Arc<crate::blob::BlobFile>> {
        self.blobs.lock().clone()
    }

    /// An empty memtable made for the size this one was.
    pub(crate) fn successor(&self) -> Memtable {
        Memtable::new(self.expected_bytes)
    }

    /// Inserts one version, or a range tombstone (`kind` RangeDelete:
    /// `key` is the start, `value` the exclusive end). Inserts are
    /// serialised inside; the engine makes them from one thread at a time
    /// anyway, and never inserts the same (key, timestamp) twice.
    pub fn insert(&self, key: &[u8], ts: u64, kind: ValueKind, value: Bytes) {
        self.value_bytes
            .fetch_add(value.len(), AtomicOrdering::Relaxed);
        self.max_ts.fetch_max(ts, AtomicOrdering::Relaxed);
        if kind == ValueKind::RangeDelete {
            // Counted like a node, so a memtable of range deletes fills too.
            self.value_bytes
                .fetch_add(key.len() + 64, AtomicOrdering::Relaxed);
            let mut dels = self.range_dels.lock();
            dels.raw.push((key.to_vec(), value.to_vec(), ts));
            dels.fragments = None;
            self.has_dels.store(true, AtomicOrdering::Release);
            return;
        }
        // In the filter before the list: a reader that can see the
        // version (its commit published after this insert) sees the bits.
        self.filter.insert(strata_format::bloom::bloom_hash(key));
        self.list.insert(key, ts, kind, value);
    }

    /// The range tombstones inserted so far, fragmented. A reader at a
    /// timestamp sees those at or below it, all inserted before that
    /// timestamp was published.
    pub(crate) fn range_tombstones(&self) -> Arc<RangeTombstones> {
        if !self.has_range_tombstones() {
            return Arc::default();
        }
        let mut dels = self.range_dels.lock();
        if let Some(f) = &dels.fragments {
            return f.clone();
        }
        let f = Arc::new(RangeTombstones::fragment(dels.raw.iter().cloned()));
        dels.fragments = Some(f.clone());
        f
    }

    /// True when a range tombstone was inserted.
    pub(crate) fn has_range_tombstones(&self) -> bool {
        self.has_dels.load(AtomicOrdering::Acquire)
    }

    /// The largest timestamp inserted.
    pub fn max_ts(&self) -> u64 {
        self.max_ts.load(AtomicOrdering::Relaxed)
    }

    /// Approximate memory used: the nodes with their keys, and the values.
    pub fn size(&self) -> usize {
        self.list.node_bytes() + self.value_bytes.load(AtomicOrdering::Relaxed)
    }

    /// True when nothing was inserted (no version, no range tombstone).
    pub fn is_empty(&self) -> bool {
        self.list.len() == 0 && !self.has_range_tombstones()
    }

    /// The newest version of `key` with a timestamp `<= ts`.
    #[cfg(test)]
    pub fn get(&self, key: &[u8], ts: u64) -> Option<(u64, ValueKind, Bytes)> {
        self.get_hashed(key, strata_format::bloom::bloom_hash(key), ts)
    }

    /// [`get`](Self::get) for a reader that hashed the key once
    /// ([`bloom_hash`](strata_format::bloom::bloom_hash)) for every
    /// component it reads.
    pub fn get_hashed(&self, key: &[u8], hash: u64, ts: u64) -> Option<(u64, ValueKind, Bytes)> {
        if !self.filter.may_contain(hash) {
            return None;
        }
        // The search key on the stack when it is short (reads are hot).
        let mut buf = [0u8; 64];
        let heap;
        let n = key.len() + strata_format::key::TRAILER_LEN;
        let probe: &[u8] = if n <= buf.len() {
            strata_format::key::write_internal_key(&mut buf[..n], key, ts, ValueKind::MAX);
            &buf[..n]
        } else {
            heap = strata_format::key::seek_key(key, ts);
            &heap
        };
        let node = self.list.lower_bound(&Probe::new(probe))?;
        let ik = strata_format::key::InternalKeyRef::parse(node.key()).ok()?;
        (ik.user_key == key).then(|| (ik.ts, ik.kind, node.value().clone()))
    }

    /// The first entry with an internal key `>= probe`.
    pub(crate) fn lower_bound(&self, probe: &Probe<'_>) -> Option<Node<'_>> {
        self.list.lower_bound(probe)
    }

    /// The last entry with an internal key `< probe` (`<=` when
    /// `inclusive`).
    pub(crate) fn last_before(&self, probe: &Probe<'_>, inclusive: bool) -> Option<Node<'_>> {
        self.list.last_before(probe, inclusive)
    }

    /// The first entry.
    pub(crate) fn first(&self) -> Option<Node<'_>> {
        self.list.first()
    }

    /// The last entry.
    pub(crate) fn last(&self) -> Option<Node<'_>> {
        self.list.last()
    }

    /// The entry at `pos`.
    ///
    /// # Safety
    /// `pos` must come from an entry of this memtable.
    #[allow(unsafe_code)]
    pub(crate) unsafe fn at(&self, pos: NodePos) -> Node<'_> {
        // SAFETY: passed on to the caller.
        unsafe { self.list.at(pos) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_newest_version_at_or_below_a_timestamp() {
        let m = Memtable::new(1 << 20);
        let long = [7u8; 100];
        for key in [&b"k"[..], &long[..]] {
            m.insert(key, 5, ValueKind::Put, Bytes::from_static(b"five"));
            m.insert(key, 9, ValueKind::Delete, Bytes::new());
            assert_eq!(m.get(key, 4), None);
            assert_eq!(m.get(key, 7).unwrap().2, Bytes::from_static(b"five"));
            assert_eq!(m.get(key, 9).unwrap().1, ValueKind::Delete);
        }
        assert_eq!(m.get(b"j", 100), None);
        assert_eq!(m.get(b"k\0", 100), None);
        assert!(m.size() >= 2 * (100 + 9 + 1 + 9) + 8);
    }
}
