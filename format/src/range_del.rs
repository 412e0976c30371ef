//! Range tombstones, fragmented: the form in which tables store them and
//! readers query them.
//!
//! A range tombstone `[start, end) @ T` hides every version of the keys in
//! `[start, end)` with a timestamp below `T`. Tombstones may overlap; a
//! *fragmented* set cuts them at every start and end so that the pieces
//! (fragments) do not overlap, each carrying the timestamps of every
//! tombstone that covers it. Then the tombstones covering a key are those of
//! the one fragment holding it, found by binary search.
//!
//! Stored (the range-deletion block of an SST, SPEC.md §7) in the data-block
//! layout of [`crate::block`]: one entry per (fragment, timestamp), keyed by
//! the internal key `start ‖ T ‖ RangeDelete` with the fragment's `end` as
//! value, in internal-key order (starts ascending, timestamps descending).
//! A decoder checks what a writer guarantees: every key is a range delete,
//! keys strictly increase, `start < end`, entries of one start share one
//! end, and fragments do not overlap.

use bytes::Bytes;

use crate::block::{Block, BlockBuilder, DEFAULT_RESTART_INTERVAL};
use crate::error::{Error, Result};
use crate::key::{compare_internal, encode_internal_key, InternalKeyRef, ValueKind};
use crate::key::{MAX_RANGE_END_LEN, TRAILER_LEN};

/// A piece of the key space `[start, end)` and the timestamps of the
/// tombstones covering all of it, newest first, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// The first key covered.
    pub start: Vec<u8>,
    /// The first key past the fragment (exclusive).
    pub end: Vec<u8>,
    /// The covering tombstones' timestamps, descending, distinct, never
    /// empty.
    pub timestamps: Vec<u64>,
}

impl Fragment {
    /// True when `key` lies in `[start, end)`.
    #[inline]
    pub fn contains(&self, key: &[u8]) -> bool {
        self.start.as_slice() <= key && key < self.end.as_slice()
    }

    /// The newest covering timestamp at or below `ts`.
    #[inline]
    pub fn newest_at(&self, ts: u64) -> Option<u64> {
        let i = self.timestamps.partition_point(|&t| t > ts);
        self.timestamps.get(i).copied()
    }

    /// The oldest covering timestamp strictly above `ts`.
    #[inline]
    pub fn oldest_above(&self, ts: u64) -> Option<u64> {
        let i = self.timestamps.partition_point(|&t| t > ts);
        i.checked_sub(1).map(|i| self.timestamps[i])
    }
}

/// A fragmented set of range tombstones: fragments sorted by start, not
/// overlapping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeTombstones {
    fragments: Vec<Fragment>,
}

impl RangeTombstones {
    /// No tombstone.
    pub fn new() -> Self {
        RangeTombstones::default()
    }

    /// Fragments the tombstones `(start, end, ts)` (in any order; empty
    /// ranges are ignored). Adjacent pieces covered by the same timestamps
    /// are joined, so the result is the same however the input was cut.
    pub fn fragment(raw: impl IntoIterator<Item = (Vec<u8>, Vec<u8>, u64)>) -> Self {
        let mut raw: Vec<(Vec<u8>, Vec<u8>, u64)> =
            raw.into_iter().filter(|(s, e, _)| s < e).collect();
        raw.sort_by(|a, b| a.0.cmp(&b.0));
        let mut bounds: Vec<&[u8]> = raw
            .iter()
            .flat_map(|(s, e, _)| [s.as_slice(), e.as_slice()])
            .collect();
        bounds.sort_unstable();
        bounds.dedup();
        let mut active: Vec<(&[u8], u64)> = Vec::new();
        let mut next = 0;
        let mut out: Vec<Fragment> = Vec::new();
        for w in bounds.windows(2) {
            let (lo, hi) = (w[0], w[1]);
            while let Some((s, e, t)) = raw.get(next).filter(|r| r.0.as_slice() <= lo) {
                debug_assert!(s.as_slice() <= lo);
                active.push((e.as_slice(), *t));
                next += 1;
            }
            active.retain(|(e, _)| *e > lo);
            if active.is_empty() {
                continue;
            }
            let mut ts: Vec<u64> = active.iter().map(|a| a.1).collect();
            ts.sort_unstable_by(|a, b| b.cmp(a));
            ts.dedup();
            if let Some(last) = out.last_mut() {
                if last.end.as_slice() == lo && last.timestamps == ts {
                    last.end = hi.to_vec();
                    continue;
                }
            }
            out.push(Fragment {
                start: lo.to_vec(),
                end: hi.to_vec(),
                timestamps: ts,
            });
        }
        RangeTombstones { fragments: out }
    }

