//! The write path: batches, group commit through the WAL, and the memtable
//! switch with back-pressure when flushes fall behind.
//!
//! Writers queue up; the writer at the head of the queue (the leader) takes
//! every batch queued behind it, gives each a commit timestamp, writes them
//! to the WAL in one `append` and at most one sync, inserts them into the
//! memtables, publishes the last timestamp to readers, and wakes the group.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use strata_format::batch::{BatchBuilder, BatchRecord};
use strata_format::codec::{Compression, MAX_BLOCK_LEN};
use strata_format::key::{ValueKind, MAX_USER_KEY_LEN};
use strata_format::log::{LogHeader, LogKind, LogWriter};
use strata_format::manifest::VersionEdit;

use crate::db::{DbInner, KeyspaceState};
use crate::error::{Error, Result};
use crate::fs::{names, WritableFile};
use crate::keyspace::Keyspace;
use crate::memtable::Memtable;
use crate::options::WriteOptions;
use crate::stats::add;
use crate::timestamp::Timestamp;
use crate::txn::TxnCheck;
use crate::view::SuperVersion;

/// The largest value the engine stores (larger values belong in blobs).
pub const MAX_VALUE_LEN: usize = 256 * 1024 * 1024;

/// Commit groups stop growing past this many bytes of batches.
const MAX_GROUP_BYTES: usize = 4 << 20;

/// A set of writes applied atomically, across keyspaces: all of them or none,
/// also across a crash.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    ops: Vec<Op>,
    bytes: usize,
}

#[derive(Debug, Clone)]
struct Op {
    keyspace: Arc<KeyspaceState>,
    kind: ValueKind,
    key: Vec<u8>,
    value: Bytes,
}

pub(crate) fn check_key(key: &[u8]) -> Result<()> {
    if key.len() > MAX_USER_KEY_LEN {
        return Err(Error::KeyTooLarge(key.len()));
    }
    Ok(())
}

/// Checks a put and gives what is stored for it: the value as is, or for
/// a TTL entry its expiry timestamp (big-endian) followed by the value.
/// Batches and transactions both go through it.
pub(crate) fn stored_value(
    key: &[u8],
    value: &[u8],
    ttl: Option<std::time::Duration>,
) -> Result<(ValueKind, Bytes)> {
    check_key(key)?;
    check_value(value)?;
    Ok(match ttl {
        None => (ValueKind::Put, Bytes::copy_from_slice(value)),
        Some(ttl) => {
            let expiry = Timestamp::now().saturating_add(ttl).as_u64();
            let mut v = Vec::with_capacity(8 + value.len());
            v.extend_from_slice(&expiry.to_be_bytes());
            v.extend_from_slice(value);
            (ValueKind::PutWithTtl, Bytes::from(v))
        }
    })
}

pub(crate) fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::ValueTooLarge(value.len()));
    }
    Ok(())
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
        let key = key.as_ref();
        let (kind, value) = stored_value(key, value.as_ref(), None)?;
        self.push(ks, kind, key, value);
        Ok(())
    }

    /// Sets `key` to `value` in `ks`, expiring `ttl` from now: from then on
    /// it reads as absent, and compaction drops it.
    pub fn put_with_ttl(
        &mut self,
        ks: &Keyspace,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        ttl: std::time::Duration,
    ) -> Result<()> {
        let key = key.as_ref();
        let (kind, value) = stored_value(key, value.as_ref(), Some(ttl))?;
        self.push(ks, kind, key, value);
        Ok(())
    }

    pub(crate) fn push_raw(&mut self, ks: &Keyspace, kind: ValueKind, key: &[u8], value: Bytes) {
        self.push(ks, kind, key, value);
    }

    /// Deletes `key` from `ks`.
    pub fn delete(&mut self, ks: &Keyspace, key: impl AsRef<[u8]>) -> Result<()> {
        let key = key.as_ref();
        check_key(key)?;
        self.push(ks, ValueKind::Delete, key, Bytes::new());
        Ok(())
    }

    fn push(&mut self, ks: &Keyspace, kind: ValueKind, key: &[u8], value: Bytes) {
        self.bytes += key.len() + value.len() + 16;
        self.ops.push(Op {
            keyspace: ks.state().clone(),
            kind,
            key: key.to_vec(),
            value,
        });
    }

    /// Number of writes in the batch.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when the batch holds no write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Drops every write.
    pub fn clear(&mut self) {
        self.ops.clear();
        self.bytes = 0;
    }
}

