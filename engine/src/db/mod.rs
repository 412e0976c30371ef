//! The database: the [`Db`] facade and the wiring of its parts.
//!
//! Each part owns its state and its locks:
//! - [`Versions`] (`version`): the version set, the manifest, file numbers;
//! - [`KeyspaceRegistry`] (`keyspaces`): live keyspaces and their
//!   super-versions;
//! - [`CommitPipeline`] (`commit`): the queue, the group leader, the WAL,
//!   the visible timestamp;
//! - [`FlushQueue`] (`flush`): sealed memtables, and the signals between
//!   writers and background work;
//! - [`Retention`] (`retention`): snapshots, the history window, GC points;
//! - [`Conflicts`] (`txn::conflicts`): the transaction validation hook;
//! - [`ErrorState`] (`error_state`): poison, resume, retry pauses.
//!
//! The modules under `db` are the wiring: the write path's memtable switch
//! and stalls (`write`), flush and compaction jobs and threads (`flush`,
//! `compaction`), leaving the error state (`resume`), reads (`read`),
//! opening (`open`), checking (`verify`) and statistics (`stats`).
//!
//! # Lock order
//!
//! Locks are taken in this order, never the reverse (a lock may be
//! skipped):
//! 1. the resume lock ([`ErrorState`]);
//! 2. the compaction lock (here);
//! 3. the commit queue lock, then the commit lock ([`CommitPipeline`]);
//! 4. the switch lock (here): one memtable switch at a time;
//! 5. the flush lock ([`FlushQueue`]);
//! 6. the version set's lock ([`Versions`]);
//! 7. the keyspace registry's lock, then a keyspace's super-version lock;
//! 8. the WAL's lock, then the live-WAL list ([`Logs`](crate::commit::wal::Logs));
//! 9. leaf locks, held alone and briefly: the flush queue's state, the
//!    conflict log (around the retention lock, by `Transaction::begin`),
//!    the retention lock, the error cause and retry state, the compaction
//!    pointers, the caches.

mod checkpoint;
mod compaction;
mod flush;
mod open;
mod read;
mod resume;
mod stats;
mod threads;
mod verify;
mod write;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use strata_format::manifest::{FileRemoved, VersionEdit, MAX_KEYSPACE_NAME_LEN};

use crate::cache::{BlockCache, TableCache};
use crate::commit::wal::Logs;
use crate::commit::CommitPipeline;
use crate::encryption::Ciphers;
use crate::error::{Error, Result};
use crate::error_state::{ErrorState, Origin};
use crate::flush::FlushQueue;
use crate::fs::{FileLock, FileSystem};
use crate::keyspace::Keyspace;
use crate::keyspaces::{KeyspaceRegistry, KeyspaceState};
use crate::levels::Levels;
use crate::options::{Options, WriteOptions};
use crate::recovery::Recovered;
use crate::retention::Retention;
use crate::snapshot::Snapshot;
use crate::stats::{DbCounters, Stats};
use crate::timestamp::Timestamp;
use crate::txn::{Conflicts, Isolation, Retryable, Transaction, TxnCheck, TxnOptions};
use crate::version::{VersionSet, Versions};
use crate::view::SuperVersion;
use crate::write_batch::WriteBatch;

