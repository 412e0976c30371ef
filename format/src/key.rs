//! Internal keys and their one comparator.
//!
//! An internal key is `user_key ‖ timestamp ‖ kind`: the user's key, the
//! 8-byte MVCC commit timestamp (big-endian) and a 1-byte [`ValueKind`].
//! Internal keys order by user key ascending (bytewise), then by timestamp
//! descending, then by kind descending, so the newest version of a key comes
//! first and a seek to `(key, ts, MAX_KIND)` lands on the newest version
//! visible at `ts`.

use std::cmp::Ordering;

use crate::error::{Error, Result};

/// Bytes the timestamp and kind add after the user key.
pub const TRAILER_LEN: usize = 9;

/// The largest user key the format accepts (64 KiB).
pub const MAX_USER_KEY_LEN: usize = 64 * 1024;

/// The longest exclusive end of a range delete: one byte past the longest
/// user key, so that a range can reach past every key (`[k, ∞)` ends at
/// `0xff` repeated this many times).
pub const MAX_RANGE_END_LEN: usize = MAX_USER_KEY_LEN + 1;

/// The largest timestamp; a read at this timestamp sees every version.
pub const MAX_TIMESTAMP: u64 = u64::MAX;

/// What an entry holds. Stored as one byte; codes not listed here are refused
/// by decoders, so an old reader never misreads a new kind. The reserved
/// kinds ([`ValueKind::is_reserved`]), should a later version set one aside,
/// are refused by decoders too and never written; none is reserved now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ValueKind {
    /// A value.
    Put = 1,
    /// A tombstone: the key has no value from this timestamp on.
    Delete = 2,
    /// A value stored outside the tree, in a blob file: the value bytes are
    /// a [`crate::blob::BlobPointer`] to it. It reads as a put.
    BlobPointer = 3,
    /// A range tombstone: the user key is the range's start and the value
    /// its exclusive end. It hides every version of the keys in the range
    /// older than its timestamp. Tables keep these in their range-deletion
    /// block (see [`crate::range_del`]), never among the data entries.
    RangeDelete = 4,
    /// A value with an expiry: the value bytes are an 8-byte big-endian
    /// expiry timestamp followed by the value.
    PutWithTtl = 5,
}

impl ValueKind {
    /// The kind with the largest code; seeks use it to land before every
    /// entry of a given user key and timestamp.
    pub const MAX: ValueKind = ValueKind::PutWithTtl;

    /// Every kind, the reserved ones included, in code order.
    pub const ALL: [ValueKind; 5] = [
        ValueKind::Put,
        ValueKind::Delete,
        ValueKind::BlobPointer,
        ValueKind::RangeDelete,
        ValueKind::PutWithTtl,
    ];

    /// Decodes a kind byte: `None` for a code not in use, which includes the
    /// reserved kinds.
    #[inline]
    pub fn from_u8(b: u8) -> Option<ValueKind> {
        // A match, not a search of `ALL`: every parsed key goes through here.
        match b {
            1 => Some(ValueKind::Put),
            2 => Some(ValueKind::Delete),
            3 => Some(ValueKind::BlobPointer),
            4 => Some(ValueKind::RangeDelete),
            5 => Some(ValueKind::PutWithTtl),
            _ => None,
        }
    }

    /// True for kinds whose code is set aside for a later format version:
    /// nothing writes them, and every decoder refuses them so that no reader
    /// interprets them before their meaning is implemented. None is now
    /// (blob pointers, once reserved, have their meaning).
    pub fn is_reserved(self) -> bool {
        false
    }

    /// Decodes the kind byte of a stored key or write, refusing a reserved or
    /// unknown code as corruption of `what` at `offset`. Every decoder of a
    /// kind goes through here.
    #[inline]
    pub(crate) fn decode(b: u8, what: &str, offset: u64) -> Result<ValueKind> {
        match ValueKind::from_u8(b) {
            Some(k) => Ok(k),
            None => Err(Self::refused(b, what, offset)),
        }
    }

    #[cold]
    fn refused(b: u8, what: &str, offset: u64) -> Error {
        let why = if Self::ALL.iter().any(|&k| k as u8 == b) {
            "is reserved and not supported by this version"
        } else {
            "is unknown"
        };
        Error::corruption(format!("{what}: value kind {b} {why}"), offset)
    }

    /// True for kinds that end a key's visible history (tombstones).
    #[inline]
    pub fn is_tombstone(self) -> bool {
        matches!(self, ValueKind::Delete | ValueKind::RangeDelete)
    }
}