/// One batch waiting in the commit queue.
pub(crate) struct Request {
    record: BatchBuilder,
    ops: Vec<Op>,
    sync: bool,
    /// Validation of a transaction's commit.
    check: Option<TxnCheck>,
    result: Mutex<Option<Result<u64>>>,
    /// Wakes this writer alone (its result is in, or it leads next), so a
    /// finished group does not wake every queued writer.
    cv: parking_lot::Condvar,
}

impl Request {
    /// Wakes the writer waiting on this request.
    pub(crate) fn wake(&self) {
        self.cv.notify_one();
    }

    /// The (keyspace, key) pairs the request writes.
    fn keys(&self) -> Vec<(u32, Vec<u8>)> {
        self.ops
            .iter()
            .map(|o| (o.keyspace.id, o.key.clone()))
            .collect()
    }
}

/// State of the commit queue, under `DbInner::write`.
#[derive(Default)]
pub(crate) struct WriteState {
    pub(crate) queue: VecDeque<Arc<Request>>,
    /// The last commit timestamp handed out.
    pub(crate) last_ts: u64,
    /// A writer is leading commit groups (possibly on behalf of the
    /// requests at the head of the queue).
    pub(crate) leading: bool,
    /// The size of the last synced group.
    pub(crate) last_sync_group: usize,
    /// The leader waits for writers to queue (see `LINGER`).
    pub(crate) lingering: bool,
}

/// How long a leader may wait for a synced group to fill up to the size
/// of the previous one. Without it, writers woken by a sync split into two
/// cohorts that alternate, each syncing half of them: the woken ones queue
/// while the leader already syncs those that queued during the last sync.
/// Waiting for them costs far less than the sync it saves; a lone synced
/// writer (groups of one) never waits.
const LINGER: Duration = Duration::from_micros(100);

/// WAL space is allocated this much at a time ahead of the appends, so a
/// synced commit rarely changes the file's size (fdatasync then commits no
/// metadata). Sealing gives the rest back.
const WAL_PREALLOC: u64 = 1 << 20;

/// Commit groups one writer leads in a row at most before handing the lead
/// on (its own caller waits meanwhile).
const MAX_LEAD_ROUNDS: usize = 8;

/// The open WAL.
pub(crate) struct Wal {
    pub number: u64,
    /// The key the WAL's records are encrypted with.
    pub key_id: Option<u32>,
    /// The file's uid, recorded in the manifest.
    pub uid: [u8; 16],
    log: LogWriter<Vec<u8>>,
    file: Box<dyn WritableFile>,
    /// Bytes appended to the file so far.
    pub len: u64,
    /// Bytes known durable.
    pub synced: u64,
    /// A sync happened since the last sync marker was written: the next
    /// append starts with one, so recovery can tell damage to synced
    /// records (corruption) from a torn unsynced tail.
    marker_due: bool,
    /// The file's path, for errors (kept, not rebuilt per commit).
    path: std::path::PathBuf,
    /// A record being encoded; reused, so a commit allocates nothing here.
    scratch: Vec<u8>,
    /// Bytes allocated ahead of the appends (zeros past `len`, which a
    /// reader after a crash takes for the torn tail they are).
    allocated: u64,
    /// False once the file system declined to preallocate: not asked again.
    preallocating: bool,
}

