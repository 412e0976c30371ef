//! Batches as the commit path takes them: writes checked and encoded once
//! (see [`WriteBatch`](crate::WriteBatch)) into the bytes of their WAL
//! record, which the leader writes to the WAL and the memtables take their
//! entries from.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use strata_format::batch::{BatchBuilder, BatchOp, OpIter};
use strata_format::key::{ValueKind, MAX_USER_KEY_LEN};

use crate::error::{Error, Result};
use crate::keyspaces::KeyspaceState;
use crate::timestamp::Timestamp;
use crate::txn::conflicts::Written;

/// The largest value the engine stores (larger values belong in blobs).
pub const MAX_VALUE_LEN: usize = 256 * 1024 * 1024;

/// Fails with [`Error::KeyTooLarge`] for a key the engine cannot store.
pub(crate) fn check_key(key: &[u8]) -> Result<()> {
    if key.len() > MAX_USER_KEY_LEN {
        return Err(Error::KeyTooLarge(key.len()));
    }
    Ok(())
}

/// Fails with [`Error::ValueTooLarge`] for a value the engine cannot store.
pub(crate) fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::ValueTooLarge(value.len()));
    }
    Ok(())
}

/// The expiry prefix a TTL entry's stored value starts with: the
/// timestamp it expires at, big-endian.
pub(crate) fn expiry_prefix(expires_at: Timestamp) -> [u8; 8] {
    expires_at.as_u64().to_be_bytes()
}

/// Checks a put and gives what is stored for it: the value as is, or for
/// a TTL entry its expiry timestamp (big-endian) followed by the value.
/// Transactions buffer their writes in this form.
pub(crate) fn stored_value(
    key: &[u8],
    value: &[u8],
    expires_at: Option<Timestamp>,
) -> Result<(ValueKind, Bytes)> {
    check_key(key)?;
    check_value(value)?;
    Ok(match expires_at {
        None => (ValueKind::Put, Bytes::copy_from_slice(value)),
        Some(at) => {
            let mut v = Vec::with_capacity(8 + value.len());
            v.extend_from_slice(&expiry_prefix(at));
            v.extend_from_slice(value);
            (ValueKind::PutWithTtl, Bytes::from(v))
        }
    })
}

/// The writes of `ops` without those a later write of the batch to the same
/// key, or a later range delete covering it, overwrites, or `None` when
/// there are none. (A range delete hides only versions older than its
/// timestamp, which the batch's writes share, so an earlier write it
/// covers must go here.)
fn without_overwritten(ops: &[u8], count: u64) -> Result<Option<(Vec<u8>, u64)>> {
    let all: Vec<BatchOp<'_>> = OpIter::new(ops, count, 0)
        .collect::<strata_format::Result<_>>()
        .map_err(|e| Error::format("<write batch>", e))?;
    let mut seen = HashSet::with_capacity(all.len());
    let mut later_ranges: Vec<&BatchOp<'_>> = Vec::new();
    let keep: Vec<bool> = all
        .iter()
        .rev()
        .map(|op| {
            if op.kind == ValueKind::RangeDelete {
                later_ranges.push(op);
                return true;
            }
            let covered = later_ranges
                .iter()
                .any(|r| r.keyspace == op.keyspace && r.key <= op.key && op.key < r.value);
            seen.insert((op.keyspace, op.key)) && !covered
        })
        .collect();
    if keep.iter().all(|k| *k) {
        return Ok(None);
    }
    let mut b = BatchBuilder::new();
    for (op, keep) in all.iter().zip(keep.iter().rev()) {
        if *keep {
            b.add(op.kind, op.keyspace, op.key, op.value);
        }
    }
    let (bytes, n) = b.into_parts();
    Ok(Some((bytes, n)))
}

/// A batch ready to commit: its encoded writes and the keyspaces they go to.
#[derive(Debug)]
pub(crate) struct Encoded {
    ops: Vec<u8>,
    count: u64,
    keyspaces: Vec<Arc<KeyspaceState>>,
    /// The longest value of a put (an upper bound once overwritten writes
    /// are dropped).
    largest_put: usize,
}

impl Encoded {
    /// The batch `record` writing to `keyspaces`, with only the last write
    /// to each (keyspace, key) kept. Writes of one batch share a timestamp,
    /// so an earlier one would otherwise compete with the later one by kind
    /// order.
    pub(crate) fn new(record: BatchBuilder, keyspaces: Vec<Arc<KeyspaceState>>) -> Result<Self> {
        let largest_put = record.largest_put();
        let (mut ops, mut count) = record.into_parts();
        if count > 1 {
            if let Some((kept, n)) = without_overwritten(&ops, count)? {
                ops = kept;
                count = n;
            }
        }
        Ok(Encoded {
            ops,
            count,
            keyspaces,
            largest_put,
        })
    }

    /// The encoded writes (the WAL record without its header).
    pub(crate) fn ops(&self) -> &[u8] {
        &self.ops
    }

    /// Number of writes.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// At least the length of the longest value of a put.
    pub(crate) fn largest_put(&self) -> usize {
        self.largest_put
    }

    /// Bytes of the encoded writes.
    pub(crate) fn size(&self) -> usize {
        self.ops.len()
    }

    /// The keyspaces written.
    pub(crate) fn keyspaces(&self) -> &[Arc<KeyspaceState>] {
        &self.keyspaces
    }

    /// The writes, decoded from the batch's own bytes.
    pub(crate) fn iter(&self) -> OpIter<'_> {
        OpIter::new(&self.ops, self.count, 0)
    }

    /// The keys and ranges written, for transaction validation.
    pub(crate) fn keys(&self) -> Written {
        let mut w = Written::default();
        for op in self.iter().flatten() {
            if op.kind == ValueKind::RangeDelete {
                w.ranges
                    .push((op.keyspace, op.key.to_vec(), op.value.to_vec()));
            } else {
                w.keys.push((op.keyspace, op.key.to_vec()));
            }
        }
        w
    }
}
