//! Garbage collection of versions: which versions of a key a flush or a
//! compaction keeps.
//!
//! Reads can happen at every timestamp from the start of the history
//! window on (the present included) and at each live snapshot below it.
//! Those read points cut the timestamps at or below the window into
//! stripes; a reader in a stripe sees only the newest version in it, so
//! the older ones in the same stripe go. In the lowest stripe (no read
//! point below) even that newest version goes when it reads as absent (a
//! tombstone, or a TTL entry expired by the stripe's read point) and no
//! older data of the key can lie below the output, which it would
//! otherwise uncover. Versions above the window are all kept.
//!
//! Range tombstones follow the same rule per fragment: of a fragment's
//! timestamps only the newest of each stripe is kept, and in the lowest
//! stripe not even that one when no older data of the fragment's range can
//! lie below the output. A version a range tombstone of its own stripe
//! hides is dropped, as one a newer version of its stripe hides is.

use strata_format::key::ValueKind;
use strata_format::range_del::RangeTombstones;

/// The read points a flush or compaction must preserve: every timestamp
/// from `window` on (the history window, or the present), and each live
/// snapshot below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GcPoints {
    /// The start of the history window: every version above it is kept.
    pub window: u64,
    /// Snapshot timestamps below `window`, newest first.
    pub snapshots: Vec<u64>,
}

impl GcPoints {
    /// The read points for a window starting at `window` and the live
    /// snapshots `ascending` (distinct, oldest first, as a `BTreeMap`'s
    /// keys): those at or above the window are covered by it.
    pub(crate) fn new(window: u64, ascending: impl DoubleEndedIterator<Item = u64>) -> Self {
        let snapshots = ascending.rev().filter(|&s| s < window).collect();
        GcPoints { window, snapshots }
    }

    /// The stripe of a version at `ts`: the smallest read point at or above
    /// it (`None` above the window, where every version is kept). Within a
    /// stripe only the newest version can be read.
    #[inline]
    pub(crate) fn stripe(&self, ts: u64) -> Option<u64> {
        if ts > self.window {
            return None;
        }
        Some(
            self.snapshots
                .iter()
                .copied()
                .rfind(|&s| s >= ts)
                .unwrap_or(self.window),
        )
    }

    /// True when no read point lies below `stripe`: what reads as absent
    /// there is absent for every reader.
    #[inline]
    pub(crate) fn is_lowest(&self, stripe: u64) -> bool {
        self.snapshots.last().is_none_or(|&s| s >= stripe)
    }
}

/// What becomes of one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(crate) enum GcDecision {
    /// Some reader can see it: copied to the output.
    Keep,
    /// A newer version of the key in the same stripe hides it from every
    /// reader: dropped.
    Shadowed,
    /// The newest of the lowest stripe, reading as absent (a tombstone or
    /// an expired TTL entry), with nothing older of the key below: dropped.
    Collected,
}

impl GcDecision {
    /// True when the version is copied to the output.
    #[inline]
    pub(crate) fn keeps(self) -> bool {
        self == GcDecision::Keep
    }
}

/// The decision for each version of a merged stream, fed in internal-key
/// order (user key ascending, newest version first). Remembers the current
/// user key (in a buffer reused across keys, so deciding allocates only
/// when a longer key comes) and the stripe of its last version.
#[derive(Debug)]
pub(crate) struct GcState {
    user: Vec<u8>,
    first: bool,
    last_stripe: Option<u64>,
}

impl Default for GcState {
    fn default() -> Self {
        GcState::new()
    }
}

impl GcState {
    /// A state before the first version of a stream.
    pub(crate) fn new() -> Self {
        GcState {
            user: Vec::new(),
            first: true,
            last_stripe: None,
        }
    }

    /// Decides the next version of the stream: `user_key` at `ts` of
    /// `kind` with its stored `value` (for a TTL entry, its expiry
    /// prefix). `bottommost(user_key)` says no older data of the key can
    /// lie below the output; it is asked only for a version that reads as
    /// absent in the lowest stripe.
    #[inline]
    pub(crate) fn decide(
        &mut self,
        points: &GcPoints,
        user_key: &[u8],
        ts: u64,
        kind: ValueKind,
        value: &[u8],
        bottommost: &dyn Fn(&[u8]) -> bool,
    ) -> GcDecision {
        if self.first || user_key != self.user.as_slice() {
            self.user.clear();
            self.user.extend_from_slice(user_key);
            self.last_stripe = None;
            self.first = false;
        }
        match points.stripe(ts) {
            None => GcDecision::Keep,
            Some(stripe) if Some(stripe) == self.last_stripe => GcDecision::Shadowed,
            Some(stripe) => {
                self.last_stripe = Some(stripe);
                // Expired by the stripe's read point, a TTL entry reads as
                // absent there: like a tombstone, it still hides what is
                // below it.
                let expired = kind == ValueKind::PutWithTtl
                    && crate::view::ttl_expiry(value).is_none_or(|e| e <= stripe);
                let droppable = (kind.is_tombstone() || expired)
                    && points.is_lowest(stripe)
                    && bottommost(user_key);
                if droppable {
                    GcDecision::Collected
                } else {
                    GcDecision::Keep
                }
            }
        }
    }
}