/// Everything a database is, shared by its handles and its threads. Its
/// fields are the parts; only the wiring under `db` sees them.
pub(crate) struct DbInner {
    dir: PathBuf,
    opts: Options,
    fs: Arc<dyn FileSystem>,
    lock: Mutex<Option<Box<dyn FileLock>>>,
    versions: Versions,
    keyspaces: KeyspaceRegistry,
    pipeline: CommitPipeline,
    /// Serialises memtable switches, so sealed memtables reach the flush
    /// queue in WAL order.
    switch_lock: Mutex<()>,
    flushes: FlushQueue,
    /// Held while a compaction picks, runs and installs.
    compaction_lock: Mutex<()>,
    /// Full compactions and re-encryptions waiting for the compaction
    /// lock: a background compaction running meanwhile yields to them.
    full_waiting: std::sync::atomic::AtomicUsize,
    compact_pointers: Mutex<HashMap<(u32, usize), Vec<u8>>>,
    retention: Retention,
    conflicts: Arc<Conflicts>,
    errors: ErrorState,
    tables: Arc<TableCache>,
    blocks: Arc<BlockCache>,
    ciphers: Arc<Ciphers>,
    counters: DbCounters,
    /// Opened with `Db::open_read_only`: every write is refused, nothing
    /// is written at close.
    read_only: bool,
    shutdown: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl DbInner {
    /// Wires the parts of a database around what recovery found: the
    /// version set, the keyspaces with their replayed memtables, the WAL
    /// writes go to next, the last commit timestamp.
    fn new(dir: PathBuf, opts: Options, r: Recovered, read_only: bool) -> Self {
        let Recovered {
            lock,
            versions: vs,
            keyspaces,
            wal,
            last_ts,
            ciphers,
        } = r;
        let blocks = Arc::new(BlockCache::new(opts.block_cache_size));
        let tables = Arc::new(TableCache::new(
            opts.table_cache_capacity,
            opts.fs.clone(),
            opts.sst_reads,
            blocks.clone(),
            ciphers.clone(),
            vs.blob_store().clone(),
        ));
        let conflicts = Arc::new(Conflicts::default());
        let retention = Retention::new(
            opts.clock.clone(),
            opts.history_retention,
            vs.history_horizon(),
        );
        let pipeline = CommitPipeline::new(
            Logs::new(wal),
            last_ts,
            conflicts.clone(),
            opts.clock.clone(),
        );
        let registry = KeyspaceRegistry::default();
        for k in keyspaces {
            registry.insert(k);
        }
        DbInner {
            dir,
            fs: opts.fs.clone(),
            opts,
            lock: Mutex::new(Some(lock)),
            versions: Versions::new(vs),
            keyspaces: registry,
            pipeline,
            switch_lock: Mutex::new(()),
            flushes: FlushQueue::default(),
            compaction_lock: Mutex::new(()),
            full_waiting: std::sync::atomic::AtomicUsize::new(0),
            compact_pointers: Mutex::new(HashMap::new()),
            retention,
            conflicts,
            errors: ErrorState::default(),
            tables,
            blocks,
            ciphers,
            counters: DbCounters::default(),
            read_only,
            shutdown: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
        }
    }

    /// The key new SSTs of keyspace `id` are encrypted with (none without a
    /// key provider, or for a keyspace that opted out).
    fn table_key(&self, id: u32) -> Result<Option<Arc<strata_format::codec::EncryptionKey>>> {
        let plaintext = self
            .keyspaces
            .by_id(id)
            .is_some_and(|ks| self.opts.plaintext_keyspaces.iter().any(|n| n == ks.name()));
        if plaintext {
            return Ok(None);
        }
        self.ciphers.current()
    }

    /// The newest commit timestamp readers may see.
    pub(crate) fn visible_ts(&self) -> u64 {
        self.pipeline.visible_ts()
    }

    fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Fails with [`Error::Closed`] once the database is closed.
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.is_shutdown() {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Fails when writes are refused: closed, or in the error state.
    pub(crate) fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        if self.read_only {
            return Err(Error::ReadOnly(self.dir.clone()));
        }
        self.errors.check()
    }

    /// Free bytes of the file system holding the database, when known.
    fn free_space(&self) -> Option<u64> {
        self.fs.free_space(&self.dir).ok().flatten()
    }

    /// Enters the error state for good (a background thread died).
    fn poison_fatal(&self, e: Error) -> Error {
        let e = self.errors.poison_fatal(e);
        self.flushes.notify_all();
        e
    }

    /// Enters the error state for `e`, which `origin` produced.
    fn poison(&self, e: Error, origin: Origin) -> Error {
        let free = if origin == Origin::Background {
            self.free_space()
        } else {
            None
        };
        let e = self.errors.poison(e, origin, free);
        self.flushes.notify_all();
        e
    }

    /// Points each keyspace's super-version at the levels in `vs`, and
    /// updates the L0 gauge: every change to the levels ends here.
    #[must_use = "drop the old super-versions outside the version lock"]
    fn install_levels(&self, vs: &VersionSet) -> Vec<Arc<SuperVersion>> {
        let mut old = Vec::new();
        for (id, (_, levels)) in vs.keyspaces() {
            if let Some(ks) = self.keyspaces.by_id(*id) {
                old.extend(ks.install(|sv| sv.with_levels(levels)));
            }
        }
        self.versions.levels_changed(vs);
        old
    }

    /// Commits a batch (validated first as a transaction when `check` is
    /// given); returns its commit timestamp.
    pub(crate) fn commit(
        &self,
        batch: WriteBatch,
        opts: WriteOptions,
        check: Option<TxnCheck>,
    ) -> Result<Timestamp> {
        self.commit_at(batch, opts, check, None)
    }

    fn commit_at(
        &self,
        batch: WriteBatch,
        opts: WriteOptions,
        check: Option<TxnCheck>,
        at: Option<u64>,
    ) -> Result<Timestamp> {
        self.check_open()?;
        if self.read_only {
            return Err(Error::ReadOnly(self.dir.clone()));
        }
        if batch.is_empty() {
            return Ok(Timestamp(self.visible_ts()));
        }
        for ks in batch.keyspaces() {
            if ks.is_dropped() {
                return Err(Error::KeyspaceNotFound(ks.name().to_owned()));
            }
            if !self.keyspaces.owns(ks) {
                return Err(Error::InvalidArgument(format!(
                    "keyspace {:?} belongs to another database",
                    ks.name()
                )));
            }
        }
        if let (None, Some(committer)) = (at, &self.opts.committer) {
            return self.propose(committer.as_ref(), &batch, opts, check);
        }
        let encoded = batch.seal()?;
        if encoded.size() + 32 > strata_format::codec::MAX_BLOCK_LEN {
            return Err(Error::BatchTooLarge(encoded.size()));
        }
        self.pipeline
            .commit(self, encoded, opts.sync, check, at)
            .map(Timestamp)
    }

    /// Hands a commit to the committer of a replica (SPEC §18.5).
    fn propose(
        &self,
        committer: &dyn crate::committer::Committer,
        batch: &WriteBatch,
        opts: WriteOptions,
        check: Option<TxnCheck>,
    ) -> Result<Timestamp> {
        let (ops, count) = batch.encoded_ops();
        let reads = check.map(|c| {
            let (start, serializable, reads, ranges) = c.into_reads();
            (Timestamp(start), serializable, reads, ranges)
        });
        let proposal = crate::committer::Proposal::build(ops, count, reads, &self.keyspaces)?;
        committer.commit(proposal, opts)
    }

    /// Starts a transaction: registers its snapshot and tracks commits for
    /// it; returns its start timestamp.
    pub(crate) fn begin_transaction(&self) -> Result<u64> {
        self.conflicts
            .begin(|| self.retention.register(None, self.visible_ts()))
    }

    /// Ends a transaction that began at `start`.
    pub(crate) fn end_transaction(&self, start: u64) {
        self.conflicts.end(start);
        self.retention.release(start);
    }

    fn keyspace(&self, name: &str) -> Result<Arc<KeyspaceState>> {
        self.check_open()?;
        if let Some(ks) = self.keyspaces.by_name(name) {
            return Ok(ks);
        }
        if name.is_empty() || name.len() > MAX_KEYSPACE_NAME_LEN {
            return Err(Error::InvalidArgument(format!(
                "keyspace names are 1 to {MAX_KEYSPACE_NAME_LEN} bytes"
            )));
        }
        self.check_writable()?;
        let mut vs = self.versions.lock();
        self.keyspaces.get_or_create(name, || {
            let id = vs.next_keyspace_id();
            if id == u32::MAX {
                return Err(Error::InvalidArgument("keyspace ids exhausted".into()));
            }
            let edit = VersionEdit {
                keyspaces_created: vec![(id, name.to_owned())],
                next_keyspace_id: Some(id + 1),
                ..VersionEdit::default()
            };
            vs.log_and_apply(edit)
                .map_err(|e| self.poison(e, Origin::Manifest))?;
            let levels = vs
                .levels_of(id)
                .cloned()
                .unwrap_or_else(|| Arc::new(Levels::new(self.opts.num_levels)));
            Ok(Arc::new(KeyspaceState::new(
                id,
                name.to_owned(),
                levels,
                self.opts.memtable_size,
            )))
        })
    }

    fn drop_keyspace(&self, name: &str) -> Result<()> {
        self.check_writable()?;
        if self.opts.committer.is_some() {
            // Not a write a log can carry: replicas would drift apart.
            return Err(Error::InvalidArgument(
                "a replica cannot drop keyspaces; delete their ranges instead".into(),
            ));
        }
        let _compaction = self.compaction_lock.lock();
        let mut vs = self.versions.lock();
        self.keyspaces.drop_with(
            name,
            self.opts.num_levels,
            || Error::KeyspaceNotFound(name.to_owned()),
            |ks| {
                let mut edit = VersionEdit {
                    keyspaces_dropped: vec![ks.id()],
                    ..VersionEdit::default()
                };
                let mut files = Vec::new();
                if let Some(levels) = vs.levels_of(ks.id()) {
                    for (level, f) in levels.all_files() {
                        edit.files_removed.push(FileRemoved {
                            keyspace: ks.id(),
                            level: level as u8,
                            file_number: f.number,
                        });
                        files.push(f.clone());
                    }
                }
                vs.log_and_apply(edit)
                    .map_err(|e| self.poison(e, Origin::Manifest))?;
                for f in files {
                    f.mark_obsolete();
                    self.tables.evict(f.number);
                }
                Ok(())
            },
        )?;
        self.versions.levels_changed(&vs);
        Ok(())
    }

    /// Stops background work at a safe point, syncs the WAL and releases the
    /// directory lock. Idempotent.
    fn close(&self) -> Result<()> {
        if self.shutdown.swap(true, Ordering::AcqRel) || self.read_only {
            return Ok(());
        }
        self.flushes.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock());
        for t in threads {
            let _ = t.join();
        }
        // Wake writers still queued; they see the database closed. Wait for
        // a commit group, a manual flush or a compaction still running on a
        // caller's thread: nothing may touch the files once the lock is
        // released.
        self.pipeline.wake_all();
        let _compaction = self.compaction_lock.lock();
        let _commit = self.pipeline.quiesce();
        let _switch = self.switch_lock.lock();
        if self.errors.is_set() {
            // The WAL's tail is in doubt: leave it as it is for recovery.
            self.lock.lock().take();
            return Ok(());
        }
        let sealed = self
            .pipeline
            .logs()
            .with_current(|wal| wal.seal().map(|()| (wal.number(), wal.len())));
        // Recovery will hold the WAL to its sealed length: a truncated or
        // missing WAL is then corruption, not a torn tail.
        let result = sealed.and_then(|sealed| {
            let mut vs = self.versions.lock();
            if vs.failed() {
                return Ok(());
            }
            vs.log_and_apply(VersionEdit {
                wals_sealed: vec![sealed],
                ..VersionEdit::default()
            })
        });
        self.lock.lock().take();
        result
    }
}