/// An internal key, borrowed and parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InternalKeyRef<'a> {
    /// The user's key.
    pub user_key: &'a [u8],
    /// The MVCC commit timestamp.
    pub ts: u64,
    /// What the entry holds.
    pub kind: ValueKind,
}

impl<'a> InternalKeyRef<'a> {
    /// Parses encoded internal-key bytes. A reserved or unknown kind is
    /// refused; error offsets are relative to the start of the key.
    #[inline]
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let split = bytes
            .len()
            .checked_sub(TRAILER_LEN)
            .ok_or_else(|| Error::corruption("internal key shorter than its trailer", 0))?;
        let (user_key, trailer) = bytes.split_at(split);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&trailer[..8]);
        let kind = ValueKind::decode(trailer[8], "internal key", (split + 8) as u64)?;
        Ok(InternalKeyRef {
            user_key,
            ts: u64::from_be_bytes(ts),
            kind,
        })
    }

    /// Appends the encoding to `buf`.
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        encode_internal_key(buf, self.user_key, self.ts, self.kind);
    }

    /// The encoding as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.user_key.len() + TRAILER_LEN);
        self.encode_into(&mut v);
        v
    }
}

/// Appends the internal key `(user_key, ts, kind)` to `buf`. `kind` must not
/// be reserved ([`ValueKind::is_reserved`]): no decoder would read it back.
#[inline]
pub fn encode_internal_key(buf: &mut Vec<u8>, user_key: &[u8], ts: u64, kind: ValueKind) {
    debug_assert!(!kind.is_reserved(), "writing reserved value kind {kind:?}");
    buf.extend_from_slice(user_key);
    buf.extend_from_slice(&ts.to_be_bytes());
    buf.push(kind as u8);
}

/// Writes the internal key `(user_key, ts, kind)` into `out`, which must be
/// exactly `user_key.len() + TRAILER_LEN` bytes (for callers that own the
/// memory: a stack buffer, an arena slot). `kind` must not be reserved.
#[inline]
pub fn write_internal_key(out: &mut [u8], user_key: &[u8], ts: u64, kind: ValueKind) {
    debug_assert!(!kind.is_reserved(), "writing reserved value kind {kind:?}");
    let (user, trailer) = out.split_at_mut(user_key.len());
    user.copy_from_slice(user_key);
    trailer[..8].copy_from_slice(&ts.to_be_bytes());
    trailer[8] = kind as u8;
}

/// The internal key a point read at `ts` seeks to: it sorts before every
/// version of `user_key` with a timestamp `<= ts` and after every newer one.
pub fn seek_key(user_key: &[u8], ts: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(user_key.len() + TRAILER_LEN);
    encode_internal_key(&mut v, user_key, ts, ValueKind::MAX);
    v
}

/// Splits encoded internal-key bytes into user key and trailer. Bytes too
/// short to hold a trailer are all user key, with an empty trailer, so the
/// comparator stays total on garbage.
#[inline]
fn split(internal: &[u8]) -> (&[u8], &[u8]) {
    match internal.len().checked_sub(TRAILER_LEN) {
        Some(at) => internal.split_at(at),
        None => (internal, &[]),
    }
}

/// The user-key part of encoded internal-key bytes (all of them when they
/// are too short to hold a trailer).
#[inline]
pub fn user_key(internal: &[u8]) -> &[u8] {
    split(internal).0
}

/// The timestamp of encoded internal-key bytes (0 for bytes too short).
#[inline]
pub fn timestamp(internal: &[u8]) -> u64 {
    match internal.len().checked_sub(TRAILER_LEN) {
        Some(split) => {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&internal[split..split + 8]);
            u64::from_be_bytes(ts)
        }
        None => 0,
    }
}

/// The comparator of encoded internal keys: user key ascending, then
/// timestamp and kind descending. Total on any bytes, so that a damaged
/// block can make a search miss but never panic.
#[inline]
pub fn compare_internal(a: &[u8], b: &[u8]) -> Ordering {
    let (ua, ta) = split(a);
    let (ub, tb) = split(b);
    // The trailer is (ts big-endian, kind): its bytes compare like the pair,
    // so comparing them reversed gives the descending order.
    ua.cmp(ub).then_with(|| tb.cmp(ta))
}

