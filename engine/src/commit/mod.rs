//! The commit pipeline: the queue of batches, the group-commit leader, the
//! WAL, and the publication of commit timestamps to readers.
//!
//! Writers queue up; the writer at the head of the queue (the leader) takes
//! every batch queued behind it, has the group validated (transactions
//! plug in through [`Conflicts`]), gives each batch a commit timestamp,
//! writes them to the WAL in one append and at most one sync, inserts them
//! into the memtables, publishes the last timestamp, and wakes the group.
//! A batch enters each part once: queue → WAL → memtable → publish.
//!
//! Locks, in the order they are taken (see also `db`): the queue lock;
//! then the commit lock, which a group holds from its WAL write to its
//! publication so nothing (a memtable switch, a clock advance, a resume)
//! comes between; then the WAL's lock inside [`Logs`]. The leader lets go
//! of the queue lock while it commits, so later writers can queue behind
//! it, and while it waits for room in the memtables.

pub(crate) mod batch;
pub(crate) mod wal;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::keyspaces::KeyspaceState;
use crate::memtable::Memtable;
use crate::timestamp::Clock;
use crate::txn::conflicts::{Conflicts, TxnCheck, Written};
use batch::Encoded;
use strata_format::batch::OpIter;
use strata_format::blob::BlobPointer;
use strata_format::key::ValueKind;
use wal::Logs;

/// Commit groups stop growing past this many bytes of batches.
const MAX_GROUP_BYTES: usize = 4 << 20;

/// How long a leader may wait for a synced group to fill up to the size
/// of the previous one. Without it, writers woken by a sync split into two
/// cohorts that alternate, each syncing half of them: the woken ones queue
/// while the leader already syncs those that queued during the last sync.
/// Waiting for them costs far less than the sync it saves; a lone synced
/// writer (groups of one) never waits.
const LINGER: Duration = Duration::from_micros(100);

/// Commit groups one writer leads in a row at most before handing the lead
/// on (its own caller waits meanwhile).
const MAX_LEAD_ROUNDS: usize = 8;

/// What the pipeline needs from the database around it.
pub(crate) trait CommitHost {
    /// Waits until the memtables have room for the next group, switching
    /// them when full and stalling when flushes fall behind. Called by the
    /// leader with the queue unlocked and no commit in flight.
    fn make_room(&self) -> Result<()>;

    /// Puts the database in the error state after a failed WAL write (its
    /// tail is in doubt); returns the error.
    fn wal_failed(&self, e: Error) -> Error;
}

/// One batch waiting in the commit queue.
struct Request {
    batch: Encoded,
    sync: bool,
    /// Validation of a transaction's commit.
    check: Option<TxnCheck>,
    /// The timestamp the batch must commit at (a batch applied as decided
    /// elsewhere); it then commits in a group of its own.
    at: Option<u64>,
    result: Mutex<Option<Result<u64>>>,
    /// Wakes this writer alone (its result is in, or it leads next), so a
    /// finished group does not wake every queued writer.
    cv: Condvar,
}

/// State of the commit queue.
#[derive(Default)]
struct Queue {
    queue: VecDeque<Arc<Request>>,
    /// The last commit timestamp handed out.
    last_ts: u64,
    /// A writer is leading commit groups (possibly on behalf of the
    /// requests at the head of the queue).
    leading: bool,
    /// The size of the last synced group.
    last_sync_group: usize,
    /// The leader waits for writers to queue (see `LINGER`).
    lingering: bool,
}

/// Traffic through the pipeline.
#[derive(Debug, Default)]
struct Counters {
    wal_bytes: AtomicU64,
    wal_syncs: AtomicU64,
    writes: AtomicU64,
    groups: AtomicU64,
}

/// What [`CommitPipeline::traffic`] reports.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Traffic {
    /// Bytes appended to WALs.
    pub wal_bytes: u64,
    /// WAL syncs.
    pub wal_syncs: u64,
    /// Batches committed.
    pub writes: u64,
    /// Commit groups.
    pub groups: u64,
}

/// The commit pipeline part (see the module doc).
pub(crate) struct CommitPipeline {
    queue: Mutex<Queue>,
    /// Wakes a leader lingering for a synced group's writers.
    arrivals: Condvar,
    /// Held by a commit group from its WAL write to its publication.
    commit_lock: Mutex<()>,
    visible_ts: AtomicU64,
    /// Bytes committed to the active memtables since they were switched.
    active_bytes: AtomicUsize,
    logs: Logs,
    conflicts: Arc<Conflicts>,
    clock: Arc<dyn Clock>,
    counters: Counters,
}

