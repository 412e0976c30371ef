//! The database: its shared state, the public handle, keyspaces, and
//! closing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};
use strata_format::manifest::{FileRemoved, VersionEdit, MAX_KEYSPACE_NAME_LEN};

use crate::cache::{BlockCache, TableCache};
use crate::error::{Error, Result};
use crate::fs::{names, FileLock, FileSystem};
use crate::keyspace::Keyspace;
use crate::memtable::Memtable;
use crate::options::{Options, WriteOptions};
use crate::snapshot::Snapshot;
use crate::stats::{get, DbCounters, KeyspaceCounters, KeyspaceStats, LevelStats, Stats};
use crate::timestamp::Timestamp;
use crate::txn::{Isolation, Transaction};
use crate::version::{Levels, VersionSet};
use crate::view::{ReadView, SuperVersion};
use crate::write::{Wal, WriteBatch, WriteState};

/// The state of one keyspace shared by its handles and the engine.
#[derive(Debug)]
pub(crate) struct KeyspaceState {
    pub id: u32,
    pub name: String,
    pub sv: Mutex<Arc<SuperVersion>>,
    pub counters: Arc<KeyspaceCounters>,
    dropped: AtomicBool,
}

impl KeyspaceState {
    pub(crate) fn new(id: u32, name: String, levels: Arc<Levels>) -> Self {
        KeyspaceState {
            id,
            name,
            sv: Mutex::new(Arc::new(SuperVersion {
                mem: Arc::new(Memtable::new()),
                imm: Vec::new(),
                levels,
            })),
            counters: Arc::default(),
            dropped: AtomicBool::new(false),
        }
    }

    /// The current super-version.
    pub(crate) fn super_version(&self) -> Arc<SuperVersion> {
        self.sv.lock().clone()
    }

    pub(crate) fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }
}

/// Live keyspaces by name and by id.
#[derive(Debug, Default)]
pub(crate) struct Keyspaces {
    pub by_name: HashMap<String, Arc<KeyspaceState>>,
    pub by_id: BTreeMap<u32, Arc<KeyspaceState>>,
}

/// What the background threads share with writers.
#[derive(Default)]
pub(crate) struct BgState {
    /// Sealed memtables waiting for a flush, oldest first.
    pub imm: VecDeque<crate::flush::Sealed>,
    pub compaction_wanted: bool,
    /// Generations sealed and flushed so far.
    pub sealed: u64,
    pub flushed: u64,
}

/// Everything a database is, shared by its handles and its threads.
pub(crate) struct DbInner {
    pub dir: PathBuf,
    pub opts: Options,
    pub fs: Arc<dyn FileSystem>,
    pub lock: Mutex<Option<Box<dyn FileLock>>>,
    pub versions: Mutex<VersionSet>,
    pub keyspaces: RwLock<Keyspaces>,
    pub write: Mutex<WriteState>,
    /// Wakes a leader lingering for a synced group's writers.
    pub arrivals: Condvar,
    /// Held by a commit group from its WAL write to its memtable inserts, so
    /// the memtables are never switched in between.
    pub commit_lock: Mutex<()>,
    /// Serialises memtable switches, so sealed memtables reach the flush
    /// queue in WAL order.
    pub switch_lock: Mutex<()>,
    pub wal: Mutex<Wal>,
    pub live_wals: Mutex<Vec<u64>>,
    pub active_bytes: AtomicUsize,
    visible_ts: AtomicU64,
    pub bg: Mutex<BgState>,
    /// Wakes the background threads.
    pub bg_cv: Condvar,
    /// Wakes writers and callers waiting for background work.
    pub done_cv: Condvar,
    /// Held while a compaction picks, runs and installs.
    pub compaction_lock: Mutex<()>,
    pub compact_pointers: Mutex<HashMap<(u32, usize), Vec<u8>>>,
    pub max_l0: AtomicUsize,
    /// Live snapshots and transactions: start timestamp → count.
    pub snapshots: Mutex<BTreeMap<u64, usize>>,
    /// The largest window start handed out (it never moves back).
    window_floor: AtomicU64,
    /// Versions older than this may have been collected.
    pub horizon: AtomicU64,
    /// Recent commits, for transaction validation.
    pub conflicts: Mutex<crate::txn::ConflictLog>,
    pub tables: Arc<TableCache>,
    pub blocks: Arc<BlockCache>,
    pub ciphers: Arc<crate::encryption::Ciphers>,
    pub counters: DbCounters,
    /// The error state: why writes are refused, if they are.
    poisoned: Mutex<Option<String>>,
    /// Set when the error state cannot be left by [`DbInner::resume`] (a
    /// background thread died).
    fatal: AtomicBool,
    /// Held by whoever writes a sealed generation to L0 (the flush thread
    /// or a resume), so a generation is flushed once.
    pub flush_lock: Mutex<()>,
    /// One resume at a time.
    resume_lock: Mutex<()>,
    shutdown: AtomicBool,
    pub threads: Mutex<Vec<JoinHandle<()>>>,
}

