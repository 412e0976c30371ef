//! Validation of transactions at commit: the log of recent commits'
//! keys, and the check of a commit group against it. The commit pipeline
//! calls [`Conflicts::validate`] for each group before it hands out
//! timestamps, and [`Conflicts::committed`] once the group is published.
//!
//! Locks: one `Mutex` over the log. `Transaction::begin` holds it while it
//! registers its snapshot (the retention lock), so a commit either sees
//! the transaction running or was published before its start.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::bounds::{in_range, overlaps};
use crate::error::{Error, Result};

/// A key of a keyspace.
pub(crate) type KeyRef = (u32, Vec<u8>);
/// A scanned range of a keyspace.
pub(crate) type Range = (u32, Bound<Vec<u8>>, Bound<Vec<u8>>);
/// A range `[start, end)` of a keyspace deleted by a range delete.
pub(crate) type DeletedRange = (u32, Vec<u8>, Vec<u8>);

/// What a commit writes: its keys, and the ranges its range deletes cover
/// (a write to every key in them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Written {
    /// Keys written (puts and deletes).
    pub keys: Vec<KeyRef>,
    /// Ranges deleted.
    pub ranges: Vec<DeletedRange>,
}

/// A transaction's own writes, indexed for the checks against others'.
struct Mine<'a> {
    keys: HashSet<&'a KeyRef>,
    ranges: &'a [DeletedRange],
}

impl<'a> Mine<'a> {
    fn new(w: &'a Written) -> Self {
        Mine {
            keys: w.keys.iter().collect(),
            ranges: &w.ranges,
        }
    }

    /// True when this write set writes `k`.
    fn writes(&self, k: &KeyRef) -> bool {
        self.keys.contains(k) || self.ranges.iter().any(|r| covers(r, k))
    }

    /// True when this write set writes a key of `r`.
    fn writes_in(&self, r: &DeletedRange) -> bool {
        self.keys.iter().any(|k| covers(r, k))
            || self
                .ranges
                .iter()
                .any(|m| m.0 == r.0 && m.1 < r.2 && r.1 < m.2)
    }
}

/// True when the deleted range `r` holds `k`.
fn covers(r: &DeletedRange, k: &KeyRef) -> bool {
    r.0 == k.0 && r.1.as_slice() <= k.1.as_slice() && k.1.as_slice() < r.2.as_slice()
}

/// What a commit must be validated against.
#[derive(Debug)]
pub(crate) struct TxnCheck {
    start: u64,
    serializable: bool,
    reads: HashSet<KeyRef>,
    ranges: Vec<Range>,
    names: BTreeMap<u32, String>,
}

impl TxnCheck {
    /// The check of a transaction that began at `start`, read `reads` and
    /// scanned `ranges`; `names` names the keyspaces it writes, for errors.
    pub(crate) fn new(
        start: u64,
        serializable: bool,
        reads: HashSet<KeyRef>,
        ranges: Vec<Range>,
        names: BTreeMap<u32, String>,
    ) -> Self {
        TxnCheck {
            start,
            serializable,
            reads,
            ranges,
            names,
        }
    }

    /// The start, the isolation, the reads and the scans, for a commit
    /// decided elsewhere.
    pub(crate) fn into_reads(self) -> (u64, bool, HashSet<KeyRef>, Vec<Range>) {
        (self.start, self.serializable, self.reads, self.ranges)
    }

    /// The first key of `written` this transaction conflicts with, given its
    /// own write set `mine`. A deleted range conflicts like a write to each
    /// of its keys: with a key written or read in it, with a scan meeting
    /// it, with a range deleted across it; the conflict names its start.
    fn conflict(&self, mine: &Mine<'_>, written: &Written) -> Option<KeyRef> {
        let key = written.keys.iter().find(|k| {
            mine.writes(k)
                || (self.serializable
                    && (self.reads.contains(*k)
                        || self
                            .ranges
                            .iter()
                            .any(|(ks, lo, hi)| *ks == k.0 && in_range(&k.1, lo, hi))))
        });
        if let Some(k) = key {
            return Some(k.clone());
        }
        written
            .ranges
            .iter()
            .find(|r| {
                mine.writes_in(r)
                    || (self.serializable
                        && (self.reads.iter().any(|k| covers(r, k))
                            || self
                                .ranges
                                .iter()
                                .any(|(ks, lo, hi)| *ks == r.0 && overlaps(lo, hi, &r.1, &r.2))))
            })
            .map(|r| (r.0, r.1.clone()))
    }