    /// The union of several sets, fragmented again.
    pub fn merge<'a>(sets: impl IntoIterator<Item = &'a RangeTombstones>) -> Self {
        Self::fragment(sets.into_iter().flat_map(|s| s.raw()))
    }

    /// The set as unfragmented tombstones `(start, end, ts)`, one per
    /// (fragment, timestamp).
    pub fn raw(&self) -> impl Iterator<Item = (Vec<u8>, Vec<u8>, u64)> + '_ {
        self.fragments.iter().flat_map(|f| {
            f.timestamps
                .iter()
                .map(move |&t| (f.start.clone(), f.end.clone(), t))
        })
    }

    /// True when the set holds no tombstone.
    pub fn is_empty(&self) -> bool {
        self.fragments.is_empty()
    }

    /// The fragments, by start.
    pub fn fragments(&self) -> &[Fragment] {
        &self.fragments
    }

    /// Number of stored entries: one per (fragment, timestamp).
    pub fn entries(&self) -> u64 {
        self.fragments
            .iter()
            .map(|f| f.timestamps.len() as u64)
            .sum()
    }

    /// The fragment holding `key`, if any.
    #[inline]
    pub fn fragment_of(&self, key: &[u8]) -> Option<&Fragment> {
        let i = self
            .fragments
            .partition_point(|f| f.start.as_slice() <= key);
        let f = self.fragments.get(i.checked_sub(1)?)?;
        (key < f.end.as_slice()).then_some(f)
    }

    /// The timestamp of the newest tombstone at or below `ts` covering
    /// `key`: a version of `key` older than it is deleted for a reader at
    /// `ts`.
    #[inline]
    pub fn covering(&self, key: &[u8], ts: u64) -> Option<u64> {
        self.fragment_of(key)?.newest_at(ts)
    }

    /// The smallest and largest timestamps of the set (`None` when empty).
    pub fn ts_range(&self) -> Option<(u64, u64)> {
        let min = self
            .fragments
            .iter()
            .filter_map(|f| f.timestamps.last())
            .min()?;
        let max = self
            .fragments
            .iter()
            .filter_map(|f| f.timestamps.first())
            .max()?;
        Some((*min, *max))
    }

    /// The part of the set inside `[lo, hi)` (`None`: unbounded).
    pub fn clip(&self, lo: Option<&[u8]>, hi: Option<&[u8]>) -> RangeTombstones {
        let fragments = self
            .fragments
            .iter()
            .filter_map(|f| {
                let start = match lo {
                    Some(l) if l > f.start.as_slice() => l,
                    _ => f.start.as_slice(),
                };
                let end = match hi {
                    Some(h) if h < f.end.as_slice() => h,
                    _ => f.end.as_slice(),
                };
                (start < end).then(|| Fragment {
                    start: start.to_vec(),
                    end: end.to_vec(),
                    timestamps: f.timestamps.clone(),
                })
            })
            .collect();
        RangeTombstones { fragments }
    }

    /// Keeps, of each fragment's timestamps, those `keep(fragment, ts)`
    /// accepts (asked newest first); fragments left with none go.
    pub fn retain(&mut self, mut keep: impl FnMut(&Fragment, u64) -> bool) {
        for f in &mut self.fragments {
            let all = std::mem::take(&mut f.timestamps);
            let kept: Vec<u64> = all.iter().copied().filter(|&t| keep(f, t)).collect();
            f.timestamps = kept;
        }
        self.fragments.retain(|f| !f.timestamps.is_empty());
    }

    /// The smallest internal key of the set's entries: the first
    /// fragment's start at its newest timestamp.
    pub fn smallest_key(&self) -> Option<Vec<u8>> {
        let f = self.fragments.first()?;
        let ts = *f.timestamps.first()?;
        let mut k = Vec::with_capacity(f.start.len() + TRAILER_LEN);
        encode_internal_key(&mut k, &f.start, ts, ValueKind::RangeDelete);
        Some(k)
    }

    /// An internal key at or after every key the set covers: the last
    /// fragment's (exclusive) end at timestamp 0. A table's largest key is
    /// at least this, so the table's key range covers its tombstones.
    pub fn largest_bound(&self) -> Option<Vec<u8>> {
        let f = self.fragments.last()?;
        let mut k = Vec::with_capacity(f.end.len() + TRAILER_LEN);
        encode_internal_key(&mut k, &f.end, 0, ValueKind::RangeDelete);
        Some(k)
    }

    /// The stored form: a block of one entry per (fragment, timestamp).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = BlockBuilder::new(DEFAULT_RESTART_INTERVAL);
        let mut key = Vec::new();
        for f in &self.fragments {
            for &t in &f.timestamps {
                key.clear();
                encode_internal_key(&mut key, &f.start, t, ValueKind::RangeDelete);
                b.add(&key, &f.end);
            }
        }
        b.finish()
    }

    /// Decodes a block written by [`encode`](Self::encode), at `offset` of
    /// its file (for errors), checking every invariant of a fragmented set.
    /// Allocates no more than the block's size justifies.
    pub fn decode(block: Bytes, offset: u64) -> Result<RangeTombstones> {
        let bad = |what: &str| Error::corruption(format!("range-deletion block: {what}"), offset);
        let block = Block::new(block, offset)?;
        let mut it = block.iter(compare_internal);
        it.seek_to_first()?;
        let mut fragments: Vec<Fragment> = Vec::new();
        let mut prev: Option<Vec<u8>> = None;
        while it.valid() {
            let key = it.key();
            let k = InternalKeyRef::parse(key).map_err(|_| bad("bad internal key"))?;
            if k.kind != ValueKind::RangeDelete {
                return Err(bad("an entry that is not a range delete"));
            }
            if prev
                .as_deref()
                .is_some_and(|p| compare_internal(p, key) != std::cmp::Ordering::Less)
            {
                return Err(bad("keys out of order"));
            }
            let end = it.value();
            if end.len() > MAX_RANGE_END_LEN || k.user_key >= end {
                return Err(bad("a range that is empty or whose end is too long"));
            }
            match fragments.last_mut() {
                Some(f) if f.start.as_slice() == k.user_key => {
                    if f.end.as_slice() != end {
                        return Err(bad("pieces of one start with different ends"));
                    }
                    f.timestamps.push(k.ts);
                }
                last => {
                    if last.is_some_and(|f| f.end.as_slice() > k.user_key) {
                        return Err(bad("overlapping fragments"));
                    }
                    fragments.push(Fragment {
                        start: k.user_key.to_vec(),
                        end: end.to_vec(),
                        timestamps: vec![k.ts],
                    });
                }
            }
            prev = Some(key.to_vec());
            it.next()?;
        }
        Ok(RangeTombstones { fragments })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: &str, e: &str, ts: u64) -> (Vec<u8>, Vec<u8>, u64) {
        (s.as_bytes().to_vec(), e.as_bytes().to_vec(), ts)
    }

    #[test]
    fn overlapping_tombstones_are_cut_into_fragments() {
        let set = RangeTombstones::fragment([t("b", "f", 5), t("d", "h", 9), t("a", "c", 5)]);
        let got: Vec<_> = set
            .fragments()
            .iter()
            .map(|f| {
                (
                    String::from_utf8_lossy(&f.start).into_owned(),
                    String::from_utf8_lossy(&f.end).into_owned(),
                    f.timestamps.clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".into(), "d".into(), vec![5]),
                ("d".into(), "f".into(), vec![9, 5]),
                ("f".into(), "h".into(), vec![9]),
            ]
        );
        assert_eq!(set.covering(b"e", 100), Some(9));
        assert_eq!(set.covering(b"e", 8), Some(5));
        assert_eq!(set.covering(b"e", 4), None);
        assert_eq!(set.covering(b"h", 100), None);
        assert_eq!(set.ts_range(), Some((5, 9)));
        let back = RangeTombstones::decode(Bytes::from(set.encode()), 0).unwrap();
        assert_eq!(back, set);
    }

    fn arb_raw() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>, u64)>> {
        prop::collection::vec(
            (
                prop::collection::vec(b'a'..b'e', 0..3),
                prop::collection::vec(b'a'..b'e', 0..3),
                1u64..6,
            ),
            0..8,
        )
    }

    proptest! {
        /// The fragmented set answers like the raw list, round-trips through
        /// its block, and clipping keeps exactly the answers inside.
        #[test]
        fn fragments_agree_with_the_raw_tombstones(
            raw in arb_raw(),
            key in prop::collection::vec(b'a'..b'f', 0..4),
            ts in 0u64..7,
            lo in prop::collection::vec(b'a'..b'e', 0..2),
        ) {
            let set = RangeTombstones::fragment(raw.clone());
            let expected = raw
                .iter()
                .filter(|(s, e, t)| s.as_slice() <= key.as_slice() && key.as_slice() < e.as_slice() && *t <= ts)
                .map(|r| r.2)
                .max();
            prop_assert_eq!(set.covering(&key, ts), expected);
            let back = RangeTombstones::decode(Bytes::from(set.encode()), 0).unwrap();
            prop_assert_eq!(&back, &set);
            let clipped = set.clip(Some(&lo), None);
            let want = if key >= lo { expected } else { None };
            prop_assert_eq!(clipped.covering(&key, ts), want);
            prop_assert_eq!(RangeTombstones::merge([&set, &clipped]), set.clone());
        }

        #[test]
        fn decoder_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = RangeTombstones::decode(Bytes::from(bytes), 0);
        }
    }

    #[test]
    fn overlapping_or_out_of_order_blocks_are_refused() {
        let key = |s: &str, ts| {
            let mut k = Vec::new();
            encode_internal_key(&mut k, s.as_bytes(), ts, ValueKind::RangeDelete);
            k
        };
        for entries in [
            vec![(key("a", 5), "c"), (key("b", 5), "d")], // overlap
            vec![(key("a", 5), "c"), (key("a", 4), "d")], // two ends
            vec![(key("b", 5), "a")],                     // empty range
            vec![(key("a", 4), "c"), (key("a", 5), "c")], // order
        ] {
            let mut b = BlockBuilder::new(16);
            for (k, v) in &entries {
                b.add(k, v.as_bytes());
            }
            let err = RangeTombstones::decode(Bytes::from(b.finish()), 77).unwrap_err();
            assert!(matches!(err, Error::Corruption { offset: 77, .. }), "{err}");
        }
        let mut b = BlockBuilder::new(16);
        let mut k = Vec::new();
        encode_internal_key(&mut k, b"a", 1, ValueKind::Put);
        b.add(&k, b"z");
        assert!(RangeTombstones::decode(Bytes::from(b.finish()), 0).is_err());
    }
}
