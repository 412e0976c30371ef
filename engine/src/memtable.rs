//! The memtable: an ordered, concurrent map of internal keys, readable
//! while it is written.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};

use bytes::Bytes;
use crossbeam_skiplist::SkipMap;
use strata_format::key::{compare_internal, encode_internal_key, seek_key, ValueKind};

/// An encoded internal key ordered by the internal-key comparator.
///
/// The first eight bytes of the user key are kept inline as a big-endian
/// integer (zero-padded): most comparisons in the skiplist are decided by it
/// without following the pointer to the key's bytes, which is what a
/// memtable search spends its time on. Zero padding keeps the integer order
/// consistent with bytewise order: when the padded prefixes differ, so do
/// the keys, in the same direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalKey {
    prefix: u64,
    /// The encoded internal key.
    pub bytes: Box<[u8]>,
}

impl InternalKey {
    /// Wraps encoded internal-key bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        let user = strata_format::key::user_key(&bytes);
        let mut p = [0u8; 8];
        let n = user.len().min(8);
        p[..n].copy_from_slice(&user[..n]);
        InternalKey {
            prefix: u64::from_be_bytes(p),
            bytes: bytes.into_boxed_slice(),
        }
    }
}

impl Ord for InternalKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.prefix
            .cmp(&other.prefix)
            .then_with(|| compare_internal(&self.bytes, &other.bytes))
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
        self.map.insert(InternalKey::new(k), value);
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
        let probe = InternalKey::new(seek_key(key, ts));
        let entry = self.map.lower_bound(Bound::Included(&probe))?;
        let ik = strata_format::key::InternalKeyRef::parse(&entry.key().bytes).ok()?;
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