impl DbInner {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        dir: PathBuf,
        opts: Options,
        lock: Box<dyn FileLock>,
        versions: VersionSet,
        wal: Wal,
        last_ts: u64,
    ) -> Self {
        let blocks = Arc::new(BlockCache::new(opts.block_cache_size));
        let ciphers = versions.ciphers.clone();
        let tables = Arc::new(TableCache::new(
            opts.table_cache_capacity,
            opts.fs.clone(),
            blocks.clone(),
            ciphers.clone(),
        ));
        let wal_number = wal.number;
        let horizon = versions.history_horizon;
        DbInner {
            dir,
            fs: opts.fs.clone(),
            opts,
            lock: Mutex::new(Some(lock)),
            versions: Mutex::new(versions),
            keyspaces: RwLock::new(Keyspaces::default()),
            write: Mutex::new(WriteState {
                last_ts,
                ..WriteState::default()
            }),
            arrivals: Condvar::new(),
            commit_lock: Mutex::new(()),
            switch_lock: Mutex::new(()),
            wal: Mutex::new(wal),
            live_wals: Mutex::new(vec![wal_number]),
            active_bytes: AtomicUsize::new(0),
            visible_ts: AtomicU64::new(last_ts),
            bg: Mutex::new(BgState::default()),
            bg_cv: Condvar::new(),
            done_cv: Condvar::new(),
            compaction_lock: Mutex::new(()),
            compact_pointers: Mutex::new(HashMap::new()),
            max_l0: AtomicUsize::new(0),
            snapshots: Mutex::new(BTreeMap::new()),
            window_floor: AtomicU64::new(0),
            horizon: AtomicU64::new(horizon),
            conflicts: Mutex::new(crate::txn::ConflictLog::default()),
            tables,
            blocks,
            ciphers,
            counters: DbCounters::default(),
            poisoned: Mutex::new(None),
            fatal: AtomicBool::new(false),
            flush_lock: Mutex::new(()),
            resume_lock: Mutex::new(()),
            shutdown: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
        }
    }

    /// The key new SSTs of keyspace `id` are encrypted with (none without a
    /// key provider, or for a keyspace that opted out).
    pub(crate) fn table_key(
        &self,
        id: u32,
    ) -> Result<Option<Arc<strata_format::codec::EncryptionKey>>> {
        let plaintext = self
            .keyspaces
            .read()
            .by_id
            .get(&id)
            .is_some_and(|ks| self.opts.plaintext_keyspaces.contains(&ks.name));
        if plaintext {
            return Ok(None);
        }
        self.ciphers.current()
    }

    /// The newest commit timestamp readers may see.
    pub(crate) fn visible_ts(&self) -> u64 {
        self.visible_ts.load(Ordering::Acquire)
    }

    pub(crate) fn publish_ts(&self, ts: u64) {
        self.visible_ts.fetch_max(ts, Ordering::AcqRel);
    }

    /// What flushes and compactions must keep readable: every timestamp
    /// from the history window's start on, and each live snapshot.
    pub(crate) fn gc_points(&self) -> crate::flush::GcPoints {
        let snaps = self.snapshots.lock();
        let window = self.window_start();
        let snapshots = snaps
            .keys()
            .rev()
            .copied()
            .filter(|&s| s < window)
            .collect();
        crate::flush::GcPoints { window, snapshots }
    }

    /// The start of the history window: `history_retention` before now, but
    /// never after the newest visible timestamp (the present is always
    /// readable) and never earlier than a window start already handed out
    /// (a wall clock stepping back cannot reopen history that may be gone).
    fn window_start(&self) -> u64 {
        let retained = self
            .opts
            .clock
            .now()
            .saturating_sub(self.opts.history_retention)
            .as_u64();
        let start = self.visible_ts().min(retained);
        let floor = self.window_floor.fetch_max(start, Ordering::AcqRel);
        start.max(floor)
    }

    /// The oldest timestamp a read of the past may ask for now (live
    /// snapshots' own timestamps stay readable too): the window start, but
    /// never below the horizon of what was already collected.
    pub(crate) fn available_from(&self) -> u64 {
        self.window_start()
            .max(self.horizon.load(Ordering::Acquire))
    }

    /// True when a read at `ts` is inside the window or at a live snapshot.
    fn readable(&self, snaps: &BTreeMap<u64, usize>, ts: u64) -> std::result::Result<(), Error> {
        let oldest = self.available_from();
        if ts < oldest && !snaps.contains_key(&ts) {
            return Err(Error::HistoryUnavailable {
                requested: Timestamp(ts),
                oldest: Timestamp(oldest),
            });
        }
        Ok(())
    }

    /// Registers a snapshot at `ts` (checked against the window), so that
    /// compaction keeps what it can see until it is released.
    pub(crate) fn register_snapshot(&self, ts: Option<u64>) -> Result<u64> {
        if let Some(t) = ts {
            if t > self.visible_ts() {
                self.advance_clock(t)?;
            }
        }
        let mut snaps = self.snapshots.lock();
        let ts = match ts {
            Some(t) => {
                self.readable(&snaps, t)?;
                t
            }
            None => self.visible_ts(),
        };
        *snaps.entry(ts).or_insert(0) += 1;
        Ok(ts)
    }

    pub(crate) fn release_snapshot(&self, ts: u64) {
        let mut snaps = self.snapshots.lock();
        if let Some(n) = snaps.get_mut(&ts) {
            *n -= 1;
            if *n == 0 {
                snaps.remove(&ts);
            }
        }
    }

    /// A read view of `ks` at `ts`, which a registered snapshot or
    /// transaction keeps readable, judging TTL entries at `expiry_ts`.
    pub(crate) fn view_at_registered(
        &self,
        ks: &KeyspaceState,
        ts: u64,
        expiry_ts: u64,
    ) -> ReadView {
        ReadView {
            ts,
            expiry_ts,
            sv: ks.super_version(),
            tables: self.tables.clone(),
            counters: ks.counters.clone(),
        }
    }

    /// A read view of `ks` as of `ts`, inside the history window.
    pub(crate) fn view_at(&self, ks: &KeyspaceState, ts: u64) -> Result<ReadView> {
        if ts > self.visible_ts() {
            self.advance_clock(ts)?;
        }
        // The super-version first, then the window check: whatever was
        // collected in it was collected below a horizon the check sees.
        let sv = ks.super_version();
        self.readable(&self.snapshots.lock(), ts)?;
        Ok(ReadView {
            ts,
            expiry_ts: ts,
            sv,
            tables: self.tables.clone(),
            counters: ks.counters.clone(),
        })
    }

    /// Makes every later commit timestamp larger than `ts`, and `ts`
    /// visible: a read at a later timestamp than any commit then sees a state
    /// no later commit can change. Only timestamps up to the wall clock are
    /// accepted: the clock resumes above the wall clock after a restart, so
    /// the promise holds across restarts too, and no read can push the clock
    /// toward its end.
    pub(crate) fn advance_clock(&self, ts: u64) -> Result<()> {
        let now = self.opts.clock.now().as_u64();
        if ts > now {
            return Err(Error::InvalidArgument(format!(
                "timestamp {} is in the future (now is {})",
                Timestamp(ts),
                Timestamp(now)
            )));
        }
        // Holding the queue and the commit lock: no group is between taking
        // its timestamps and publishing them.
        let mut st = self.write.lock();
        let _commit = self.commit_lock.lock();
        if st.last_ts < ts {
            st.last_ts = ts;
        }
        self.publish_ts(ts);
        Ok(())
    }

    /// The clock's time, never below the newest visible commit: what a
    /// read of the present judges TTL entries against.
    pub(crate) fn expiry_now(&self) -> u64 {
        self.visible_ts().max(self.opts.clock.now().as_u64())
    }

    /// Records that a flush or compaction collected versions below `oldest`.
    pub(crate) fn raise_horizon(&self, oldest: u64) {
        self.horizon.fetch_max(oldest, Ordering::AcqRel);
    }

    pub(crate) fn shutdown_flag(&self) -> &AtomicBool {
        &self.shutdown
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.is_shutdown() {
            return Err(Error::Closed);
        }
        Ok(())
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.lock().is_some()
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        if let Some(why) = self.poisoned.lock().as_ref() {
            return Err(Error::Poisoned(why.clone()));
        }
        Ok(())
    }

    /// Records a failure that leaves the database unable to write safely
    /// (a failed WAL write or sync, a failed flush, compaction or manifest
    /// write): later writes fail, reads keep working, until
    /// [`resume`](Self::resume) succeeds. Returns the error for convenience.
    pub(crate) fn poison(&self, e: Error) -> Error {
        let mut p = self.poisoned.lock();
        if p.is_none() {
            *p = Some(format!("{e}; writes are refused until Db::resume succeeds"));
            crate::stats::add(&self.counters.background_errors, 1);
        }
        drop(p);
        self.done_cv.notify_all();
        e
    }

    /// Like [`poison`](Self::poison), for failures `resume` cannot repair.
    pub(crate) fn poison_fatal(&self, e: Error) -> Error {
        self.fatal.store(true, Ordering::Release);
        self.poison(e)
    }

    /// Leaves the error state once its cause is gone. The WAL in use when
    /// the error happened may end in a record that was never acknowledged,
    /// half written or not durable, so it is not trusted: a new WAL is
    /// started, every memtable is flushed to L0 (they hold exactly the
    /// acknowledged writes), and the manifest is rewritten if one of its
    /// writes failed. Only then do writes resume and the old WALs go.
    pub(crate) fn resume(&self) -> Result<()> {
        self.check_open()?;
        let _resume = self.resume_lock.lock();
        // A flush or compaction that fails puts the database in the error
        // state before letting go of its lock. Waiting for both locks here
        // means no failure that happened before this call goes unseen, to
        // poison the database again just after it was resumed. (The flush
        // lock is only passed through: it is taken again below, after the
        // memtable switch, in the order flushes take it.)
        let _compaction = self.compaction_lock.lock();
        drop(self.flush_lock.lock());
        let Some(why) = self.poisoned.lock().clone() else {
            return Ok(());
        };
        if self.fatal.load(Ordering::Acquire) {
            return Err(Error::Poisoned(format!("{why} (cannot be resumed)")));
        }
        {
            // No commit group runs, and none starts, until this is done.
            let _commit = self.commit_lock.lock();
            {
                let mut vs = self.versions.lock();
                if vs.failed() {
                    if let Some(old) = vs.rotate_manifest()? {
                        let _ = self.fs.remove_file(&names::manifest(&self.dir, old));
                    }
                    vs.clear_failed();
                }
            }
            // Switched before the flush lock is taken: a switch holds the
            // switch lock, and flushing takes the flush lock after it.
            self.switch_memtables_unsealed()?;
            let _flush = self.flush_lock.lock();
            loop {
                let job = self.bg.lock().imm.front().cloned();
                let Some(job) = job else { break };
                self.flush_sealed(&job)?;
                let mut bg = self.bg.lock();
                bg.imm.pop_front();
                bg.flushed += 1;
                bg.compaction_wanted = true;
            }
            *self.poisoned.lock() = None;
        }
        crate::stats::add(&self.counters.resumes, 1);
        let _bg = self.bg.lock();
        self.bg_cv.notify_all();
        self.done_cv.notify_all();
        Ok(())
    }

    /// Called by a background thread after it put the database in the
    /// error state: waits until the state is left (by a caller's `resume`,
    /// or, for an I/O error such as a full disk, by retrying `resume`
    /// itself with a growing pause). Returns false at shutdown or when the
    /// state cannot be left.
    pub(crate) fn wait_for_resume(&self, retry: bool) -> bool {
        let mut pause = Duration::from_millis(20);
        loop {
            if self.is_shutdown() || self.fatal.load(Ordering::Acquire) {
                return false;
            }
            if !self.is_poisoned() {
                return true;
            }
            {
                let mut bg = self.bg.lock();
                if self.is_shutdown() {
                    return false;
                }
                self.bg_cv.wait_for(&mut bg, pause);
            }
            if retry && self.resume().is_ok() {
                return true;
            }
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    pub(crate) fn max_l0_files(&self) -> usize {
        self.max_l0.load(Ordering::Relaxed)
    }

    /// Recomputes the L0 gauge writers throttle on.
    pub(crate) fn update_max_l0(&self, vs: &VersionSet) {
        let m = vs
            .keyspaces
            .values()
            .map(|(_, l)| l.levels.first().map_or(0, Vec::len))
            .max()
            .unwrap_or(0);
        self.max_l0.store(m, Ordering::Relaxed);
    }

    /// Points each keyspace's super-version at the levels in `vs`.
    pub(crate) fn install_levels(&self, vs: &VersionSet) {
        let keyspaces = self.keyspaces.read();
        for (id, (_, levels)) in &vs.keyspaces {
            if let Some(ks) = keyspaces.by_id.get(id) {
                let mut sv = ks.sv.lock();
                if !Arc::ptr_eq(&sv.levels, levels) {
                    *sv = Arc::new(SuperVersion {
                        mem: sv.mem.clone(),
                        imm: sv.imm.clone(),
                        levels: levels.clone(),
                    });
                }
            }
        }
        self.update_max_l0(vs);
    }

    /// A read view of `ks` at the newest visible timestamp.
    pub(crate) fn read_view(&self, ks: &KeyspaceState) -> ReadView {
        // The timestamp is read under the super-version's lock, so the pair
        // is consistent with memtable switches and installs: every write at
        // or below the timestamp is in this super-version, and no flush or
        // compaction installed in it dropped a version the timestamp can see
        // (they decide what to drop from an older visible timestamp).
        let (ts, sv) = {
            let guard = ks.sv.lock();
            (self.visible_ts(), guard.clone())
        };
        ReadView {
            ts,
            expiry_ts: ts.max(self.opts.clock.now().as_u64()),
            sv,
            tables: self.tables.clone(),
            counters: ks.counters.clone(),
        }
    }

    fn keyspace(&self, name: &str) -> Result<Arc<KeyspaceState>> {
        self.check_open()?;
        if let Some(ks) = self.keyspaces.read().by_name.get(name) {
            return Ok(ks.clone());
        }
        if name.is_empty() || name.len() > MAX_KEYSPACE_NAME_LEN {
            return Err(Error::InvalidArgument(format!(
                "keyspace names are 1 to {MAX_KEYSPACE_NAME_LEN} bytes"
            )));
        }
        self.check_writable()?;
        let mut vs = self.versions.lock();
        let mut keyspaces = self.keyspaces.write();
        if let Some(ks) = keyspaces.by_name.get(name) {
            return Ok(ks.clone());
        }
        let id = vs.next_keyspace_id;
        if id == u32::MAX {
            return Err(Error::InvalidArgument("keyspace ids exhausted".into()));
        }
        let edit = VersionEdit {
            keyspaces_created: vec![(id, name.to_owned())],
            next_keyspace_id: Some(id + 1),
            ..VersionEdit::default()
        };
        vs.log_and_apply(edit).map_err(|e| self.poison(e))?;
        let levels = vs
            .keyspaces
            .get(&id)
            .map(|(_, l)| l.clone())
            .unwrap_or_else(|| Arc::new(Levels::new(self.opts.num_levels)));
        let ks = Arc::new(KeyspaceState::new(id, name.to_owned(), levels));
        keyspaces.by_name.insert(name.to_owned(), ks.clone());
        keyspaces.by_id.insert(id, ks.clone());
        Ok(ks)
    }

    fn drop_keyspace(&self, name: &str) -> Result<()> {
        self.check_writable()?;
        let _compaction = self.compaction_lock.lock();
        let mut vs = self.versions.lock();
        let mut keyspaces = self.keyspaces.write();
        let ks = keyspaces
            .by_name
            .get(name)
            .cloned()
            .ok_or_else(|| Error::KeyspaceNotFound(name.to_owned()))?;
        let mut edit = VersionEdit {
            keyspaces_dropped: vec![ks.id],
            ..VersionEdit::default()
        };
        let mut files = Vec::new();
        if let Some((_, levels)) = vs.keyspaces.get(&ks.id) {
            for (level, f) in levels.all_files() {
                edit.files_removed.push(FileRemoved {
                    keyspace: ks.id,
                    level: level as u8,
                    file_number: f.number,
                });
                files.push(f.clone());
            }
        }
        vs.log_and_apply(edit).map_err(|e| self.poison(e))?;
        ks.dropped.store(true, Ordering::Release);
        for f in files {
            f.mark_obsolete();
            self.tables.evict(f.number);
        }
        keyspaces.by_name.remove(name);
        keyspaces.by_id.remove(&ks.id);
        // Its memtables and super-version go with the last handle.
        *ks.sv.lock() = Arc::new(SuperVersion {
            mem: Arc::new(Memtable::new()),
            imm: Vec::new(),
            levels: Arc::new(Levels::new(self.opts.num_levels)),
        });
        self.update_max_l0(&vs);
        Ok(())
    }

    /// Seals the memtables (if they hold anything) and waits until every
    /// sealed memtable is flushed.
    pub(crate) fn flush(&self) -> Result<()> {
        self.flush_and_switch(false)
    }

    /// Flushes; with `new_wal`, also starts a new WAL even if the memtables
    /// are empty (so the WAL in use is under the current key).
    pub(crate) fn flush_and_switch(&self, new_wal: bool) -> Result<()> {
        self.check_writable()?;
        let target = {
            // No commit may be between its WAL write and its memtable
            // inserts while the memtables are switched.
            let _commit = self.commit_lock.lock();
            if new_wal || self.active_bytes.load(Ordering::Relaxed) > 0 {
                self.switch_memtables()?;
            }
            self.bg.lock().sealed
        };
        if !self.opts.background_threads {
            self.background_work_inline()?;
        }
        // Wait for what was sealed up to now, not for later generations.
        let mut bg = self.bg.lock();
        while bg.flushed < target {
            self.check_writable()?;
            self.done_cv.wait_for(&mut bg, Duration::from_millis(50));
        }
        Ok(())
    }

    fn stats(&self) -> Stats {
        let vs = self.versions.lock();
        let mut out = Stats {
            wal_bytes_written: get(&self.counters.wal_bytes),
            wal_syncs: get(&self.counters.wal_syncs),
            writes: get(&self.counters.writes),
            write_groups: get(&self.counters.write_groups),
            write_slowdowns: get(&self.counters.slowdowns),
            write_stalls: get(&self.counters.stalls),
            write_stall_micros: get(&self.counters.stall_micros),
            block_cache_hits: self.blocks.hits(),
            block_cache_misses: self.blocks.misses(),
            block_cache_bytes: self.blocks.used(),
            error_state: self.poisoned.lock().clone(),
            background_errors: get(&self.counters.background_errors),
            resumes: get(&self.counters.resumes),
            files_removed_at_open: get(&self.counters.removed_at_open),
            foreign_files: self.counters.foreign_files.lock().clone(),
            ..Stats::default()
        };
        for n in self.live_wals.lock().iter() {
            out.wal_bytes_live += self.fs.file_size(&names::wal(&self.dir, *n)).unwrap_or(0);
        }
        for (_, levels) in vs.keyspaces.values() {
            for (_, f) in levels.all_files() {
                *out.bytes_by_key_id.entry(f.key_id).or_insert(0) += f.size;
            }
        }
        for ks in self.keyspaces.read().by_id.values() {
            let sv = ks.super_version();
            let levels = vs
                .keyspaces
                .get(&ks.id)
                .map(|(_, l)| l.clone())
                .unwrap_or_else(|| sv.levels.clone());
            let c = &ks.counters;
            out.keyspaces.push(KeyspaceStats {
                name: ks.name.clone(),
                levels: levels
                    .levels
                    .iter()
                    .map(|files| LevelStats {
                        files: files.len(),
                        bytes: files.iter().map(|f| f.size).sum(),
                        key_ranges: files
                            .iter()
                            .map(|f| {
                                (
                                    f.smallest_user_key().to_vec(),
                                    f.largest_user_key().to_vec(),
                                )
                            })
                            .collect(),
                    })
                    .collect(),
                memtable_bytes: sv.mem.size() as u64,
                immutable_memtable_bytes: sv.imm.iter().map(|m| m.size() as u64).sum(),
                user_bytes_written: get(&c.user_bytes),
                flush_bytes_written: get(&c.flush_bytes),
                compaction_bytes_written: get(&c.compaction_bytes_written),
                compaction_bytes_read: get(&c.compaction_bytes_read),
                flushes: get(&c.flushes),
                compactions: get(&c.compactions),
                bloom_checks: get(&c.bloom_checks),
                bloom_false_positives: get(&c.bloom_false_positives),
            });
        }
        out
    }

    /// Stops background work at a safe point, syncs the WAL and releases the
    /// directory lock. Idempotent.
    pub(crate) fn close(&self) -> Result<()> {
        if self.shutdown.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        {
            let _bg = self.bg.lock();
            self.bg_cv.notify_all();
            self.done_cv.notify_all();
        }
        let threads = std::mem::take(&mut *self.threads.lock());
        for t in threads {
            let _ = t.join();
        }
        // Wake writers still queued; they see the database closed. Wait for
        // a commit group, a manual flush or a compaction still running on a
        // caller's thread: nothing may touch the files once the lock is
        // released.
        for r in self.write.lock().queue.iter() {
            r.wake();
        }
        let _compaction = self.compaction_lock.lock();
        let _commit = self.commit_lock.lock();
        let _switch = self.switch_lock.lock();
        if self.is_poisoned() {
            // The WAL's tail is in doubt: leave it as it is for recovery.
            self.lock.lock().take();
            return Ok(());
        }
        let sealed = {
            let mut wal = self.wal.lock();
            wal.seal().map(|()| (wal.number, wal.len))
        };
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
    /// A directory another process holds open gives [`Error::Locked`].
    pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Db> {
        let inner = Arc::new(crate::recovery::open(path.as_ref(), opts)?);
        crate::recovery::start_threads(&inner);
        let guard = Arc::new(CloseGuard {
            inner: inner.clone(),
        });
        Ok(Db {
            inner,
            _guard: guard,
        })
    }

    /// The database's directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// The keyspace named `name`, created (durably) if it does not exist.
    pub fn keyspace(&self, name: &str) -> Result<Keyspace> {
        let state = self.inner.keyspace(name)?;
        Ok(Keyspace::new(self.clone(), state))
    }

    /// Names of the keyspaces, sorted.
    pub fn keyspaces(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .keyspaces
            .read()
            .by_name
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
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
        self.inner.write(batch, opts)
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
    /// [`Error::Conflict`] (up to 16 attempts; the last conflict is
    /// returned). `f` may run several times.
    pub fn transaction<T>(
        &self,
        isolation: Isolation,
        f: impl FnMut(&mut Transaction) -> Result<T>,
    ) -> Result<T> {
        crate::txn::run(self, isolation, 16, f)
    }

    /// Records the conflict log holds (bounded by the oldest running
    /// transaction).
    pub fn conflict_records(&self) -> usize {
        self.inner.conflicts.lock().len()
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
    /// is still checked on its own. Fails with [`Error::Locked`] while the
    /// database is open.
    pub fn verify_dir(path: impl AsRef<Path>, opts: &Options) -> Result<crate::VerifyReport> {
        crate::verify::verify_dir(path.as_ref(), opts)
    }

    /// Describes the closed database in `path` from its manifest, without
    /// opening it (nothing is recovered or written): keyspaces, levels,
    /// every table with its key and timestamp range and key id, the WALs,
    /// and files nothing references. Fails with [`Error::Locked`] while the
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
