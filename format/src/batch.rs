//! Write-batch records: the payload of a WAL record. One record holds every
//! write of one batch or transaction, so replaying the WAL applies a batch
//! whole or not at all.
//!
//! ```text
//! record = commit_ts (u64 LE) ‖ count (varint) ‖ op × count
//! op     = kind (u8) ‖ keyspace (varint, fits u32) ‖ key (bytes) ‖ value (bytes)
//! ```
//!
//! `kind` is a [`ValueKind`] code, never a reserved one; a tombstone's value
//! is empty. A range delete's key is the range's start and its value the
//! exclusive end, a user key above the start.

use crate::coding::{put_bytes, put_varint64, Cursor};
use crate::error::{Error, Result};
use crate::key::{ValueKind, MAX_RANGE_END_LEN, MAX_USER_KEY_LEN};

/// One write of a batch, borrowed from the encoded record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOp<'a> {
    /// What the write stores.
    pub kind: ValueKind,
    /// The keyspace it goes to.
    pub keyspace: u32,
    /// The user key.
    pub key: &'a [u8],
    /// The value (empty for a tombstone; the exclusive end of a range
    /// delete, whose key is the start).
    pub value: &'a [u8],
}

/// Builds a batch record in memory.
#[derive(Debug, Clone, Default)]
pub struct BatchBuilder {
    ops: Vec<u8>,
    count: u64,
    /// The longest value of a put added.
    largest_put: usize,
}

impl BatchBuilder {
    /// An empty batch.
    pub fn new() -> Self {
        BatchBuilder::default()
    }

    /// Appends one write. `kind` must not be reserved
    /// ([`ValueKind::is_reserved`]): the decoder would refuse the record.
    pub fn add(&mut self, kind: ValueKind, keyspace: u32, key: &[u8], value: &[u8]) {
        self.add_parts(kind, keyspace, key, &[value]);
    }

    /// Appends one write whose value is the concatenation of `value`, so a
    /// caller that prefixes a value (a TTL's expiry) copies it only once,
    /// into the record. `kind` must not be reserved, as for [`add`](Self::add).
    pub fn add_parts(&mut self, kind: ValueKind, keyspace: u32, key: &[u8], value: &[&[u8]]) {
        debug_assert!(!kind.is_reserved(), "writing reserved value kind {kind:?}");
        let len: usize = value.iter().map(|p| p.len()).sum();
        // One reservation for the whole entry (kind, three varints, bytes)
        // instead of growing the buffer step by step.
        self.ops.reserve(1 + 5 + 10 + 10 + key.len() + len);
        self.ops.push(kind as u8);
        put_varint64(&mut self.ops, u64::from(keyspace));
        put_bytes(&mut self.ops, key);
        put_varint64(&mut self.ops, len as u64);
        for p in value {
            self.ops.extend_from_slice(p);
        }
        self.count += 1;
        if kind == ValueKind::Put {
            self.largest_put = self.largest_put.max(len);
        }
    }

    /// The encoded writes (the record without its header) and their count,
    /// for a caller that writes the header itself (see [`encode_header`]).
    pub fn into_parts(self) -> (Vec<u8>, u64) {
        (self.ops, self.count)
    }

    /// The encoded writes (the record without its header).
    pub fn ops(&self) -> &[u8] {
        &self.ops
    }

    /// Number of writes.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// The length of the longest value of a put added (0 if none), so a
    /// writer that stores large values apart knows without decoding
    /// whether the batch holds one.
    pub fn largest_put(&self) -> usize {
        self.largest_put
    }

    /// True when the batch holds no write.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of the encoded writes (without the record header).
    pub fn size(&self) -> usize {
        self.ops.len()
    }

    /// Appends the record with commit timestamp `ts` to `out`.
    pub fn encode_into(&self, ts: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&ts.to_le_bytes());
        put_varint64(out, self.count);
        out.extend_from_slice(&self.ops);
    }

    /// Forgets every write.
    pub fn clear(&mut self) {
        self.ops.clear();
        self.count = 0;
        self.largest_put = 0;
    }
}

