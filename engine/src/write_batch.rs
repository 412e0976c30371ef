//! Write batches: the public way to build an atomic set of writes. Each
//! write is checked and encoded once, as it is added, into the bytes of its
//! WAL record (see `commit::batch`).

use std::ops::RangeBounds;
use std::sync::Arc;

use strata_format::batch::BatchBuilder;
use strata_format::key::ValueKind;

use crate::commit::batch::{check_key, check_value, expiry_prefix, Encoded};
use crate::error::Result;
use crate::keyspace::Keyspace;
use crate::keyspaces::KeyspaceState;
use crate::timestamp::Timestamp;

/// A set of writes applied atomically, across keyspaces: all of them or none,
/// also across a crash.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    record: BatchBuilder,
    /// The keyspaces written, each once.
    keyspaces: Vec<Arc<KeyspaceState>>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        WriteBatch::default()
    }

    /// Sets `key` to `value` in `ks`. Too large a key or value is refused
    /// here, leaving the batch unchanged.
    pub fn put(
        &mut self,
        ks: &Keyspace,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<()> {
        let (key, value) = (key.as_ref(), value.as_ref());
        check_key(key)?;
        check_value(value)?;
        self.push(ks.state(), ValueKind::Put, key, &[value]);
        Ok(())
    }

    /// Sets `key` to `value` in `ks`, expiring `ttl` from now on the
    /// database's clock ([`Db::now`](crate::Db::now)): from then on it
    /// reads as absent, and compaction drops it.
    pub fn put_with_ttl(
        &mut self,
        ks: &Keyspace,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        ttl: std::time::Duration,
    ) -> Result<()> {
        let at = ks.now().saturating_add(ttl);
        self.put_expiring(ks, key, value, at)
    }

    /// Sets `key` to `value` in `ks` until `expires_at` on the database's
    /// clock: several writes given one expiry (an item and its parts)
    /// expire together.
    pub fn put_expiring(
        &mut self,
        ks: &Keyspace,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        expires_at: Timestamp,
    ) -> Result<()> {
        let (key, value) = (key.as_ref(), value.as_ref());
        check_key(key)?;
        check_value(value)?;
        let prefix = expiry_prefix(expires_at);
        self.push(ks.state(), ValueKind::PutWithTtl, key, &[&prefix, value]);
        Ok(())
    }

    /// Adds a write already checked and in its stored form (see
    /// [`stored_value`]).
    pub(crate) fn push_stored(&mut self, ks: &Keyspace, kind: ValueKind, key: &[u8], value: &[u8]) {
        self.push(ks.state(), kind, key, &[value]);
    }

    /// Deletes `key` from `ks`.
    pub fn delete(&mut self, ks: &Keyspace, key: impl AsRef<[u8]>) -> Result<()> {
        let key = key.as_ref();
        check_key(key)?;
        self.push(ks.state(), ValueKind::Delete, key, &[]);
        Ok(())
    }

    /// Deletes every key of `ks` in `range` (the versions written before
    /// the batch). A write the batch makes after this one, to a key in the
    /// range, stays; one made before it is overwritten. An empty range
    /// writes nothing.
    pub fn delete_range<K: AsRef<[u8]>, R: RangeBounds<K>>(
        &mut self,
        ks: &Keyspace,
        range: R,
    ) -> Result<()> {
        let lo = range.start_bound().map(|k| k.as_ref());
        let hi = range.end_bound().map(|k| k.as_ref());
        for b in [lo, hi] {
            if let std::ops::Bound::Included(k) | std::ops::Bound::Excluded(k) = b {
                check_key(k)?;
            }
        }
        if let Some((start, end)) = crate::bounds::half_open(lo, hi) {
            self.push(ks.state(), ValueKind::RangeDelete, &start, &[&end]);
        }
        Ok(())
    }

    /// Adds a range delete `[start, end)` already in its stored form (a
    /// transaction's).
    pub(crate) fn push_range_delete(&mut self, ks: &Keyspace, start: &[u8], end: &[u8]) {
        self.push(ks.state(), ValueKind::RangeDelete, start, &[end]);
    }

    fn push(&mut self, ks: &Arc<KeyspaceState>, kind: ValueKind, key: &[u8], value: &[&[u8]]) {
        if !self.keyspaces.iter().any(|k| Arc::ptr_eq(k, ks)) {
            self.keyspaces.push(ks.clone());
        }
        self.record.add_parts(kind, ks.id(), key, value);
    }

    /// Number of writes in the batch.
    pub fn len(&self) -> usize {
        self.record.len() as usize
    }

    /// True when the batch holds no write.
    pub fn is_empty(&self) -> bool {
        self.record.is_empty()
    }

    /// Drops every write.
    pub fn clear(&mut self) {
        self.record.clear();
        self.keyspaces.clear();
    }

    /// The keyspaces the batch writes to.
    /// The encoded writes (keyspace ids local to the database) and their
    /// count.
    pub(crate) fn encoded_ops(&self) -> (&[u8], u64) {
        (self.record.ops(), self.record.len())
    }

    pub(crate) fn keyspaces(&self) -> &[Arc<KeyspaceState>] {
        &self.keyspaces
    }

    /// The batch as the commit path takes it (see [`Encoded::new`]).
    pub(crate) fn seal(self) -> Result<Encoded> {
        Encoded::new(self.record, self.keyspaces)
    }
}