impl Wal {
    /// Creates WAL file `number` and writes its header.
    pub(crate) fn create(
        inner_fs: &dyn crate::fs::FileSystem,
        dir: &std::path::Path,
        number: u64,
        key: Option<Arc<strata_format::codec::EncryptionKey>>,
        map_appends: bool,
    ) -> Result<Wal> {
        let path = names::wal(dir, number);
        let header = LogHeader {
            kind: LogKind::Wal,
            file_number: number,
            file_uid: crate::random_uid(),
            key_id: key.as_ref().map(|k| k.id()),
        };
        let mut log = LogWriter::new(Vec::new(), header, Compression::None, key)
            .map_err(|e| Error::format(&path, e))?;
        let mut file = inner_fs.create(&path).map_err(|e| Error::io(&path, e))?;
        file.map_appends(map_appends);
        let bytes = std::mem::take(log.get_mut());
        file.append(&bytes).map_err(|e| Error::io(&path, e))?;
        Ok(Wal {
            number,
            key_id: header.key_id,
            uid: header.file_uid,
            log,
            file,
            len: bytes.len() as u64,
            synced: 0,
            marker_due: false,
            path,
            scratch: Vec::new(),
            allocated: 0,
            preallocating: true,
        })
    }

    /// Queues a sync marker for the next append, if one is due.
    fn mark_synced(&mut self) -> Result<()> {
        if self.marker_due {
            let synced = self.synced;
            if self
                .log
                .add_sync_marker(synced)
                .map_err(|e| Error::format(&self.path, e))?
            {
                self.marker_due = false;
            }
        }
        Ok(())
    }

    /// Syncs the file, then appends and syncs a sync marker covering
    /// everything before it: after this, any damage to the file's records
    /// is detectable as corruption. Used when the WAL is retired or the
    /// database closed.
    pub(crate) fn seal(&mut self) -> Result<()> {
        self.sync()?;
        self.mark_synced()?;
        let bytes = std::mem::take(self.log.get_mut());
        if !bytes.is_empty() {
            self.file
                .append(&bytes)
                .map_err(|e| Error::io(&self.path, e))?;
            self.len += bytes.len() as u64;
            self.sync()?;
            self.marker_due = false;
        }
        self.give_back_preallocated()
    }

    /// Cuts the zeros allocated past the appends and makes that durable, so
    /// a retired WAL ends where its records end (recovery reads zeros after
    /// the last record as a torn tail, which is only allowed in the WAL a
    /// crash interrupted).
    pub(crate) fn give_back_preallocated(&mut self) -> Result<()> {
        if self.allocated > self.len {
            self.file
                .truncate(self.len)
                .and_then(|()| self.file.sync())
                .map_err(|e| Error::io(&self.path, e))?;
            self.allocated = self.len;
        }
        Ok(())
    }

    /// Syncs the file if anything is not yet durable; says whether it did.
    pub(crate) fn sync(&mut self) -> Result<bool> {
        if self.synced < self.len {
            self.file.sync().map_err(|e| Error::io(&self.path, e))?;
            self.synced = self.len;
            self.marker_due = true;
            return Ok(true);
        }
        Ok(false)
    }
}

impl DbInner {
    /// Commits a batch; returns its commit timestamp.
    pub(crate) fn write(&self, batch: WriteBatch, opts: WriteOptions) -> Result<Timestamp> {
        self.write_checked(batch, opts, None)
    }

