//! The memtable: an ordered, concurrent map of internal keys, readable
//! while it is written.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};

use bytes::Bytes;
use crossbeam_skiplist::SkipMap;
use strata_format::key::{compare_internal, encode_internal_key, ValueKind};

/// Encoded internal keys up to this long are stored inside the skiplist
/// node (a 16-byte user key with its trailer is 25 bytes).
const INLINE: usize = 30;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Box<[u8]>),
}

/// An encoded internal key ordered by the internal-key comparator.
///
/// The first sixteen bytes of the user key are kept as a big-endian integer
/// (zero-padded): most comparisons in the skiplist are decided by it alone,
/// which is what a memtable search spends its time on. Zero padding keeps
/// the integer order consistent with bytewise order: when the padded
/// prefixes differ, so do the keys, in the same direction. Short keys live
/// in the node itself, which saves an allocation per insert and a pointer
/// chase per comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalKey {
    prefix: u128,
    repr: Repr,
}

impl InternalKey {
    /// Wraps encoded internal-key bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        if bytes.len() <= INLINE {
            return Self::inline(&bytes);
        }
        InternalKey {
            prefix: prefix_of(strata_format::key::user_key(&bytes)),
            repr: Repr::Heap(bytes.into_boxed_slice()),
        }
    }

    /// The internal key of (`user_key`, `ts`, `kind`), encoded in place.
    pub fn from_parts(user_key: &[u8], ts: u64, kind: ValueKind) -> Self {
        let len = user_key.len() + strata_format::key::TRAILER_LEN;
        if len <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..user_key.len()].copy_from_slice(user_key);
            buf[user_key.len()..len - 1].copy_from_slice(&ts.to_be_bytes());
            buf[len - 1] = kind as u8;
            return InternalKey {
                prefix: prefix_of(user_key),
                repr: Repr::Inline {
                    len: len as u8,
                    buf,
                },
            };
        }
        let mut k = Vec::with_capacity(len);
        encode_internal_key(&mut k, user_key, ts, kind);
        Self::new(k)
    }

    fn inline(bytes: &[u8]) -> Self {
        let mut buf = [0u8; INLINE];
        buf[..bytes.len()].copy_from_slice(bytes);
        InternalKey {
            prefix: prefix_of(strata_format::key::user_key(bytes)),
            repr: Repr::Inline {
                len: bytes.len() as u8,
                buf,
            },
        }
    }

    /// The encoded internal key.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        match &self.repr {
            Repr::Inline { len, buf } => &buf[..*len as usize],
            Repr::Heap(b) => b,
        }
    }
}

/// The first sixteen bytes of `user`, zero-padded, as a big-endian integer.
#[inline]
fn prefix_of(user: &[u8]) -> u128 {
    let mut p = [0u8; 16];
    let n = user.len().min(16);
    p[..n].copy_from_slice(&user[..n]);
    u128::from_be_bytes(p)
}

impl Ord for InternalKey {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        self.prefix
            .cmp(&other.prefix)
            .then_with(|| compare_internal(self.bytes(), other.bytes()))
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
        let k = InternalKey::from_parts(key, ts, kind);
        self.size.fetch_add(
            k.bytes().len() + value.len() + NODE_OVERHEAD,
            AtomicOrdering::Relaxed,
        );
        self.max_ts.fetch_max(ts, AtomicOrdering::Relaxed);
        self.map.insert(k, value);
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
        let probe = InternalKey::from_parts(key, ts, ValueKind::MAX);
        let entry = self.map.lower_bound(Bound::Included(&probe))?;
        let ik = strata_format::key::InternalKeyRef::parse(entry.key().bytes()).ok()?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encoded(user: &[u8], ts: u64, kind: ValueKind) -> Vec<u8> {
        let mut k = Vec::new();
        encode_internal_key(&mut k, user, ts, kind);
        k
    }

    fn arb_kind() -> impl Strategy<Value = ValueKind> {
        prop_oneof![
            Just(ValueKind::Put),
            Just(ValueKind::Delete),
            Just(ValueKind::PutWithTtl)
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        /// Inline and heap keys, built either way, order exactly as the
        /// internal-key comparator orders their bytes.
        #[test]
        fn key_order_is_the_comparator_order(
            a in prop::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(255u8)], 0..40),
            b in prop::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(255u8)], 0..40),
            ta in 0u64..4, tb in 0u64..4, ka in arb_kind(), kb in arb_kind(),
        ) {
            let (ea, eb) = (encoded(&a, ta, ka), encoded(&b, tb, kb));
            let (x, y) = (InternalKey::from_parts(&a, ta, ka), InternalKey::from_parts(&b, tb, kb));
            prop_assert_eq!(x.bytes(), &ea[..]);
            prop_assert_eq!(&x, &InternalKey::new(ea.clone()));
            prop_assert_eq!(x.cmp(&y), compare_internal(&ea, &eb));
        }
    }

    #[test]
    fn finds_the_newest_version_at_or_below_a_timestamp() {
        let m = Memtable::new();
        let long = [7u8; 64];
        for key in [&b"k"[..], &long[..]] {
            m.insert(key, 5, ValueKind::Put, Bytes::from_static(b"five"));
            m.insert(key, 9, ValueKind::Delete, Bytes::new());
            assert_eq!(m.get(key, 4), None);
            assert_eq!(m.get(key, 7).unwrap().2, Bytes::from_static(b"five"));
            assert_eq!(m.get(key, 9).unwrap().1, ValueKind::Delete);
        }
        assert_eq!(m.get(b"j", 100), None);
    }
}