/// Closes the database when the last handle goes away.
struct CloseGuard {
    inner: Arc<DbInner>,
}

impl Drop for CloseGuard {
    fn drop(&mut self) {
        let _ = self.inner.close();
    }
}

/// An open database. Cheap to clone; every clone and every [`Keyspace`]
/// shares it, and the last one dropped closes it.
#[derive(Clone)]
pub struct Db {
    pub(crate) inner: Arc<DbInner>,
    /// Shared by every handle; dropping the last one closes the database.
    _guard: Arc<CloseGuard>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Opens (creating if missing) the database in directory `path`:
    /// replays the manifest and the WAL, then starts the background threads.
    /// A directory another process holds open gives [`Error::Locked`]; one
    /// this process holds open, [`Error::AlreadyOpen`].
    pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Db> {
        let inner = Arc::new(open::open(path.as_ref(), opts)?);
        threads::start_threads(&inner);
        Ok(Db::wrap(inner))
    }

    /// Opens the database in `path` for reading only: nothing in the
    /// directory is created, written or deleted (no lock file either, so it
    /// works on a read-only mount and many readers may open it at once).
    /// What the WALs hold is replayed in memory. No background work runs;
    /// every write, flush, compaction and resume fails with
    /// [`Error::ReadOnly`]. A process writing to the database meanwhile is
    /// not seen: reopen for a newer state.
    pub fn open_read_only(path: impl AsRef<Path>, opts: Options) -> Result<Db> {
        let inner = Arc::new(open::open_read_only(path.as_ref(), opts)?);
        Ok(Db::wrap(inner))
    }

