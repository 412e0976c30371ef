//! Where a document operation reads: a snapshot (now or as of a past
//! time) or a transaction (seeing its own writes). Index entries and
//! documents are always read from the same source, so they agree.

use std::ops::Bound;

use strata_engine::{Keyspace, KvPair, Snapshot, Transaction, Value};

/// Entries of a range, in either direction.
pub(crate) type Entries<'a> = Box<dyn Iterator<Item = strata_engine::Result<KvPair>> + 'a>;

/// A consistent read view.
pub(crate) enum Source<'a> {
    /// A snapshot.
    Snapshot(&'a Snapshot),
    /// A transaction.
    Transaction(&'a mut Transaction),
}

impl Source<'_> {
    /// The value under `key`.
    pub(crate) fn get(
        &mut self,
        ks: &Keyspace,
        key: &[u8],
    ) -> strata_engine::Result<Option<Value>> {
        match self {
            Source::Snapshot(s) => s.get(ks, key),
            Source::Transaction(t) => t.get(ks, key),
        }
    }

    /// The entries in `[lo, hi)`, ascending or descending.
    pub(crate) fn range(
        &mut self,
        ks: &Keyspace,
        lo: Vec<u8>,
        hi: Option<Vec<u8>>,
        reverse: bool,
    ) -> strata_engine::Result<Entries<'static>> {
        let hi = hi.map_or(Bound::Unbounded, Bound::Excluded);
        let range = (Bound::Included(lo), hi);
        Ok(match self {
            Source::Snapshot(s) => {
                let it = s.range(ks, range)?;
                if reverse {
                    Box::new(it.rev())
                } else {
                    Box::new(it)
                }
            }
            Source::Transaction(t) => {
                let it = t.range(ks, range)?;
                if reverse {
                    Box::new(it.rev())
                } else {
                    Box::new(it)
                }
            }
        })
    }
}
