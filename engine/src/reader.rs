//! The one read interface of the engine: [`Reader`], implemented by a
//! [`Keyspace`] handle (the present), a [`Snapshot`] (one timestamp) and a
//! [`Transaction`] (its snapshot plus its own writes, its reads recorded
//! for validation). Code that reads the same way in all three (a query
//! planner, an index check) takes a `&mut dyn Reader`.

use std::ops::Bound;

use crate::bounds::prefix_upper;
use crate::error::Result;
use crate::iter::KvPair;
use crate::keyspace::{Keyspace, Value};
use crate::timestamp::Timestamp;

/// Entries of a range, in key order or (with `.rev()`) reversed.
pub type Entries = Box<dyn DoubleEndedIterator<Item = Result<KvPair>> + Send>;

/// A value as read, with what the engine knows of its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The value (a TTL entry's expiry prefix stripped).
    pub value: Value,
    /// The commit timestamp of the version; `None` for a transaction's own
    /// write, which has none yet.
    pub ts: Option<Timestamp>,
    /// When the version expires, for a write with a TTL.
    pub expires_at: Option<Timestamp>,
}

/// Reads of keyspaces at one point of view: the present, a snapshot, or
/// a transaction. Methods take `&mut self` because a serializable
/// transaction records what it reads.
pub trait Reader {
    /// The version of `key` in `ks` this reader sees, with its timestamps.
    fn get_entry(&mut self, ks: &Keyspace, key: &[u8]) -> Result<Option<Entry>>;

    /// The entries of `ks` between `lo` and `hi`.
    fn range(&mut self, ks: &Keyspace, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Result<Entries>;

    /// The timestamp this reader reads at, when it is one fixed timestamp
    /// (a snapshot, a transaction); `None` for the present, which moves.
    fn read_ts(&self) -> Option<Timestamp>;

    /// The value of `key` in `ks`.
    fn get(&mut self, ks: &Keyspace, key: &[u8]) -> Result<Option<Value>> {
        Ok(self.get_entry(ks, key)?.map(|e| e.value))
    }

    /// The entries of `ks` whose keys start with `prefix`.
    fn prefix(&mut self, ks: &Keyspace, prefix: &[u8]) -> Result<Entries> {
        let hi = prefix_upper(prefix);
        self.range(ks, Bound::Included(prefix), hi.as_ref().map(Vec::as_slice))
    }
}

/// A keyspace handle reads the present state of any keyspace of its
/// database (usually itself): each call sees the newest commits.
impl Reader for Keyspace {
    fn get_entry(&mut self, ks: &Keyspace, key: &[u8]) -> Result<Option<Entry>> {
        ks.check_same_db(self)?;
        ks.get_entry(key)
    }

    fn range(&mut self, ks: &Keyspace, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Result<Entries> {
        ks.check_same_db(self)?;
        Ok(Box::new(ks.range::<&[u8], _>((lo, hi))?))
    }

    fn read_ts(&self) -> Option<Timestamp> {
        None
    }
}

impl Reader for crate::Snapshot {
    fn get_entry(&mut self, ks: &Keyspace, key: &[u8]) -> Result<Option<Entry>> {
        crate::Snapshot::get_entry(self, ks, key)
    }

    fn range(&mut self, ks: &Keyspace, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Result<Entries> {
        Ok(Box::new(crate::Snapshot::range::<&[u8], _>(
            self,
            ks,
            (lo, hi),
        )?))
    }

    fn read_ts(&self) -> Option<Timestamp> {
        Some(self.ts())
    }
}

impl Reader for crate::Transaction {
    fn get_entry(&mut self, ks: &Keyspace, key: &[u8]) -> Result<Option<Entry>> {
        crate::Transaction::get_entry(self, ks, key)
    }

    fn range(&mut self, ks: &Keyspace, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Result<Entries> {
        Ok(Box::new(crate::Transaction::range::<&[u8], _>(
            self,
            ks,
            (lo, hi),
        )?))
    }

    fn read_ts(&self) -> Option<Timestamp> {
        Some(self.start_ts())
    }
}