impl CommitPipeline {
    /// A pipeline appending to `logs`, whose last commit was at `last_ts`.
    pub(crate) fn new(
        logs: Logs,
        last_ts: u64,
        conflicts: Arc<Conflicts>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        CommitPipeline {
            queue: Mutex::new(Queue {
                last_ts,
                ..Queue::default()
            }),
            arrivals: Condvar::new(),
            commit_lock: Mutex::new(()),
            visible_ts: AtomicU64::new(last_ts),
            active_bytes: AtomicUsize::new(0),
            logs,
            conflicts,
            clock,
            counters: Counters::default(),
        }
    }

    /// The WALs.
    pub(crate) fn logs(&self) -> &Logs {
        &self.logs
    }

    /// The newest commit timestamp readers may see.
    pub(crate) fn visible_ts(&self) -> u64 {
        self.visible_ts.load(Ordering::Acquire)
    }

    fn publish(&self, ts: u64) {
        self.visible_ts.fetch_max(ts, Ordering::AcqRel);
    }

    /// Bytes committed to the active memtables since the last switch.
    pub(crate) fn active_bytes(&self) -> usize {
        self.active_bytes.load(Ordering::Relaxed)
    }

    /// Called by a memtable switch: the active memtables are new.
    pub(crate) fn memtables_switched(&self) {
        self.active_bytes.store(0, Ordering::Relaxed);
    }

