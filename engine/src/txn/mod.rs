//! Transactions: optimistic concurrency over MVCC snapshots.
//!
//! A transaction reads the snapshot at its start timestamp (plus its own
//! writes) and buffers its writes. At commit, the group-commit leader
//! validates it against the commits made since it began, recorded in the
//! [`ConflictLog`]: under snapshot isolation a key it writes must not have
//! been written by them (first committer wins); under serializable
//! isolation neither may any key it read, nor any key in a range it
//! scanned. A range delete counts as a write to every key in its range. A
//! transaction that passes is committed as one batch: one WAL record, one
//! commit timestamp.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::ops::{Bound, RangeBounds};
use std::time::Duration;

use bytes::Bytes;
use strata_format::key::ValueKind;

use crate::bounds::{below_upper, half_open, prefix_upper};
use crate::commit::batch::{check_key, stored_value};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::iter::{Iter, KvPair};
use crate::keyspace::{Keyspace, Value};
use crate::options::WriteOptions;
use crate::reader::Entry;
use crate::timestamp::Timestamp;
use crate::view::ReadView;
use crate::write_batch::WriteBatch;

pub(crate) mod conflicts;
mod retry;

pub(crate) use conflicts::{Conflicts, KeyRef, Range, TxnCheck};
pub use retry::{Retryable, TxnOptions};

/// How much a transaction is isolated from concurrent ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Reads see the snapshot at the start; a commit fails if another
    /// transaction committed a write to one of its keys after it began
    /// (first committer wins). Write skew is possible.
    Snapshot,
    /// Snapshot isolation, and a commit also fails if anything it read —
    /// point reads and scanned ranges, so phantoms count — was written by a
    /// commit after it began. Equivalent to some serial order.
    Serializable,
}

/// A write buffered in a transaction.
#[derive(Clone)]
struct Pending {
    ks: Keyspace,
    kind: ValueKind,
    value: Bytes,
}

/// An optimistic transaction over any keyspaces. Reads see the state at its
/// start plus its own writes; nothing is visible to others until
/// [`commit`](Self::commit). Dropping it uncommitted rolls it back.
pub struct Transaction {
    db: Db,
    isolation: Isolation,
    start: u64,
    /// When its reads judge TTL entries: the clock's time at begin.
    expiry: u64,
    writes: BTreeMap<KeyRef, Pending>,
    /// Ranges deleted, `[start, end)`, in the order deleted; the writes
    /// buffered before each were dropped from `writes`, so a write still
    /// buffered in a deleted range came after it and wins.
    range_deletes: Vec<(Keyspace, Vec<u8>, Vec<u8>)>,
    reads: HashSet<KeyRef>,
    ranges: Vec<Range>,
    done: bool,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("isolation", &self.isolation)
            .field("start", &self.start)
            .field("writes", &self.writes.len())
            .finish_non_exhaustive()
    }
}

impl Transaction {
    pub(crate) fn begin(db: Db, isolation: Isolation) -> Result<Transaction> {
        db.inner.check_writable()?;
        // Registered as a snapshot (so compaction keeps what it reads) and in
        // the conflict log (so commits from now on are recorded for it),
        // under the log's lock: a commit either sees this transaction
        // running, or published before its start.
        let start = db.inner.begin_transaction()?;
        let expiry = start.max(db.inner.expiry_now());
        Ok(Transaction {
            db,
            isolation,
            start,
            expiry,
            writes: BTreeMap::new(),
            range_deletes: Vec::new(),
            reads: HashSet::new(),
            ranges: Vec::new(),
            done: false,
        })
    }

    /// The timestamp of the snapshot this transaction reads.
    pub fn start_ts(&self) -> Timestamp {
        Timestamp(self.start)
    }