    fn wrap(inner: Arc<DbInner>) -> Db {
        let guard = Arc::new(CloseGuard {
            inner: inner.clone(),
        });
        Db {
            inner,
            _guard: guard,
        }
    }

    /// The database's directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// True for a replica's database (opened with a committer): its
    /// writes are decided elsewhere, and it is written by the log too.
    pub fn is_replica(&self) -> bool {
        self.inner.opts.committer.is_some()
    }

    /// The keyspace named `name`, created (durably) if it does not exist.
    pub fn keyspace(&self, name: &str) -> Result<Keyspace> {
        let state = self.inner.keyspace(name)?;
        Ok(Keyspace::new(self.clone(), state))
    }

    /// Names of the keyspaces, sorted.
    pub fn keyspaces(&self) -> Vec<String> {
        self.inner.keyspaces.names()
    }

    /// Drops a keyspace and deletes its data. Handles to it fail with
    /// [`Error::KeyspaceNotFound`] from then on.
    pub fn drop_keyspace(&self, name: &str) -> Result<()> {
        self.inner.drop_keyspace(name)
    }

    /// An empty batch.
    pub fn batch(&self) -> WriteBatch {
        WriteBatch::new()
    }

    /// Applies a batch atomically and returns its commit timestamp.
    pub fn write(&self, batch: WriteBatch, opts: WriteOptions) -> Result<Timestamp> {
        self.inner.commit(batch, opts, None)
    }

