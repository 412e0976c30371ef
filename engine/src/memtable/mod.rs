//! The memtable: an ordered, concurrent map of internal keys, readable
//! while it is written.

mod skiplist;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};

use bytes::Bytes;
use strata_format::key::ValueKind;

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
}

impl Default for Memtable {
    fn default() -> Self {
        Self::new()
    }
}

impl Memtable {
    /// An empty memtable.
    pub fn new() -> Self {
        Memtable {
            list: SkipList::new(),
            value_bytes: AtomicUsize::new(0),
            max_ts: AtomicU64::new(0),
        }
    }

    /// Inserts one version. Inserts are serialised inside; the engine
    /// makes them from one thread at a time anyway, and never inserts the
    /// same (key, timestamp) twice.
    pub fn insert(&self, key: &[u8], ts: u64, kind: ValueKind, value: Bytes) {
        self.value_bytes
            .fetch_add(value.len(), AtomicOrdering::Relaxed);
        self.max_ts.fetch_max(ts, AtomicOrdering::Relaxed);
        self.list.insert(key, ts, kind, value);
    }

    /// The largest timestamp inserted.
    pub fn max_ts(&self) -> u64 {
        self.max_ts.load(AtomicOrdering::Relaxed)
    }

    /// Approximate memory used: the nodes with their keys, and the values.
    pub fn size(&self) -> usize {
        self.list.node_bytes() + self.value_bytes.load(AtomicOrdering::Relaxed)
    }

    /// True when nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.list.len() == 0
    }

    /// The newest version of `key` with a timestamp `<= ts`.
    pub fn get(&self, key: &[u8], ts: u64) -> Option<(u64, ValueKind, Bytes)> {
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
        let m = Memtable::new();
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
