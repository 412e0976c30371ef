//! Snapshots: a consistent, repeatable read view over every keyspace.

use std::ops::RangeBounds;

use crate::bounds::prefix_upper;
use crate::commit::batch::check_key;
use crate::db::Db;
use crate::error::Result;
use crate::iter::Iter;
use crate::keyspace::{owned, Keyspace, Value};
use crate::timestamp::Timestamp;

/// The state of the whole database as of one timestamp. While it lives,
/// compaction keeps every version it can see; reads through it are
/// repeatable and consistent across keyspaces.
pub struct Snapshot {
    db: Db,
    ts: u64,
    /// When TTL entries are judged: the clock's time at creation for a
    /// snapshot of the present, else `ts`.
    expiry_ts: u64,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("ts", &self.ts).finish()
    }
}

impl Snapshot {
    pub(crate) fn new(db: Db, at: Option<Timestamp>) -> Result<Snapshot> {
        db.inner.check_open()?;
        let ts = db.inner.register_snapshot(at.map(|t| t.as_u64()))?;
        let expiry_ts = match at {
            Some(_) => ts,
            None => ts.max(db.inner.expiry_now()),
        };
        Ok(Snapshot { db, ts, expiry_ts })
    }

    /// The timestamp the snapshot reads at.
    pub fn ts(&self) -> Timestamp {
        Timestamp(self.ts)
    }

    /// The value of `key` in `ks` as of the snapshot.
    pub fn get(&self, ks: &Keyspace, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        ks.check_of(&self.db)?;
        let key = key.as_ref();
        check_key(key)?;
        self.db
            .inner
            .point_read_registered(ks.state(), self.ts, self.expiry_ts, |v| v.get(key))
    }

    /// The version of `key` in `ks` as of the snapshot, with its commit
    /// timestamp and expiry.
    pub fn get_entry(
        &self,
        ks: &Keyspace,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<crate::reader::Entry>> {
        ks.check_of(&self.db)?;
        let key = key.as_ref();
        check_key(key)?;
        self.db
            .inner
            .point_read_registered(ks.state(), self.ts, self.expiry_ts, |v| v.get_entry(key))
    }

    /// The entries of `ks` in `range` as of the snapshot.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(
        &self,
        ks: &Keyspace,
        range: R,
    ) -> Result<Iter> {
        ks.check_of(&self.db)?;
        let lo = owned(range.start_bound().map(|k| k.as_ref()));
        let hi = owned(range.end_bound().map(|k| k.as_ref()));
        Ok(Iter::new(
            self.db
                .inner
                .view_at_registered(ks.state(), self.ts, self.expiry_ts),
            lo,
            hi,
        ))
    }

    /// The entries of `ks` whose keys start with `prefix`.
    pub fn prefix(&self, ks: &Keyspace, prefix: impl AsRef<[u8]>) -> Result<Iter> {
        ks.check_of(&self.db)?;
        let p = prefix.as_ref();
        Ok(Iter::new(
            self.db
                .inner
                .view_at_registered(ks.state(), self.ts, self.expiry_ts),
            std::ops::Bound::Included(p.to_vec()),
            prefix_upper(p),
        ))
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        self.db.inner.release_snapshot(self.ts);
    }
}