    /// Applies a batch atomically at commit timestamp `ts`, decided
    /// elsewhere (a replicated log applies its entries through this): `ts`
    /// must be above every commit so far ([`Error::InvalidArgument`]
    /// otherwise, and nothing is written). Later commits get larger
    /// timestamps.
    pub fn write_at(
        &self,
        batch: WriteBatch,
        ts: Timestamp,
        opts: WriteOptions,
    ) -> Result<Timestamp> {
        self.inner.commit_at(batch, opts, None, Some(ts.as_u64()))
    }

    /// A consistent, repeatable view of every keyspace as of now. TTL
    /// entries are judged at the clock's time when it is taken, like a read
    /// of the present.
    pub fn snapshot(&self) -> Result<Snapshot> {
        Snapshot::new(self.clone(), None)
    }

    /// A view of every keyspace as of `ts`, inside the history window
    /// ([`Error::HistoryUnavailable`] before it).
    pub fn snapshot_at(&self, ts: Timestamp) -> Result<Snapshot> {
        Snapshot::new(self.clone(), Some(ts))
    }

    /// Starts a transaction reading the state as of now.
    pub fn begin(&self, isolation: Isolation) -> Result<Transaction> {
        Transaction::begin(self.clone(), isolation)
    }

    /// Runs `f` in a transaction and commits it, retrying from the start on
    /// [`Error::Conflict`] with the default [`TxnOptions`] at `isolation`
    /// (the last conflict is returned). `f` may run several times.
    pub fn transaction<T>(
        &self,
        isolation: Isolation,
        f: impl FnMut(&mut Transaction) -> Result<T>,
    ) -> Result<T> {
        self.transaction_with(&TxnOptions::new(isolation), f)
            .map(|(v, _)| v)
    }

    /// Runs `f` in a transaction with `opts` and commits it; after a
    /// conflict (from `f`'s reads or the commit) it pauses as `opts` says
    /// and runs `f` again in a new transaction, up to `opts.attempts`
    /// times. Any other error from `f` rolls back and is returned. The
    /// error type is the caller's, so a layer above can run its own
    /// validation inside `f`. Returns `f`'s value and the commit timestamp
    /// (the snapshot's, when `f` wrote nothing).
    pub fn transaction_with<T, E>(
        &self,
        opts: &TxnOptions,
        mut f: impl FnMut(&mut Transaction) -> std::result::Result<T, E>,
    ) -> std::result::Result<(T, Timestamp), E>
    where
        E: From<Error> + Retryable,
    {
        opts.retry(|_| {
            let mut tx = self.begin(opts.isolation)?;
            let v = f(&mut tx)?;
            let ts = tx.commit_with(opts.write_options())?;
            Ok((v, ts))
        })
    }

    /// The database's clock as TTL entries are judged: the clock's time,
    /// never below the newest commit. Expiries given to
    /// [`WriteBatch::put_expiring`] are on this clock.
    pub fn now(&self) -> Timestamp {
        Timestamp(self.inner.expiry_now())
    }

    /// Records the conflict log holds (bounded by the oldest running
    /// transaction).
    pub fn conflict_records(&self) -> usize {
        self.inner.conflicts.len()
    }

    /// Changes how far back reads of the past may go (the
    /// `history_retention` option) while the database is open. A longer
    /// window keeps more from now on; it cannot bring back versions already
    /// collected, so [`oldest_readable`](Self::oldest_readable) never moves
    /// back.
    pub fn set_history_retention(&self, history: std::time::Duration) {
        self.inner.retention.set_history(history);
    }

    /// The history window's length now.
    pub fn history_retention(&self) -> std::time::Duration {
        self.inner.retention.history()
    }