/// A short key `s` with `a <= s < b` in internal-key order, for index
/// separators: it lets an index entry be shorter than the block's last key.
/// Returns `a` itself when no shorter key fits.
pub fn separator(a: &[u8], b: &[u8]) -> Vec<u8> {
    let (ua, ub) = (user_key(a), user_key(b));
    let prefix = ua.iter().zip(ub).take_while(|(x, y)| x == y).count();
    if prefix < ua.len() && prefix < ub.len() {
        let byte = ua[prefix];
        if byte < 0xff && byte + 1 < ub[prefix] {
            // ua[..prefix] ‖ byte+1 is a user key strictly between the two;
            // with the largest trailer it is the first internal key of that
            // user key, hence > a and < b.
            let mut s = Vec::with_capacity(prefix + 1 + TRAILER_LEN);
            s.extend_from_slice(&ua[..prefix]);
            s.push(byte + 1);
            encode_internal_key(&mut s, &[], MAX_TIMESTAMP, ValueKind::MAX);
            debug_assert_eq!(compare_internal(a, &s), Ordering::Less);
            debug_assert_eq!(compare_internal(&s, b), Ordering::Less);
            return s;
        }
    }
    a.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kind() -> impl Strategy<Value = ValueKind> {
        prop_oneof![
            Just(ValueKind::Put),
            Just(ValueKind::Delete),
            Just(ValueKind::RangeDelete),
            Just(ValueKind::PutWithTtl)
        ]
    }

    proptest! {
        #[test]
        fn internal_key_round_trips(uk in proptest::collection::vec(any::<u8>(), 0..40), ts in any::<u64>(), k in kind()) {
            let key = InternalKeyRef { user_key: &uk, ts, kind: k };
            let enc = key.to_vec();
            prop_assert_eq!(InternalKeyRef::parse(&enc).unwrap(), key);
            prop_assert_eq!(user_key(&enc), &uk[..]);
            prop_assert_eq!(timestamp(&enc), ts);
            let mut out = vec![0xAA; uk.len() + TRAILER_LEN];
            write_internal_key(&mut out, &uk, ts, k);
            prop_assert_eq!(out, enc);
        }

        #[test]
        fn comparator_matches_tuple_order(
            a in (proptest::collection::vec(0u8..4, 0..4), 0u64..4, kind()),
            b in (proptest::collection::vec(0u8..4, 0..4), 0u64..4, kind()),
        ) {
            let ea = InternalKeyRef { user_key: &a.0, ts: a.1, kind: a.2 }.to_vec();
            let eb = InternalKeyRef { user_key: &b.0, ts: b.1, kind: b.2 }.to_vec();
            let expected = a.0.cmp(&b.0)
                .then(b.1.cmp(&a.1))
                .then((b.2 as u8).cmp(&(a.2 as u8)));
            prop_assert_eq!(compare_internal(&ea, &eb), expected);
        }

        #[test]
        fn separator_lies_between(
            a in (proptest::collection::vec(any::<u8>(), 0..6), any::<u64>()),
            b in (proptest::collection::vec(any::<u8>(), 0..6), any::<u64>()),
        ) {
            let ea = InternalKeyRef { user_key: &a.0, ts: a.1, kind: ValueKind::Put }.to_vec();
            let eb = InternalKeyRef { user_key: &b.0, ts: b.1, kind: ValueKind::Put }.to_vec();
            let (lo, hi) = if compare_internal(&ea, &eb) == Ordering::Less { (ea, eb) } else { (eb, ea) };
            prop_assume!(lo != hi);
            let s = separator(&lo, &hi);
            prop_assert_ne!(compare_internal(&lo, &s), Ordering::Greater);
            prop_assert_eq!(compare_internal(&s, &hi), Ordering::Less);
            prop_assert!(s.len() <= lo.len());
        }

        #[test]
        fn comparator_is_total_on_garbage(a in proptest::collection::vec(any::<u8>(), 0..12), b in proptest::collection::vec(any::<u8>(), 0..12)) {
            let ab = compare_internal(&a, &b);
            prop_assert_eq!(ab.reverse(), compare_internal(&b, &a));
            let _ = InternalKeyRef::parse(&a);
        }
    }

    #[test]
    fn newest_version_sorts_first_and_seek_key_finds_visible() {
        let v5 = InternalKeyRef {
            user_key: b"k",
            ts: 5,
            kind: ValueKind::Put,
        }
        .to_vec();
        let v3 = InternalKeyRef {
            user_key: b"k",
            ts: 3,
            kind: ValueKind::Delete,
        }
        .to_vec();
        assert_eq!(compare_internal(&v5, &v3), Ordering::Less);
        let probe = seek_key(b"k", 4);
        assert_eq!(compare_internal(&v5, &probe), Ordering::Less);
        assert_eq!(compare_internal(&probe, &v3), Ordering::Less);
        // A longer user key sorts after every version of its prefix.
        let longer = InternalKeyRef {
            user_key: b"k\0",
            ts: u64::MAX,
            kind: ValueKind::Put,
        }
        .to_vec();
        assert_eq!(compare_internal(&v3, &longer), Ordering::Less);
    }
}