/// The header of a record of `count` writes committed at `ts`: what
/// precedes the encoded writes (`ts ‖ count`). Returns the bytes used of
/// `out`.
pub fn encode_header(ts: u64, count: u64, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
    out[..8].copy_from_slice(&ts.to_le_bytes());
    let mut n = 8;
    let mut v = count;
    while v >= 0x80 {
        out[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    out[n] = v as u8;
    n + 1
}

/// The longest record header: a timestamp and a 10-byte varint.
pub const MAX_HEADER_LEN: usize = 18;

/// Decodes the `count` writes of `bytes` (a record's writes, without its
/// header) one at a time; `offset` locates errors. Each write is checked
/// as [`BatchRecord::decode`] checks it.
#[derive(Debug, Clone)]
pub struct OpIter<'a> {
    cursor: Cursor<'a>,
    left: u64,
    failed: bool,
}

impl<'a> OpIter<'a> {
    /// The writes of `bytes`, of which there are `count`.
    #[inline]
    pub fn new(bytes: &'a [u8], count: u64, offset: u64) -> Self {
        OpIter {
            cursor: Cursor::new(bytes, offset, "batch record"),
            left: count,
            failed: false,
        }
    }

    #[inline]
    fn op(&mut self) -> Result<BatchOp<'a>> {
        let c = &mut self.cursor;
        let at = c.offset();
        let kind = ValueKind::decode(c.u8()?, "batch record", at)?;
        let keyspace = u32::try_from(c.varint64()?)
            .map_err(|_| Error::corruption("batch record: keyspace id out of range", at))?;
        let key = c.length_prefixed()?;
        if key.len() > MAX_USER_KEY_LEN {
            return Err(Error::corruption("batch record: key too long", at));
        }
        let value = c.length_prefixed()?;
        if kind == ValueKind::RangeDelete && (value.len() > MAX_RANGE_END_LEN || value <= key) {
            return Err(Error::corruption(
                "batch record: a range delete whose end is not a key above its start",
                at,
            ));
        }
        Ok(BatchOp {
            kind,
            keyspace,
            key,
            value,
        })
    }
}

impl<'a> Iterator for OpIter<'a> {
    type Item = Result<BatchOp<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.left == 0 {
            if self.cursor.is_empty() {
                return None;
            }
            self.failed = true;
            return Some(Err(self.cursor.error("trailing bytes")));
        }
        self.left -= 1;
        let r = self.op();
        self.failed = r.is_err();
        Some(r)
    }
}

/// A decoded batch record: its timestamp and a validated list of writes.
#[derive(Debug, Clone)]
pub struct BatchRecord<'a> {
    /// The commit timestamp every write of the batch shares.
    pub ts: u64,
    ops: Vec<BatchOp<'a>>,
}

impl<'a> BatchRecord<'a> {
    /// Decodes and validates a whole record before anything is applied, so a
    /// damaged record is refused whole. `offset` locates errors.
    pub fn decode(bytes: &'a [u8], offset: u64) -> Result<Self> {
        let mut c = Cursor::new(bytes, offset, "batch record");
        let ts = c.u64_le()?;
        // Every op takes at least 4 bytes: bound the count by what is left.
        let count = c.len(c.remaining() / 4)?;
        let offset = c.offset();
        let rest = c.bytes(c.remaining())?;
        let ops = OpIter::new(rest, count as u64, offset).collect::<Result<Vec<_>>>()?;
        Ok(BatchRecord { ts, ops })
    }

    /// The writes, in the order they were added.
    pub fn ops(&self) -> &[BatchOp<'a>] {
        &self.ops
    }
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
        fn batch_round_trips(ts in any::<u64>(), ops in proptest::collection::vec(
            (kind(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..20), proptest::collection::vec(any::<u8>(), 0..50)), 0..20)) {
            // A range delete's end is a key above its start.
            let ops: Vec<_> = ops
                .into_iter()
                .map(|(k, ks, key, mut value)| {
                    if k == ValueKind::RangeDelete {
                        value = key.clone();
                        value.push(0);
                    }
                    (k, ks, key, value)
                })
                .collect();
            let mut b = BatchBuilder::new();
            for (k, ks, key, value) in &ops { b.add(*k, *ks, key, value); }
            let mut out = Vec::new();
            b.encode_into(ts, &mut out);
            let r = BatchRecord::decode(&out, 0).unwrap();
            prop_assert_eq!(r.ts, ts);
            let got: Vec<_> = r.ops().iter().map(|o| (o.kind, o.keyspace, o.key.to_vec(), o.value.to_vec())).collect();
            prop_assert_eq!(got, ops);
            // The same record from a header written apart and the writes.
            let (writes, count) = b.into_parts();
            let mut header = [0u8; MAX_HEADER_LEN];
            let n = encode_header(ts, count, &mut header);
            let mut apart = header[..n].to_vec();
            apart.extend_from_slice(&writes);
            prop_assert_eq!(apart, out);
        }

        #[test]
        fn decoder_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = BatchRecord::decode(&bytes, 0);
        }
    }

    #[test]
    fn a_range_delete_must_end_above_its_start() {
        for (start, end) in [(&b"b"[..], &b"b"[..]), (b"b", b"a"), (b"b", b"")] {
            let mut b = BatchBuilder::new();
            b.add(ValueKind::RangeDelete, 1, start, end);
            let mut out = Vec::new();
            b.encode_into(3, &mut out);
            let err = BatchRecord::decode(&out, 100).unwrap_err();
            assert!(
                matches!(err, Error::Corruption { offset: 109, .. }),
                "{err}"
            );
        }
    }

    #[test]
    fn a_huge_count_is_refused_without_allocating() {
        let mut out = 7u64.to_le_bytes().to_vec();
        put_varint64(&mut out, u64::MAX);
        assert!(BatchRecord::decode(&out, 0).is_err());
    }
}