    /// The isolation level.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    fn check_live(&self, ks: &Keyspace) -> Result<()> {
        if self.done {
            return Err(Error::InvalidArgument(
                "transaction already finished".into(),
            ));
        }
        ks.check_of(&self.db)
    }

    fn view(&self, ks: &Keyspace) -> ReadView {
        self.db
            .inner
            .view_at_registered(ks.state(), self.start, self.expiry)
    }

    /// The value of `key` in `ks`: the transaction's own write if any, else
    /// the snapshot's.
    pub fn get(&mut self, ks: &Keyspace, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        Ok(self.get_entry(ks, key)?.map(|e| e.value))
    }

    /// Like [`get`](Self::get), with the version's commit timestamp
    /// (`None` for the transaction's own write) and expiry.
    pub fn get_entry(&mut self, ks: &Keyspace, key: impl AsRef<[u8]>) -> Result<Option<Entry>> {
        self.check_live(ks)?;
        let key = key.as_ref();
        check_key(key)?;
        let k = (ks.state().id(), key.to_vec());
        if let Some(p) = self.writes.get(&k) {
            return Ok(self.own_entry(p));
        }
        if self.deletes(k.0, key) {
            // Its own range delete decides, whatever others commit.
            return Ok(None);
        }
        if self.isolation == Isolation::Serializable {
            self.reads.insert(k);
        }
        self.db
            .inner
            .point_read_registered(ks.state(), self.start, self.expiry, |v| v.get_entry(key))
    }

    /// What the transaction's own write shows its reads.
    fn own_entry(&self, p: &Pending) -> Option<Entry> {
        // At the transaction's fixed expiry time, like its snapshot reads,
        // so reading its own write again gives the same answer.
        crate::view::resolve_entry(p.kind, p.value.clone(), 0, self.expiry)
            .map(|e| Entry { ts: None, ..e })
    }

    /// Sets `key` to `value` in `ks` when the transaction commits.
    pub fn put(
        &mut self,
        ks: &Keyspace,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<()> {
        self.check_live(ks)?;
        let key = key.as_ref();
        let (kind, value) = stored_value(key, value.as_ref(), None)?;
        self.buffer(ks, key, kind, value);
        Ok(())
    }

    /// Like [`put`](Self::put), with the entry expiring `ttl` from now on
    /// the database's clock.
    pub fn put_with_ttl(
        &mut self,
        ks: &Keyspace,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        ttl: Duration,
    ) -> Result<()> {
        let at = Timestamp(self.db.inner.expiry_now()).saturating_add(ttl);
        self.put_expiring(ks, key, value, at)
    }

    /// Like [`put`](Self::put), with the entry expiring at `expires_at` on
    /// the database's clock.
    pub fn put_expiring(
        &mut self,
        ks: &Keyspace,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        expires_at: Timestamp,
    ) -> Result<()> {
        self.check_live(ks)?;
        let key = key.as_ref();
        let (kind, value) = stored_value(key, value.as_ref(), Some(expires_at))?;
        self.buffer(ks, key, kind, value);
        Ok(())
    }

    /// Deletes `key` from `ks` when the transaction commits.
    pub fn delete(&mut self, ks: &Keyspace, key: impl AsRef<[u8]>) -> Result<()> {
        self.check_live(ks)?;
        let key = key.as_ref();
        check_key(key)?;
        self.buffer(ks, key, ValueKind::Delete, Bytes::new());
        Ok(())
    }

    /// Deletes every key of `ks` in `range` when the transaction commits:
    /// the transaction's earlier writes there are dropped, its later ones
    /// stay. Its reads see the range empty but for those later writes. A
    /// serializable commit fails if another transaction committed a write
    /// in the range since this one began, and a transaction that read or
    /// scanned in the range fails if this one commits first.
    pub fn delete_range<K: AsRef<[u8]>, R: RangeBounds<K>>(
        &mut self,
        ks: &Keyspace,
        range: R,
    ) -> Result<()> {
        self.check_live(ks)?;
        let lo = range.start_bound().map(|k| k.as_ref());
        let hi = range.end_bound().map(|k| k.as_ref());
        for b in [lo, hi] {
            if let Bound::Included(k) | Bound::Excluded(k) = b {
                check_key(k)?;
            }
        }
        let Some((start, end)) = half_open(lo, hi) else {
            return Ok(());
        };
        let id = ks.state().id();
        self.writes
            .retain(|(k, key), _| *k != id || key.as_slice() < start.as_slice() || key >= &end);
        self.range_deletes.push((ks.clone(), start, end));
        Ok(())
    }

    /// True when one of the transaction's range deletes covers `key` of
    /// keyspace `id`.
    fn deletes(&self, id: u32, key: &[u8]) -> bool {
        self.range_deletes
            .iter()
            .any(|(ks, s, e)| ks.state().id() == id && s.as_slice() <= key && key < e.as_slice())
    }

    fn buffer(&mut self, ks: &Keyspace, key: &[u8], kind: ValueKind, value: Bytes) {
        self.writes.insert(
            (ks.state().id(), key.to_vec()),
            Pending {
                ks: ks.clone(),
                kind,
                value,
            },
        );
    }

    /// The entries of `ks` in `range` as the transaction sees them: the
    /// snapshot merged with its own writes.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(
        &mut self,
        ks: &Keyspace,
        range: R,
    ) -> Result<TxIter> {
        self.check_live(ks)?;
        let lo = crate::keyspace::owned(range.start_bound().map(|k| k.as_ref()));
        let hi = crate::keyspace::owned(range.end_bound().map(|k| k.as_ref()));
        Ok(self.scan(ks, lo, hi))
    }

    /// The entries of `ks` whose keys start with `prefix`.
    pub fn prefix(&mut self, ks: &Keyspace, prefix: impl AsRef<[u8]>) -> Result<TxIter> {
        self.check_live(ks)?;
        let p = prefix.as_ref();
        Ok(self.scan(ks, Bound::Included(p.to_vec()), prefix_upper(p)))
    }

    fn scan(&mut self, ks: &Keyspace, lo: Bound<Vec<u8>>, hi: Bound<Vec<u8>>) -> TxIter {
        let id = ks.state().id();
        if self.isolation == Isolation::Serializable {
            self.ranges.push((id, lo.clone(), hi.clone()));
        }
        // Only the buffered writes inside the range are visited: a scan
        // in a transaction that wrote much stays as cheap as the range.
        let start = match &lo {
            Bound::Included(k) => Bound::Included((id, k.clone())),
            Bound::Excluded(k) => Bound::Excluded((id, k.clone())),
            Bound::Unbounded => Bound::Included((id, Vec::new())),
        };
        let local: VecDeque<(Bytes, Option<Bytes>)> = self
            .writes
            .range((start, Bound::Unbounded))
            .take_while(|((k, key), _)| *k == id && below_upper(key, &hi))
            .map(|((_, key), p)| {
                let v = self.own_entry(p).map(|e| e.value);
                (Bytes::copy_from_slice(key), v)
            })
            .collect();
        let deleted = self
            .range_deletes
            .iter()
            .filter(|(k, ..)| k.state().id() == id)
            .map(|(_, s, e)| (s.clone(), e.clone()))
            .collect();
        TxIter {
            base: Iter::new(self.view(ks), lo, hi),
            deleted,
            local,
            front: None,
            back: None,
            base_done: false,
        }
    }

    /// Validates and commits the transaction (not synced; see
    /// [`commit_with`](Self::commit_with)). Returns its commit timestamp.
    pub fn commit(self) -> Result<Timestamp> {
        self.commit_with(WriteOptions::default())
    }

    /// Validates and commits with the given durability. On
    /// [`Error::Conflict`] nothing was written.
    pub fn commit_with(mut self, opts: WriteOptions) -> Result<Timestamp> {
        if self.done {
            return Err(Error::InvalidArgument(
                "transaction already finished".into(),
            ));
        }
        let writes = std::mem::take(&mut self.writes);
        let range_deletes = std::mem::take(&mut self.range_deletes);
        let result = if writes.is_empty() && range_deletes.is_empty() {
            // A read-only transaction read one consistent snapshot.
            Ok(Timestamp(self.start))
        } else {
            let mut batch = WriteBatch::new();
            let mut names = BTreeMap::new();
            // Range deletes first: the writes still buffered came after
            // them, and a batch keeps a write that follows a range delete.
            for (ks, start, end) in range_deletes {
                names.insert(ks.state().id(), ks.name().to_owned());
                batch.push_range_delete(&ks, &start, &end);
            }
            for ((id, key), p) in writes {
                names.insert(id, p.ks.name().to_owned());
                batch.push_stored(&p.ks, p.kind, &key, &p.value);
            }
            let check = TxnCheck::new(
                self.start,
                self.isolation == Isolation::Serializable,
                std::mem::take(&mut self.reads),
                std::mem::take(&mut self.ranges),
                names,
            );
            self.db.inner.commit(batch, opts, Some(check))
        };
        self.finish();
        result
    }

    /// Discards the transaction's writes.
    pub fn rollback(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if !self.done {
            self.done = true;
            self.db.inner.end_transaction(self.start);
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A transaction's view of a range: its snapshot merged with its own
/// writes (which win), in both directions.
pub struct TxIter {
    base: Iter,
    /// The transaction's own range deletes in this keyspace: base entries
    /// in them are skipped (its later writes there are in `local`).
    deleted: Vec<(Vec<u8>, Vec<u8>)>,
    local: VecDeque<(Bytes, Option<Bytes>)>,
    front: Option<KvPair>,
    back: Option<KvPair>,
    base_done: bool,
}

impl std::fmt::Debug for TxIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxIter")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl TxIter {
    /// The next base entry from the front, stealing the back's peeked one
    /// when the base has met itself.
    /// True when the transaction deleted `key` by a range delete.
    fn is_deleted(&self, key: &[u8]) -> bool {
        self.deleted
            .iter()
            .any(|(s, e)| s.as_slice() <= key && key < e.as_slice())
    }

    fn peek_front(&mut self) -> Result<Option<&KvPair>> {
        while self.front.is_none() && !self.base_done {
            match self.base.next() {
                Some(r) => {
                    let kv = r?;
                    if !self.is_deleted(&kv.0) {
                        self.front = Some(kv);
                    }
                }
                None => {
                    self.base_done = true;
                }
            }
        }
        if self.front.is_none() && self.base_done {
            self.front = self.back.take();
        }
        Ok(self.front.as_ref())
    }

    fn peek_back(&mut self) -> Result<Option<&KvPair>> {
        while self.back.is_none() && !self.base_done {
            match self.base.next_back() {
                Some(r) => {
                    let kv = r?;
                    if !self.is_deleted(&kv.0) {
                        self.back = Some(kv);
                    }
                }
                None => {
                    self.base_done = true;
                }
            }
        }
        if self.back.is_none() && self.base_done {
            self.back = self.front.take();
        }
        Ok(self.back.as_ref())
    }

    fn step_front(&mut self) -> Result<Option<KvPair>> {
        loop {
            let base_key = self.peek_front()?.map(|(k, _)| k.clone());
            let local_key = self.local.front().map(|(k, _)| k.clone());
            match (base_key, local_key) {
                (None, None) => return Ok(None),
                (Some(_), None) => return Ok(self.front.take()),
                (b, Some(l)) => {
                    if let Some(b) = &b {
                        if *b < l {
                            return Ok(self.front.take());
                        }
                        if *b == l {
                            self.front = None;
                        }
                    }
                    let Some((k, v)) = self.local.pop_front() else {
                        return Ok(None);
                    };
                    if let Some(v) = v {
                        return Ok(Some((k, v)));
                    }
                }
            }
        }
    }

    fn step_back(&mut self) -> Result<Option<KvPair>> {
        loop {
            let base_key = self.peek_back()?.map(|(k, _)| k.clone());
            let local_key = self.local.back().map(|(k, _)| k.clone());
            match (base_key, local_key) {
                (None, None) => return Ok(None),
                (Some(_), None) => return Ok(self.back.take()),
                (b, Some(l)) => {
                    if let Some(b) = &b {
                        if *b > l {
                            return Ok(self.back.take());
                        }
                        if *b == l {
                            self.back = None;
                        }
                    }
                    let Some((k, v)) = self.local.pop_back() else {
                        return Ok(None);
                    };
                    if let Some(v) = v {
                        return Ok(Some((k, v)));
                    }
                }
            }
        }
    }
}

impl Iterator for TxIter {
    type Item = Result<KvPair>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step_front().transpose()
    }
}

impl DoubleEndedIterator for TxIter {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step_back().transpose()
    }
}