    pub(crate) fn to_error(&self, key: KeyRef) -> Error {
        Error::Conflict {
            keyspace: self.names.get(&key.0).cloned().unwrap_or_default(),
            key: key.1,
        }
    }
}

/// The keys written by recent commits, kept while a transaction that began
/// before them is still running; older records are dropped, so the log stays
/// bounded however long the process runs.
#[derive(Debug, Default)]
struct ConflictLog {
    entries: VecDeque<(u64, Arc<Written>)>,
    /// Start timestamps of running transactions.
    starts: BTreeMap<u64, usize>,
}

impl ConflictLog {
    /// True when a running transaction may need the commits made now.
    pub(crate) fn tracking(&self) -> bool {
        !self.starts.is_empty()
    }

    pub(crate) fn record(&mut self, ts: u64, keys: Arc<Written>) {
        self.entries.push_back((ts, keys));
    }

    /// The first conflict of a transaction that began at `check.start` and
    /// writes `mine`, against every commit recorded since.
    fn check(&self, check: &TxnCheck, mine: &Mine<'_>) -> Option<KeyRef> {
        self.entries
            .iter()
            .rev()
            .take_while(|(ts, _)| *ts > check.start)
            .find_map(|(_, keys)| check.conflict(mine, keys))
    }

    pub(crate) fn begin(&mut self, start: u64) {
        *self.starts.entry(start).or_insert(0) += 1;
    }

    pub(crate) fn end(&mut self, start: u64) {
        if let Some(n) = self.starts.get_mut(&start) {
            *n -= 1;
            if *n == 0 {
                self.starts.remove(&start);
            }
        }
        self.prune();
    }

    /// Drops records no running transaction can conflict with.
    pub(crate) fn prune(&mut self) {
        match self.starts.first_key_value() {
            None => self.entries.clear(),
            Some((&oldest, _)) => {
                while self.entries.front().is_some_and(|(ts, _)| *ts <= oldest) {
                    self.entries.pop_front();
                }
            }
        }
    }

    /// Records held (for tests of boundedness).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The conflict log part (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct Conflicts {
    log: Mutex<ConflictLog>,
}

impl Conflicts {
    /// Starts tracking commits for a transaction: `register` (which
    /// registers its snapshot and returns its start timestamp) runs under
    /// the log's lock.
    pub(crate) fn begin(&self, register: impl FnOnce() -> Result<u64>) -> Result<u64> {
        let mut log = self.log.lock();
        let start = register()?;
        log.begin(start);
        Ok(start)
    }

    /// Stops tracking for a transaction that began at `start`.
    pub(crate) fn end(&self, start: u64) {
        self.log.lock().end(start);
    }

    /// Records held (bounded by the oldest running transaction).
    pub(crate) fn len(&self) -> usize {
        self.log.lock().len()
    }

    /// Validates a commit group in queue order: member `i` carries the
    /// check `checks[i]` (none for a plain batch) and writes `keys[i]`. A
    /// transaction conflicts with the commits made since it began and with
    /// the earlier members of its group that passed. Returns, per member,
    /// the conflict that fails it.
    pub(crate) fn validate(
        &self,
        checks: &[Option<&TxnCheck>],
        keys: &[Written],
    ) -> Vec<Option<Error>> {
        if checks.iter().all(Option::is_none) {
            return vec![None; checks.len()];
        }
        let log = self.log.lock();
        let mut passed: Vec<&Written> = Vec::with_capacity(checks.len());
        let mut out = Vec::with_capacity(checks.len());
        for (check, written) in checks.iter().zip(keys) {
            if let Some(check) = check {
                let mine = Mine::new(written);
                let conflict = log
                    .check(check, &mine)
                    .or_else(|| passed.iter().find_map(|p| check.conflict(&mine, p)));
                if let Some(key) = conflict {
                    out.push(Some(check.to_error(key)));
                    continue;
                }
            }
            passed.push(written);
            out.push(None);
        }
        out
    }

    /// Records the writes of a published group, the `i`th committed at
    /// `first_ts + i`, for the transactions running now (one that begins
    /// later starts after them).
    pub(crate) fn committed(
        &self,
        first_ts: u64,
        n: usize,
        mut keys: impl FnMut(usize) -> Written,
    ) {
        let mut log = self.log.lock();
        if log.tracking() {
            for i in 0..n {
                log.record(first_ts + i as u64, Arc::new(keys(i)));
            }
        }
        log.prune();
    }
}
