//! Key-range vocabulary shared by scans, transactions, snapshots and range
//! deletes: one definition of "inside a bound", of a prefix's upper bound,
//! and of the half-open `[start, end)` ranges range deletes store.

use std::ops::Bound;

use strata_format::key::MAX_RANGE_END_LEN;

/// True when `key` is at or above (`Included`) or above (`Excluded`) `lower`.
#[inline]
pub(crate) fn above_lower(key: &[u8], lower: &Bound<Vec<u8>>) -> bool {
    match lower {
        Bound::Included(l) => key >= l.as_slice(),
        Bound::Excluded(l) => key > l.as_slice(),
        Bound::Unbounded => true,
    }
}

/// True when `key` is at or below (`Included`) or below (`Excluded`) `upper`.
#[inline]
pub(crate) fn below_upper(key: &[u8], upper: &Bound<Vec<u8>>) -> bool {
    match upper {
        Bound::Included(u) => key <= u.as_slice(),
        Bound::Excluded(u) => key < u.as_slice(),
        Bound::Unbounded => true,
    }
}

/// True when `key` lies between `lo` and `hi`.
#[inline]
pub(crate) fn in_range(key: &[u8], lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> bool {
    above_lower(key, lo) && below_upper(key, hi)
}

/// The exclusive upper bound of the keys starting with `prefix`: the prefix
/// with its last non-0xff byte incremented, or unbounded.
pub(crate) fn prefix_upper(prefix: &[u8]) -> Bound<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < 0xff {
            p.push(last + 1);
            return Bound::Excluded(p);
        }
    }
    Bound::Unbounded
}

/// The key right after `key`: `key ‖ 0x00`. Nothing lies between them, so
/// `Excluded(k)` as a lower bound is `Included(successor(k))` and
/// `Included(k)` as an upper bound is `Excluded(successor(k))`.
pub(crate) fn successor(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.extend_from_slice(key);
    k.push(0);
    k
}

/// An exclusive end past every user key (user keys are at most 64 KiB).
fn end_of_keys() -> Vec<u8> {
    vec![0xff; MAX_RANGE_END_LEN]
}

/// The bounds `lo`, `hi` as the half-open range `[start, end)` a range
/// delete stores, or `None` when they hold no key.
pub(crate) fn half_open(lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Option<(Vec<u8>, Vec<u8>)> {
    let start = match lo {
        Bound::Included(k) => k.to_vec(),
        Bound::Excluded(k) => successor(k),
        Bound::Unbounded => Vec::new(),
    };
    let end = match hi {
        Bound::Included(k) => successor(k),
        Bound::Excluded(k) => k.to_vec(),
        Bound::Unbounded => end_of_keys(),
    };
    (start < end).then_some((start, end))
}

/// True when some key lies both between `lo` and `hi` and in `[start, end)`.
pub(crate) fn overlaps(lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>, start: &[u8], end: &[u8]) -> bool {
    // The smallest key at or above both lower bounds; the ranges meet when
    // it is below both upper bounds.
    let first = match lo {
        Bound::Included(l) if l.as_slice() > start => l.clone(),
        Bound::Excluded(l) if l.as_slice() >= start => successor(l),
        _ => start.to_vec(),
    };
    first.as_slice() < end && below_upper(&first, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_bound_covers_exactly_the_prefixed_keys() {
        assert_eq!(prefix_upper(b"ab"), Bound::Excluded(b"ac".to_vec()));
        assert_eq!(prefix_upper(b"a\xff"), Bound::Excluded(b"b".to_vec()));
        assert_eq!(prefix_upper(b"\xff\xff"), Bound::Unbounded);
        let hi = prefix_upper(b"ab");
        assert!(in_range(
            b"ab\xff\xff",
            &Bound::Included(b"ab".to_vec()),
            &hi
        ));
        assert!(!in_range(b"ac", &Bound::Included(b"ab".to_vec()), &hi));
        assert!(!in_range(b"ab", &Bound::Excluded(b"ab".to_vec()), &hi));
    }

    #[test]
    fn half_open_ranges_and_their_overlaps() {
        let r = |lo, hi| half_open(lo, hi);
        assert_eq!(
            r(Bound::Excluded(b"a"), Bound::Included(b"c")),
            Some((b"a\0".to_vec(), b"c\0".to_vec()))
        );
        assert_eq!(r(Bound::Included(b"c"), Bound::Excluded(b"c")), None);
        let (s, e) = r(Bound::Unbounded, Bound::Unbounded).unwrap();
        assert!(s.is_empty() && e.as_slice() > [0xffu8; 65536].as_slice());
        let b = |k: &[u8]| Bound::Included(k.to_vec());
        let x = |k: &[u8]| Bound::Excluded(k.to_vec());
        assert!(overlaps(&b(b"a"), &x(b"c"), b"b", b"z"));
        assert!(!overlaps(&b(b"a"), &x(b"b"), b"b", b"z"));
        assert!(overlaps(&b(b"a"), &b(b"b"), b"b", b"z"));
        assert!(!overlaps(&x(b"b"), &Bound::Unbounded, b"a", b"b\0"));
        assert!(overlaps(&x(b"b"), &Bound::Unbounded, b"a", b"b\0\0"));
        assert!(!overlaps(&Bound::Unbounded, &Bound::Unbounded, b"b", b"b"));
    }
}
