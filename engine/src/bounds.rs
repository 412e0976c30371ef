//! Key-range vocabulary shared by scans, transactions and snapshots: one
//! definition of "inside a bound" and of a prefix's upper bound.

use std::ops::Bound;

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
}