    /// Waits for the commit group in flight, if any, and keeps the next one
    /// from starting while the guard lives: no commit is then between its
    /// WAL write and its memtable inserts.
    pub(crate) fn quiesce(&self) -> MutexGuard<'_, ()> {
        self.commit_lock.lock()
    }

    /// Traffic so far.
    pub(crate) fn traffic(&self) -> Traffic {
        let c = &self.counters;
        Traffic {
            wal_bytes: c.wal_bytes.load(Ordering::Relaxed),
            wal_syncs: c.wal_syncs.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            groups: c.groups.load(Ordering::Relaxed),
        }
    }

    /// Counts a sync of the WAL made outside a commit.
    pub(crate) fn count_sync(&self) {
        self.counters.wal_syncs.fetch_add(1, Ordering::Relaxed);
    }

    /// Makes every later commit timestamp larger than `ts`, and `ts`
    /// visible.
    pub(crate) fn advance_clock(&self, ts: u64) {
        // Holding the queue and the commit lock: no group is between taking
        // its timestamps and publishing them.
        let mut q = self.queue.lock();
        let _commit = self.commit_lock.lock();
        if q.last_ts < ts {
            q.last_ts = ts;
        }
        self.publish(ts);
    }

    /// Wakes every queued writer (at close: they find the database closed).
    pub(crate) fn wake_all(&self) {
        for r in self.queue.lock().queue.iter() {
            r.cv.notify_one();
        }
    }

    /// Commits `batch` (validating it first as a transaction when `check`
    /// is given; at timestamp `at` when given, which must be above every
    /// commit so far) and returns its commit timestamp.
    pub(crate) fn commit(
        &self,
        host: &dyn CommitHost,
        batch: Encoded,
        sync: bool,
        check: Option<TxnCheck>,
        at: Option<u64>,
    ) -> Result<u64> {
        let req = Arc::new(Request {
            batch,
            sync,
            check,
            at,
            result: Mutex::new(None),
            cv: Condvar::new(),
        });
        let mut st = self.queue.lock();
        st.queue.push_back(req.clone());
        if st.lingering {
            self.arrivals.notify_one();
        }
        loop {
            if let Some(r) = req.result.lock().take() {
                return r;
            }
            if !st.leading && st.queue.front().is_some_and(|f| Arc::ptr_eq(f, &req)) {
                break;
            }
            req.cv.wait(&mut st);
        }
        // This writer leads commit groups: its own, then (for a few rounds)
        // those of the writers that queued meanwhile, so that handing the
        // lead to a sleeping thread, a wake-up, stays off the commit path
        // while others wait on a sync.
        st.leading = true;
        let mut rounds = 0;
        loop {
            rounds += 1;
            let finished = match self.lead_group(host, &mut st) {
                Ok(finished) => finished,
                Err(e) => {
                    // The request at the head failed before a group formed.
                    let failed = st.queue.pop_front();
                    if let Some(f) = &failed {
                        *f.result.lock() = Some(Err(e));
                    }
                    failed.into_iter().collect()
                }
            };
            for r in finished {
                if !Arc::ptr_eq(&r, &req) {
                    r.cv.notify_one();
                }
            }
            // A synced writer facing a lone waiter hands it the lead: its
            // own next write then joins that waiter's group instead of
            // waiting for it to be synced alone.
            if rounds >= MAX_LEAD_ROUNDS || st.queue.is_empty() || (req.sync && st.queue.len() == 1)
            {
                break;
            }
        }
        st.leading = false;
        // The next writer in line leads the next group.
        if let Some(next) = st.queue.front() {
            next.cv.notify_one();
        }
        drop(st);
        let result = req.result.lock().take();
        result.unwrap_or(Err(Error::Closed))
    }

    /// Commits the group at the head of the queue; returns the requests
    /// whose results are in, to be woken.
    fn lead_group(
        &self,
        host: &dyn CommitHost,
        st: &mut MutexGuard<'_, Queue>,
    ) -> Result<Vec<Arc<Request>>> {
        MutexGuard::unlocked(st, || host.make_room())?;
        if st.queue.front().is_some_and(|r| r.sync) && st.queue.len() < st.last_sync_group {
            let deadline = Instant::now() + LINGER;
            st.lingering = true;
            while st.queue.len() < st.last_sync_group {
                if self.arrivals.wait_until(st, deadline).timed_out() {
                    break;
                }
            }
            st.lingering = false;
        }
        let group = form_group(&st.queue);
        if group.iter().any(|r| r.sync) {
            st.last_sync_group = group.len();
        }
        let first_ts = match group.first().and_then(|r| r.at) {
            Some(at) if at <= st.last_ts => {
                return Err(Error::InvalidArgument(format!(
                    "a batch applied at timestamp {at} must follow the last commit ({})",
                    st.last_ts
                )));
            }
            Some(at) => at,
            None => crate::timestamp::next_timestamps(st.last_ts, self.clock.now()),
        };
        let mut failed = Vec::new();
        // The keys of the batches that pass, when validation needed them:
        // recorded for running transactions without decoding them again.
        let mut passed_keys: Vec<Option<Written>> = Vec::new();
        let passed = if group.iter().all(|r| r.check.is_none()) {
            // Plain batches: nothing to validate.
            group.clone()
        } else {
            let checks: Vec<Option<&TxnCheck>> = group.iter().map(|r| r.check.as_ref()).collect();
            let keys: Vec<Written> = group.iter().map(|r| r.batch.keys()).collect();
            let verdicts = self.conflicts.validate(&checks, &keys);
            let mut passed = Vec::with_capacity(group.len());
            for ((r, verdict), k) in group.iter().zip(verdicts).zip(keys) {
                match verdict {
                    None => {
                        passed.push(r.clone());
                        passed_keys.push(Some(k));
                    }
                    Some(e) => failed.push((r.clone(), e)),
                }
            }
            passed
        };
        if !passed.is_empty() {
            st.last_ts = first_ts.saturating_add(passed.len() as u64 - 1);
        }
        let outcome = if passed.is_empty() {
            Ok(())
        } else {
            // The commit lock is taken before the queue lock is released, so
            // nothing (a memtable switch, a clock advance) can come between
            // handing out these timestamps and publishing them; it is dropped
            // before the queue lock is taken back, keeping one lock order.
            let commit = self.commit_lock.lock();
            let passed = &passed;
            MutexGuard::unlocked(st, move || {
                let _commit = commit;
                self.commit_group(host, passed, first_ts)
            })
        };
        if outcome.is_ok() {
            self.conflicts.committed(first_ts, passed.len(), |i| {
                passed_keys
                    .get_mut(i)
                    .and_then(Option::take)
                    .unwrap_or_else(|| passed[i].batch.keys())
            });
        }
        for _ in 0..group.len() {
            st.queue.pop_front();
        }
        for (i, r) in passed.iter().enumerate() {
            *r.result.lock() = Some(match &outcome {
                Ok(()) => Ok(first_ts + i as u64),
                Err(e) => Err(e.clone()),
            });
        }
        for (r, e) in failed {
            *r.result.lock() = Some(Err(e));
        }
        Ok(group)
    }

    /// Writes the group to the WAL, inserts it into the memtables, and
    /// publishes its timestamps. Runs without the queue lock, so later
    /// writers can queue up behind it.
    fn commit_group(
        &self,
        host: &dyn CommitHost,
        group: &[Arc<Request>],
        first_ts: u64,
    ) -> Result<()> {
        let sync = group.iter().any(|r| r.sync);
        let (appended, synced, separated, blob) = self
            .logs
            .with_current(|wal| -> Result<_> {
                // Batches holding a value to separate are rewritten with
                // pointers; the values go to the WAL's blob file.
                let mut separated: Vec<Option<Vec<u8>>> = Vec::new();
                if group.iter().any(|r| wal.separates(r.batch.largest_put())) {
                    for r in group {
                        separated.push(if wal.separates(r.batch.largest_put()) {
                            Some(wal.separate(r.batch.ops(), r.batch.count())?)
                        } else {
                            None
                        });
                    }
                }
                let blob = wal.blob_file().filter(|_| !separated.is_empty()).cloned();
                let records = group.iter().enumerate().map(|(i, r)| {
                    let ops = separated.get(i).and_then(Option::as_deref);
                    (r.batch.count(), ops.unwrap_or(r.batch.ops()))
                });
                let (appended, synced) = wal.append_group(first_ts, records, sync)?;
                Ok((appended, synced, separated, blob))
            })
            .map_err(|e| host.wal_failed(e))?;
        self.counters
            .wal_bytes
            .fetch_add(appended, Ordering::Relaxed);
        self.counters
            .wal_syncs
            .fetch_add(u64::from(synced), Ordering::Relaxed);
        // The memtables cannot be switched while the commit lock is held:
        // each keyspace's is looked up once per group.
        let mut memtables: Vec<(u32, Arc<Memtable>, Arc<KeyspaceState>)> = Vec::new();
        for (i, r) in group.iter().enumerate() {
            let ts = first_ts + i as u64;
            let ops = match separated.get(i).and_then(Option::as_deref) {
                Some(ops) => OpIter::new(ops, r.batch.count(), 0),
                None => r.batch.iter(),
            };
            for op in ops {
                let op = op.map_err(|e| host.wal_failed(Error::format("<write batch>", e)))?;
                let at = match memtables.iter().position(|(id, _, _)| *id == op.keyspace) {
                    Some(at) => at,
                    None => {
                        let Some(ks) = r.batch.keyspaces().iter().find(|k| k.id() == op.keyspace)
                        else {
                            continue;
                        };
                        memtables.push((op.keyspace, ks.active_memtable(), ks.clone()));
                        memtables.len() - 1
                    }
                };
                let (_, mem, ks) = &memtables[at];
                let mut value_len = op.value.len();
                if op.kind == ValueKind::BlobPointer {
                    // Kept on disk while the memtable can be read.
                    if let Some(b) = &blob {
                        mem.hold_blob(b);
                    }
                    value_len = BlobPointer::decode(op.value, 0)
                        .map_or(value_len, |p| p.value_len as usize);
                }
                // Copied into the memtable's own chunks rather than kept as
                // a slice of the batch, whose buffer would then live as long
                // as the memtable (see `Memtable::copy_value`).
                mem.insert(op.key, ts, op.kind, mem.copy_value(op.value));
                ks.counters().wrote((op.key.len() + value_len) as u64);
            }
            self.active_bytes
                .fetch_add(r.batch.size(), Ordering::Relaxed);
        }
        self.counters
            .writes
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        self.counters.groups.fetch_add(1, Ordering::Relaxed);
        self.publish(first_ts + group.len() as u64 - 1);
        // After publishing: a reader that sees a keyspace's stamp move
        // reads a state that holds the commit.
        for (i, r) in group.iter().enumerate() {
            for ks in r.batch.keyspaces() {
                ks.note_commit(first_ts + i as u64);
            }
        }
        Ok(())
    }
}

/// The requests at the head of the queue that commit together: up to
/// `MAX_GROUP_BYTES` of batches, and a batch with its own timestamp alone.
fn form_group(queue: &VecDeque<Arc<Request>>) -> Vec<Arc<Request>> {
    let mut group: Vec<Arc<Request>> = Vec::new();
    let mut bytes = 0;
    for r in queue.iter() {
        if !group.is_empty()
            && (bytes + r.batch.size() > MAX_GROUP_BYTES || r.at.is_some() || group[0].at.is_some())
        {
            break;
        }
        bytes += r.batch.size();
        group.push(r.clone());
    }
    group
}