    /// The oldest timestamp reads of the past may ask for now.
    pub fn oldest_readable(&self) -> Timestamp {
        Timestamp(self.inner.available_from())
    }

    /// Flushes every memtable to L0 and waits for it.
    pub fn flush(&self) -> Result<()> {
        self.inner.flush()
    }

    /// Flushes, then compacts every keyspace into its last level: afterwards
    /// each keyspace is one sorted run of non-overlapping files.
    pub fn compact(&self) -> Result<()> {
        self.inner.flush()?;
        self.inner.compact_all()
    }

    /// Makes a consistent, openable copy of the whole database in `dir`
    /// (which must not exist) as of the newest commit, while writes go on:
    /// SSTs are hard-linked when `dir` is on the same file system (copied
    /// otherwise), the WALs copied up to their acknowledged end, and a
    /// manifest written for the copy. An encrypted database's copy is
    /// encrypted under the same keys (nothing is decrypted); open it with
    /// the same key provider. Writes pause only while the file lists are
    /// taken.
    pub fn checkpoint(&self, dir: impl AsRef<Path>) -> Result<crate::CheckpointInfo> {
        self.inner.capture()?.write_checkpoint(dir.as_ref(), true)
    }

    /// The files of the database as of the newest commit, pinned (kept
    /// from deletion) while the result lives: what checkpoints and backups
    /// copy. Hold it briefly: pinned SSTs that compaction replaced keep
    /// their space until it is dropped.
    pub fn live_files(&self) -> Result<crate::LiveFiles> {
        self.inner.capture()
    }

    /// Rewrites, in the background of this call, every file still under an
    /// older key (or plaintext, for a keyspace that is now encrypted) with
    /// the provider's current key, so the old key can then be removed from
    /// the provider. `stats().bytes_by_key_id` shows what is left.
    pub fn reencrypt(&self) -> Result<()> {
        self.inner.reencrypt()
    }

    /// Leaves the error state a failed write, flush, compaction or
    /// manifest write put the database in (writes fail with
    /// [`Error::Poisoned`] meanwhile; reads keep working), once the cause
    /// (a full disk, a failing device) is gone: the WAL that saw the failure
    /// is retired and the memtables are flushed, so nothing unacknowledged
    /// is replayed later and nothing acknowledged is lost. Returns the new
    /// failure if the cause is still there, and `Ok` when there was no error.
    /// After a full disk during a flush or compaction the engine also
    /// retries this by itself, with a growing pause.
    pub fn resume(&self) -> Result<()> {
        self.inner.resume()
    }

    /// Reads every live file in full (CURRENT, the manifest, the WALs, every
    /// SST, bypassing the caches) and checks every checksum, MAC and
    /// structural invariant; returns every damaged file found. Writes and
    /// reads go on meanwhile.
    pub fn verify(&self) -> Result<crate::VerifyReport> {
        self.inner.verify()
    }

    /// Checks the closed database in `path` like [`verify`](Self::verify),
    /// without opening it: nothing is recovered or written, so a damaged
    /// database can be examined as it is. Every damaged file is reported;
    /// when the manifest is unreadable, every SST and WAL in the directory
    /// is still checked on its own. Fails with [`Error::Locked`] (or
    /// [`Error::AlreadyOpen`], from this process) while the
    /// database is open.
    pub fn verify_dir(path: impl AsRef<Path>, opts: &Options) -> Result<crate::VerifyReport> {
        crate::verify::verify_dir(path.as_ref(), opts)
    }

    /// Describes the closed database in `path` from its manifest, without
    /// opening it (nothing is recovered or written): keyspaces, levels,
    /// every table with its key and timestamp range and key id, the WALs,
    /// and files nothing references. Fails with [`Error::Locked`] (or
    /// [`Error::AlreadyOpen`], from this process) while the
    /// database is open.
    pub fn describe_dir(path: impl AsRef<Path>, opts: &Options) -> Result<crate::DirDescription> {
        crate::describe::describe_dir(path.as_ref(), opts)
    }

    /// Statistics: levels, memtables, traffic, caches, filters.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// The newest commit timestamp reads see.
    pub fn last_timestamp(&self) -> Timestamp {
        Timestamp(self.inner.visible_ts())
    }

    /// Closes the database now: background work stops at a safe point, the
    /// WAL is synced, the lock released. Later calls on any handle fail with
    /// [`Error::Closed`].
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }
}
