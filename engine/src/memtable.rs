//! The memtable: an ordered, concurrent map of internal keys, readable
//! while it is written.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};

use bytes::Bytes;
use crossbeam_skiplist::SkipMap;
use strata_format::key::{compare_internal, encode_internal_key, seek_key, ValueKind};

/// An encoded internal key ordered by the internal-key comparator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalKey(pub Vec<u8>);

impl Ord for InternalKey {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_internal(&self.0, &other.0)
    }
}

impl PartialOrd for InternalKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Bytes a skiplist node costs beyond its key and value, for accounting.
const NODE_OVERHEAD: usize = 64;

/// One memtable of one keyspace.
#[derive(Debug)]
pub struct Memtable {
    map: SkipMap<InternalKey, Bytes>,
    size: AtomicUsize,
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
            map: SkipMap::new(),
            size: AtomicUsize::new(0),
            max_ts: AtomicU64::new(0),
        }
    }

    /// Inserts one version. Concurrent inserts are allowed.
    pub fn insert(&self, key: &[u8], ts: u64, kind: ValueKind, value: Bytes) {
        let mut k = Vec::with_capacity(key.len() + 9);
        encode_internal_key(&mut k, key, ts, kind);
        self.size.fetch_add(
            k.len() + value.len() + NODE_OVERHEAD,
            AtomicOrdering::Relaxed,
        );
        self.max_ts.fetch_max(ts, AtomicOrdering::Relaxed);
        self.map.insert(InternalKey(k), value);
    }

    /// The largest timestamp inserted.
    pub fn max_ts(&self) -> u64 {
        self.max_ts.load(AtomicOrdering::Relaxed)
    }

    /// Approximate memory used.
    pub fn size(&self) -> usize {
        self.size.load(AtomicOrdering::Relaxed)
    }

    /// True when nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The newest version of `key` with a timestamp `<= ts`.
    pub fn get(&self, key: &[u8], ts: u64) -> Option<(u64, ValueKind, Bytes)> {
        let probe = InternalKey(seek_key(key, ts));
        let entry = self.map.lower_bound(Bound::Included(&probe))?;
        let ik = strata_format::key::InternalKeyRef::parse(&entry.key().0).ok()?;
        (ik.user_key == key).then(|| (ik.ts, ik.kind, entry.value().clone()))
    }

    /// Entries in `range` of internal keys, in order.
    pub fn range(
        &self,
        lower: Bound<InternalKey>,
        upper: Bound<InternalKey>,
    ) -> crossbeam_skiplist::map::Range<
        '_,
        InternalKey,
        (Bound<InternalKey>, Bound<InternalKey>),
        InternalKey,
        Bytes,
    > {
        self.map.range((lower, upper))
    }
}
