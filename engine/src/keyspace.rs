//! Keyspace handles: the key-value API of one named tree.

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use bytes::Bytes;

use crate::bounds::prefix_upper;
use crate::commit::batch::check_key;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::iter::Iter;
use crate::keyspaces::KeyspaceState;
use crate::options::WriteOptions;
use crate::timestamp::Timestamp;
use crate::write_batch::WriteBatch;

/// A value read from the database: shared bytes, cheap to clone.
pub type Value = Bytes;

/// One version of a key, as [`Keyspace::history`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The commit timestamp of the write.
    pub ts: Timestamp,
    /// The value written, or `None` for a delete.
    pub value: Option<Value>,
    /// When the value expires, for a write with a TTL.
    pub expires_at: Option<Timestamp>,
}

/// A handle on one keyspace. Cheap to clone; keeps the database open.
#[derive(Clone)]
pub struct Keyspace {
    db: Db,
    state: Arc<KeyspaceState>,
}

impl std::fmt::Debug for Keyspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyspace")
            .field("name", &self.state.name())
            .finish_non_exhaustive()
    }
}

pub(crate) fn owned(b: Bound<&[u8]>) -> Bound<Vec<u8>> {
    match b {
        Bound::Included(k) => Bound::Included(k.to_vec()),
        Bound::Excluded(k) => Bound::Excluded(k.to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl Keyspace {
    pub(crate) fn new(db: Db, state: Arc<KeyspaceState>) -> Self {
        Keyspace { db, state }
    }

    pub(crate) fn state(&self) -> &Arc<KeyspaceState> {
        &self.state
    }

    /// Checks that this keyspace is live and belongs to `db`.
    pub(crate) fn check_of(&self, db: &Db) -> Result<()> {
        self.check()?;
        if !Arc::ptr_eq(&self.db.inner, &db.inner) {
            return Err(Error::InvalidArgument(format!(
                "keyspace {:?} belongs to another database",
                self.state.name()
            )));
        }
        Ok(())
    }

    /// Checks that this keyspace is live and of the same database as
    /// `other`.
    pub(crate) fn check_same_db(&self, other: &Keyspace) -> Result<()> {
        self.check_of(&other.db)
    }

    fn check(&self) -> Result<()> {
        self.db.inner.check_open()?;
        if self.state.is_dropped() {
            return Err(Error::KeyspaceNotFound(self.state.name().to_owned()));
        }
        Ok(())
    }

    /// The database's clock as TTL entries are judged (see
    /// [`Db::now`](crate::Db::now)).
    pub(crate) fn now(&self) -> Timestamp {
        Timestamp(self.db.inner.expiry_now())
    }

    /// The keyspace's name.
    pub fn name(&self) -> &str {
        self.state.name()
    }

    /// The newest commit timestamp written into this keyspace since the
    /// database opened (0 for none): a cache of the keyspace's contents is
    /// stale when it moved, which on a replica is how writes applied from
    /// the log show.
    pub fn last_commit_ts(&self) -> Timestamp {
        Timestamp(self.state.last_commit())
    }

    /// Sets `key` to `value` (not synced: see [`WriteOptions`]). Returns the
    /// commit timestamp.
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<Timestamp> {
        let mut b = WriteBatch::new();
        b.put(self, key, value)?;
        self.db.write(b, WriteOptions::default())
    }

    /// Sets `key` to `value` until `ttl` from now; from then on the key
    /// reads as absent (also to reads of the past after the expiry), and
    /// compaction drops it.
    pub fn put_with_ttl(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        ttl: std::time::Duration,
    ) -> Result<Timestamp> {
        let mut b = WriteBatch::new();
        b.put_with_ttl(self, key, value, ttl)?;
        self.db.write(b, WriteOptions::default())
    }

    /// The value of `key` as of `ts`, inside the history window
    /// ([`Error::HistoryUnavailable`] before it).
    pub fn get_at(&self, key: impl AsRef<[u8]>, ts: Timestamp) -> Result<Option<Value>> {
        self.check()?;
        let key = key.as_ref();
        check_key(key)?;
        self.db.inner.view_at(&self.state, ts.as_u64())?.get(key)
    }

    /// The entries in `range` as of `ts`, inside the history window.
    pub fn range_at<K: AsRef<[u8]>, R: RangeBounds<K>>(
        &self,
        range: R,
        ts: Timestamp,
    ) -> Result<Iter> {
        self.check()?;
        let lower = owned(range.start_bound().map(|k| k.as_ref()));
        let upper = owned(range.end_bound().map(|k| k.as_ref()));
        Ok(Iter::new(
            self.db.inner.view_at(&self.state, ts.as_u64())?,
            lower,
            upper,
        ))
    }

    /// The versions of `key` in the history window, newest first: every
    /// write (or delete) since the window's start, and the one in effect at
    /// its start.
    pub fn history(&self, key: impl AsRef<[u8]>) -> Result<Vec<Version>> {
        self.check()?;
        let key = key.as_ref();
        check_key(key)?;
        let view = self.db.inner.read_view(&self.state);
        let oldest = self.db.inner.available_from();
        crate::history::versions(&view, key, oldest)
    }

    /// Deletes every key in `range` (start inclusive or exclusive, end
    /// likewise, or unbounded, as for [`range`](Self::range)) with one
    /// range tombstone, whatever the number of keys. Returns the commit
    /// timestamp: reads at it or later see none of those keys until they
    /// are written again, reads of the past still do.
    pub fn delete_range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Result<Timestamp> {
        let mut b = WriteBatch::new();
        b.delete_range(self, range)?;
        self.db.write(b, WriteOptions::default())
    }

    /// Deletes `key`. Returns the commit timestamp.
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<Timestamp> {
        let mut b = WriteBatch::new();
        b.delete(self, key)?;
        self.db.write(b, WriteOptions::default())
    }

    /// The value of `key`, if any.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        self.check()?;
        let key = key.as_ref();
        check_key(key)?;
        self.db.inner.point_read(&self.state, |v| v.get(key))
    }

    /// The version of `key` visible now, with its commit timestamp and
    /// expiry.
    pub fn get_entry(&self, key: impl AsRef<[u8]>) -> Result<Option<crate::reader::Entry>> {
        self.check()?;
        let key = key.as_ref();
        check_key(key)?;
        self.db.inner.point_read(&self.state, |v| v.get_entry(key))
    }

    /// The version of `key` visible at `ts`, inside the history window.
    pub fn get_entry_at(
        &self,
        key: impl AsRef<[u8]>,
        ts: Timestamp,
    ) -> Result<Option<crate::reader::Entry>> {
        self.check()?;
        let key = key.as_ref();
        check_key(key)?;
        self.db
            .inner
            .view_at(&self.state, ts.as_u64())?
            .get_entry(key)
    }

    /// True when `key` has a value.
    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// The entries with keys in `range`, in key order (or reversed with
    /// `.rev()`), as of the moment of the call.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Result<Iter> {
        self.check()?;
        let lower = owned(range.start_bound().map(|k| k.as_ref()));
        let upper = owned(range.end_bound().map(|k| k.as_ref()));
        Ok(Iter::new(
            self.db.inner.read_view(&self.state),
            lower,
            upper,
        ))
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> Result<Iter> {
        self.range::<&[u8], _>(..)
    }

    /// The entries whose keys start with `prefix`.
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> Result<Iter> {
        self.check()?;
        let p = prefix.as_ref();
        Ok(Iter::new(
            self.db.inner.read_view(&self.state),
            Bound::Included(p.to_vec()),
            prefix_upper(p),
        ))
    }
}