/// True when a range tombstone of `dels` hides the version of `user_key`
/// at `ts` from every reader: the oldest covering tombstone above `ts` is in
/// the same stripe, so no read point lies between them. `dels` are the
/// job's tombstones before collection.
#[inline]
pub(crate) fn range_shadowed(
    points: &GcPoints,
    dels: &RangeTombstones,
    user_key: &[u8],
    ts: u64,
) -> bool {
    let Some(t) = dels.fragment_of(user_key).and_then(|f| f.oldest_above(ts)) else {
        return false;
    };
    match points.stripe(t) {
        Some(stripe) => points.stripe(ts) == Some(stripe),
        None => false,
    }
}

/// The range tombstones of a flush or compaction that some reader still
/// needs: per fragment, the newest timestamp of each stripe, and in the
/// lowest stripe not that one either when `bottommost(start, end)` says no
/// older data of the fragment's range lies below the output (the versions it
/// deleted there are dropped with it, by [`range_shadowed`]).
pub(crate) fn collect_range_tombstones(
    points: &GcPoints,
    mut dels: RangeTombstones,
    bottommost: &dyn Fn(&[u8], &[u8]) -> bool,
) -> RangeTombstones {
    let mut current: Option<(Vec<u8>, Option<u64>)> = None;
    dels.retain(|f, t| {
        // Timestamps come newest first, fragment by fragment.
        if current.as_ref().is_none_or(|(start, _)| *start != f.start) {
            current = Some((f.start.clone(), None));
        }
        let Some((_, last_stripe)) = current.as_mut() else {
            return true;
        };
        match points.stripe(t) {
            None => true,
            Some(stripe) if Some(stripe) == *last_stripe => false,
            Some(stripe) => {
                *last_stripe = Some(stripe);
                !(points.is_lowest(stripe) && bottommost(&f.start, &f.end))
            }
        }
    });
    dels
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fmt::Write as _;

    use proptest::prelude::*;

    use super::*;
    use crate::policy::datadriven::{self, Case};

    /// One version as the test files write it: `key@ts kind`, where kind
    /// is `put`, `del`, `rangedel`, `blob`, `ttl=EXPIRY` or `ttl=bad` (a
    /// value too short to hold an expiry).
    struct Entry {
        key: Vec<u8>,
        ts: u64,
        kind: ValueKind,
        value: Vec<u8>,
    }

    fn parse_entry(c: &Case, line: &str) -> Entry {
        let bad = || c.fail(format!("bad entry {line:?}: want key@ts kind"));
        let (version, kind) = line.split_once(' ').unwrap_or_else(bad);
        let (key, ts) = version.split_once('@').unwrap_or_else(bad);
        let (kind, value) = match kind.trim() {
            "put" => (ValueKind::Put, b"v".to_vec()),
            "del" => (ValueKind::Delete, Vec::new()),
            "rangedel" => (ValueKind::RangeDelete, Vec::new()),
            "blob" => (ValueKind::BlobPointer, b"ptr".to_vec()),
            "ttl=bad" => (ValueKind::PutWithTtl, b"short".to_vec()),
            k => match k.strip_prefix("ttl=") {
                Some(e) => {
                    let mut v = c.parse::<u64>("expiry", e).to_be_bytes().to_vec();
                    v.push(b'v');
                    (ValueKind::PutWithTtl, v)
                }
                None => c.fail(format!("bad kind in {line:?}")),
            },
        };
        Entry {
            key: key.as_bytes().to_vec(),
            ts: c.parse("ts", ts),
            kind,
            value,
        }
    }

    /// `points window=N snapshots=a,b,...` (the live snapshots in any
    /// order): the read points `DbInner::gc_points` hands out.
    fn points(c: &Case) -> GcPoints {
        let live: std::collections::BTreeSet<u64> =
            c.list::<u64>("snapshots").into_iter().collect();
        GcPoints::new(c.get("window"), live.into_iter())
    }

    fn describe_points(p: &GcPoints) -> String {
        let snaps: Vec<_> = p.snapshots.iter().map(u64::to_string).collect();
        format!("window={} snapshots=[{}]\n", p.window, snaps.join(","))
    }

    /// `gc window=N snapshots=... bottommost=k1,k2|all` with one version
    /// per line, in internal-key order: each version's stripe and fate.
    fn gc(c: &Case) -> String {
        let p = points(c);
        let bottom: Vec<String> = c.list("bottommost");
        let all = bottom.iter().any(|k| k == "all");
        let bottommost = |k: &[u8]| all || bottom.iter().any(|b| b.as_bytes() == k);
        let mut st = GcState::new();
        let mut out = describe_points(&p);
        let mut prev: Option<(Vec<u8>, u64)> = None;
        for line in &c.input {
            let e = parse_entry(c, line);
            if let Some((k, ts)) = &prev {
                if (k.as_slice(), std::cmp::Reverse(*ts))
                    >= (e.key.as_slice(), std::cmp::Reverse(e.ts))
                {
                    c.fail(format!("{line:?} is out of internal-key order"));
                }
            }
            prev = Some((e.key.clone(), e.ts));
            let d = st.decide(&p, &e.key, e.ts, e.kind, &e.value, &bottommost);
            let stripe = match p.stripe(e.ts) {
                None => "above window".to_string(),
                Some(s) if p.is_lowest(s) => format!("stripe {s} (lowest)"),
                Some(s) => format!("stripe {s}"),
            };
            let _ = writeln!(out, "{line:<16} {stripe:<22} {d:?}");
        }
        out
    }

    #[test]
    fn gc_testdata() {
        datadriven::run("gc.txt", |c| match c.cmd.as_str() {
            "points" => describe_points(&points(c)),
            "gc" => gc(c),
            _ => c.fail("unknown command"),
        });
    }

    /// `copy_live`'s loop as the engine had it inline, over plain entries:
    /// the reference the per-version decision must agree with.
    fn old_copy_live(
        entries: &[(Vec<u8>, u64, ValueKind, Vec<u8>)],
        points: &GcPoints,
        bottommost: &dyn Fn(&[u8]) -> bool,
    ) -> Vec<bool> {
        let mut kept = Vec::new();
        let mut user: Vec<u8> = Vec::new();
        let mut first = true;
        let mut last_stripe: Option<u64> = None;
        for (user_key, ts, kind, value) in entries {
            if first || user_key.as_slice() != user.as_slice() {
                user.clear();
                user.extend_from_slice(user_key);
                last_stripe = None;
                first = false;
            }
            match points.stripe(*ts) {
                None => kept.push(true),
                Some(stripe) if Some(stripe) == last_stripe => kept.push(false),
                Some(stripe) => {
                    last_stripe = Some(stripe);
                    let expired = *kind == ValueKind::PutWithTtl
                        && crate::view::ttl_expiry(value).is_none_or(|e| e <= stripe);
                    let droppable = (kind.is_tombstone() || expired)
                        && points.is_lowest(stripe)
                        && bottommost(user_key);
                    kept.push(!droppable);
                }
            }
        }
        kept
    }

    /// `DbInner::gc_points` as the engine had it inline.
    fn old_gc_points(snaps: &BTreeMap<u64, usize>, window: u64) -> GcPoints {
        let snapshots = snaps
            .keys()
            .rev()
            .copied()
            .filter(|&s| s < window)
            .collect();
        GcPoints { window, snapshots }
    }

    fn kind() -> impl Strategy<Value = (ValueKind, Vec<u8>)> {
        prop_oneof![
            Just((ValueKind::Put, b"v".to_vec())),
            Just((ValueKind::Delete, Vec::new())),
            Just((ValueKind::RangeDelete, Vec::new())),
            Just((ValueKind::BlobPointer, b"p".to_vec())),
            Just((ValueKind::PutWithTtl, b"bad".to_vec())),
            (0u64..40).prop_map(|e| {
                let mut v = e.to_be_bytes().to_vec();
                v.push(b'v');
                (ValueKind::PutWithTtl, v)
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// The per-version decision keeps exactly what the engine's inline
        /// loop kept, for any read points and any bottommost answer.
        #[test]
        fn decide_matches_old_copy_live(
            versions in prop::collection::btree_map(
                (prop::collection::vec(b'a'..b'd', 0..2), (0u64..40).prop_map(std::cmp::Reverse)),
                kind(),
                0..40,
            ),
            live in prop::collection::btree_map(0u64..45, 1usize..3, 0..5),
            window in 0u64..45,
            bottom in prop::collection::vec(prop::collection::vec(b'a'..b'd', 0..2), 0..3),
        ) {
            let entries: Vec<_> = versions
                .into_iter()
                .map(|((k, std::cmp::Reverse(ts)), (kind, v))| (k, ts, kind, v))
                .collect();
            let points = GcPoints::new(window, live.keys().copied());
            prop_assert_eq!(&points, &old_gc_points(&live, window));
            let bottommost = |k: &[u8]| bottom.iter().any(|b| b.as_slice() == k);
            let old = old_copy_live(&entries, &points, &bottommost);
            let mut st = GcState::new();
            let new: Vec<bool> = entries
                .iter()
                .map(|(k, ts, kind, v)| st.decide(&points, k, *ts, *kind, v, &bottommost).keeps())
                .collect();
            prop_assert_eq!(old, new);
        }
    }
}