    /// Commits a batch, validating it first as a transaction when `check`
    /// is given.
    pub(crate) fn write_checked(
        &self,
        batch: WriteBatch,
        opts: WriteOptions,
        check: Option<TxnCheck>,
    ) -> Result<Timestamp> {
        self.check_open()?;
        if batch.ops.is_empty() {
            return Ok(Timestamp(self.visible_ts()));
        }
        let mut ops = batch.ops;
        dedupe(&mut ops);
        let mut record = BatchBuilder::new();
        let keyspaces = self.keyspaces.read();
        for op in &ops {
            if op.keyspace.is_dropped() {
                return Err(Error::KeyspaceNotFound(op.keyspace.name.clone()));
            }
            let ours = keyspaces
                .by_id
                .get(&op.keyspace.id)
                .is_some_and(|k| Arc::ptr_eq(k, &op.keyspace));
            if !ours {
                return Err(Error::InvalidArgument(format!(
                    "keyspace {:?} belongs to another database",
                    op.keyspace.name
                )));
            }
            record.add(op.kind, op.keyspace.id, &op.key, &op.value);
        }
        drop(keyspaces);
        if record.size() + 32 > MAX_BLOCK_LEN {
            return Err(Error::BatchTooLarge(record.size()));
        }
        let req = Arc::new(Request {
            record,
            ops,
            sync: opts.sync,
            check,
            result: Mutex::new(None),
            cv: parking_lot::Condvar::new(),
        });
        let mut st = self.write.lock();
        st.queue.push_back(req.clone());
        if st.lingering {
            self.arrivals.notify_one();
        }
        loop {
            if let Some(r) = req.result.lock().take() {
                return r.map(Timestamp);
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
            let finished = match self.lead_group(&mut st) {
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
        result.unwrap_or(Err(Error::Closed)).map(Timestamp)
    }

    /// Commits the group at the head of the queue; returns the requests
    /// whose results are in, to be woken.
    fn lead_group(&self, st: &mut MutexGuard<'_, WriteState>) -> Result<Vec<Arc<Request>>> {
        self.make_room(st)?;
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
        let mut group = Vec::new();
        let mut bytes = 0;
        for r in st.queue.iter() {
            if !group.is_empty() && bytes + r.record.size() > MAX_GROUP_BYTES {
                break;
            }
            bytes += r.record.size();
            group.push(r.clone());
        }
        if group.iter().any(|r| r.sync) {
            st.last_sync_group = group.len();
        }
        // Validate transactions, in queue order, against the commits made
        // since each began and against the earlier members of this group.
        let mut passed: Vec<Arc<Request>> = Vec::with_capacity(group.len());
        let mut failed: Vec<(Arc<Request>, Error)> = Vec::new();
        {
            let log = self.conflicts.lock();
            for r in &group {
                if let Some(check) = &r.check {
                    let mine: HashSet<(u32, Vec<u8>)> = r.keys().into_iter().collect();
                    let conflict = log
                        .check(check, &mine)
                        .or_else(|| passed.iter().find_map(|p| check.conflict(&mine, &p.keys())));
                    if let Some(key) = conflict {
                        failed.push((r.clone(), check.to_error(key)));
                        continue;
                    }
                }
                passed.push(r.clone());
            }
        }
        let first_ts = crate::timestamp::next_timestamps(st.last_ts, self.opts.clock.now());
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
                self.commit_group(passed, first_ts)
            })
        };
        if outcome.is_ok() {
            // Published: record the writes for transactions running now
            // (one that begins later starts after them).
            let mut log = self.conflicts.lock();
            if log.tracking() {
                for (i, r) in passed.iter().enumerate() {
                    log.record(first_ts + i as u64, Arc::new(r.keys()));
                }
            }
            log.prune();
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
        for (r, e) in &failed {
            *r.result.lock() = Some(Err(e.clone()));
        }
        Ok(group)
    }

    /// Writes the group to the WAL, inserts it into the memtables, and
    /// publishes its timestamps. Runs without the queue lock, so later
    /// writers can queue up behind it.
    fn commit_group(&self, group: &[Arc<Request>], first_ts: u64) -> Result<()> {
        let sync = group.iter().any(|r| r.sync);
        {
            let mut wal = self.wal.lock();
            let wal = &mut *wal;
            if let Err(e) = wal.mark_synced() {
                return Err(self.poison(e));
            }
            for (i, r) in group.iter().enumerate() {
                wal.scratch.clear();
                r.record.encode_into(first_ts + i as u64, &mut wal.scratch);
                if let Err(e) = wal.log.add_record(&wal.scratch) {
                    return Err(self.poison(Error::format(&wal.path, e)));
                }
            }
            let n = wal.log.get_mut().len() as u64;
            if wal.preallocating && wal.len + n > wal.allocated {
                // Best effort: where space cannot be allocated ahead, the
                // appends grow the file as they go.
                let want = (wal.len + n).div_ceil(WAL_PREALLOC) * WAL_PREALLOC;
                match wal.file.preallocate(want) {
                    Ok(true) => wal.allocated = want,
                    Ok(false) | Err(_) => wal.preallocating = false,
                }
            }
            let appended = wal.file.append(wal.log.get_mut());
            // Cleared, not taken: the buffer keeps its capacity.
            wal.log.get_mut().clear();
            if let Err(e) = appended {
                return Err(self.poison(Error::io(&wal.path, e)));
            }
            wal.len += n;
            add(&self.counters.wal_bytes, n);
            if sync {
                match wal.sync() {
                    Ok(synced) => add(&self.counters.wal_syncs, u64::from(synced)),
                    Err(e) => return Err(self.poison(e)),
                }
            }
        }
        for (i, r) in group.iter().enumerate() {
            let ts = first_ts + i as u64;
            for op in &r.ops {
                let sv = op.keyspace.super_version();
                sv.mem.insert(&op.key, ts, op.kind, op.value.clone());
            }
            self.active_bytes
                .fetch_add(r.record.size(), std::sync::atomic::Ordering::Relaxed);
            add(&self.counters.writes, 1);
            for op in &r.ops {
                add(
                    &op.keyspace.counters.user_bytes,
                    (op.key.len() + op.value.len()) as u64,
                );
            }
        }
        add(&self.counters.write_groups, 1);
        self.publish_ts(first_ts + group.len() as u64 - 1);
        Ok(())
    }

    /// Waits until the memtables have room, switching them when full and
    /// stalling when flushes or L0 compactions fall behind.
    fn make_room(&self, st: &mut MutexGuard<'_, WriteState>) -> Result<()> {
        let mut slowed = false;
        loop {
            self.check_writable()?;
            let l0 = self.max_l0_files();
            if l0 >= self.opts.l0_slowdown_trigger && !slowed {
                // Spread the delay over many writes rather than stopping.
                add(&self.counters.slowdowns, 1);
                MutexGuard::unlocked(st, || std::thread::sleep(Duration::from_millis(1)));
                slowed = true;
                continue;
            }
            let active = self.active_bytes.load(std::sync::atomic::Ordering::Relaxed);
            if active < self.opts.memtable_size {
                return Ok(());
            }
            let mut bg = self.bg.lock();
            if (bg.imm.len() >= self.opts.max_immutable_memtables
                || l0 >= self.opts.l0_stop_trigger)
                && !self.opts.background_threads
            {
                drop(bg);
                MutexGuard::unlocked(st, || self.background_work_inline())?;
                continue;
            }
            if bg.imm.len() >= self.opts.max_immutable_memtables || l0 >= self.opts.l0_stop_trigger
            {
                add(&self.counters.stalls, 1);
                let started = Instant::now();
                bg.compaction_wanted = true;
                self.bg_cv.notify_all();
                self.done_cv.wait_for(&mut bg, Duration::from_millis(100));
                add(
                    &self.counters.stall_micros,
                    started.elapsed().as_micros() as u64,
                );
                continue;
            }
            drop(bg);
            self.switch_memtables()?;
            if !self.opts.background_threads {
                // Without threads the writer does the flush, with the
                // queue unlocked (as a background thread would).
                MutexGuard::unlocked(st, || self.background_work_inline())?;
            }
        }
    }

    /// Seals every keyspace's memtable and starts a new WAL; the sealed
    /// memtables go to the flush queue. The old WAL is synced first, so a
    /// torn tail can only be in the newest WAL.
    pub(crate) fn switch_memtables(&self) -> Result<()> {
        self.switch(true)
    }

    /// Switches the memtables without sealing the WAL in use, whose tail
    /// is in doubt after a failed write: its memtables are flushed before
    /// anything else is written (see `resume`).
    pub(crate) fn switch_memtables_unsealed(&self) -> Result<()> {
        self.switch(false)
    }

    fn switch(&self, seal: bool) -> Result<()> {
        let _switch = self.switch_lock.lock();
        if seal {
            // After a failed append the WAL's tail and its writer's offset
            // are in doubt: it must not be sealed (only `resume` may retire
            // it, unsealed).
            self.check_writable()?;
        }
        let number = self.versions.lock().new_file_number();
        {
            let mut wal = self.wal.lock();
            if seal {
                if let Err(e) = wal.seal() {
                    return Err(self.poison(e));
                }
            } else {
                // Retired in doubt by `resume`: still give back the zeros,
                // if the file system lets us (a torn tail is expected here
                // anyway).
                let _ = wal.give_back_preallocated();
            }
            let key = match self.ciphers.current() {
                Ok(k) => k,
                Err(e) => return Err(self.poison(e)),
            };
            let new = match Wal::create(&*self.fs, &self.dir, number, key, self.opts.wal_mmap) {
                Ok(w) => w,
                Err(e) => return Err(self.poison(e)),
            };
            if let Err(e) = self.fs.sync_dir(&self.dir) {
                return Err(self.poison(Error::io(&self.dir, e)));
            }
            let sealed = (wal.number, wal.len);
            let created = (new.number, new.uid);
            *wal = new;
            self.live_wals.lock().push(number);
            drop(wal);
            // Recovery holds the old WAL to its sealed length, and expects
            // the new one's uid.
            let edit = VersionEdit {
                wals_sealed: if seal { vec![sealed] } else { Vec::new() },
                wals_created: vec![created],
                ..VersionEdit::default()
            };
            if let Err(e) = self.versions.lock().log_and_apply(edit) {
                return Err(self.poison(e));
            }
        }
        let mut sealed = Vec::new();
        for ks in self.keyspaces.read().by_id.values() {
            let mut sv = ks.sv.lock();
            if sv.mem.is_empty() {
                continue;
            }
            let mut imm = vec![sv.mem.clone()];
            imm.extend(sv.imm.iter().cloned());
            sealed.push((ks.clone(), sv.mem.clone()));
            *sv = Arc::new(SuperVersion {
                mem: Arc::new(Memtable::new()),
                imm,
                levels: sv.levels.clone(),
            });
        }
        self.active_bytes
            .store(0, std::sync::atomic::Ordering::Relaxed);
        let mut bg = self.bg.lock();
        bg.imm.push_back(crate::flush::Sealed {
            next_wal: number,
            memtables: sealed,
        });
        bg.sealed += 1;
        self.bg_cv.notify_all();
        Ok(())
    }

    /// Without background threads: flushes every sealed generation and
    /// compacts until the levels are within their targets, on the caller's
    /// thread. Callers hold none of the write-path locks.
    pub(crate) fn background_work_inline(&self) -> Result<()> {
        {
            let _flush = self.flush_lock.lock();
            loop {
                let job = self.bg.lock().imm.front().cloned();
                let Some(job) = job else { break };
                match self.flush_sealed(&job) {
                    Ok(()) => {}
                    Err(Error::Closed) => return Err(Error::Closed),
                    Err(e) => return Err(self.poison(e)),
                }
                let mut bg = self.bg.lock();
                bg.imm.pop_front();
                bg.flushed += 1;
            }
        }
        self.done_cv.notify_all();
        match self.compact_until_settled() {
            Ok(()) | Err(Error::Closed) => Ok(()),
            Err(e) => Err(self.poison(e)),
        }
    }
}

/// Keeps only the last write to each (keyspace, key) of a batch: writes of
/// one batch share a timestamp, so an earlier one would otherwise compete
/// with the later one by kind order.
fn dedupe(ops: &mut Vec<Op>) {
    if ops.len() < 2 {
        return;
    }
    let mut seen = HashSet::with_capacity(ops.len());
    let mut keep = vec![false; ops.len()];
    for (i, op) in ops.iter().enumerate().rev() {
        keep[i] = seen.insert((op.keyspace.id, op.key.clone()));
    }
    let mut i = 0;
    ops.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

/// Replays one WAL record into the memtables during recovery; returns its
/// timestamp.
pub(crate) fn replay_record(
    record: &BatchRecord<'_>,
    lookup: impl Fn(u32) -> Option<Arc<KeyspaceState>>,
) -> u64 {
    for op in record.ops() {
        if let Some(ks) = lookup(op.keyspace) {
            let sv = ks.super_version();
            sv.mem
                .insert(op.key, record.ts, op.kind, Bytes::copy_from_slice(op.value));
        }
    }
    record.ts
}
