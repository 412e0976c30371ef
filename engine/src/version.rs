//! Versions: which SSTs make up each keyspace (see `levels`), and the
//! manifest that makes every change to that set durable and atomic.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use strata_format::codec::Compression;
use strata_format::log::{LogHeader, LogKind, LogWriter};
use strata_format::manifest::{FileRemoved, VersionEdit};

use crate::error::{Error, Result};
use crate::fs::{names, FileSystem, WritableFile};
use crate::levels::{FileMeta, Levels};

/// Files removed from and added to one keyspace by an edit.
type Changes = (Vec<FileRemoved>, Vec<(u8, Arc<FileMeta>)>);

/// How many file numbers one manifest record reserves (see
/// [`VersionSet::new_file_number`]): one extra manifest write per this many
/// files, and an open resumes less than this far past the last number
/// handed out.
pub(crate) const FILE_NUMBER_BATCH: u64 = 16;

/// The durable state the manifest describes.
#[derive(Debug)]
pub struct VersionSet {
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
    num_levels: usize,
    /// Keyspaces by id: name and levels.
    keyspaces: BTreeMap<u32, (String, Arc<Levels>)>,
    /// WAL files numbered below this are fully flushed.
    log_number: u64,
    /// The next file number to hand out.
    next_file_number: u64,
    /// Every file number handed out is below this: the largest next file
    /// number the manifest in use holds in a durable record. A number at
    /// or above it is recorded (a reservation, see
    /// [`new_file_number`](Self::new_file_number)) before it is handed
    /// out, so that a file a crash leaves behind is always provably the
    /// engine's own.
    file_number_limit: u64,
    /// Numbers of files that open found under the engine's names but at
    /// or above the manifest's next file number: not the engine's files.
    /// The counter steps over them so that no file of the engine is ever
    /// written over one.
    foreign_numbers: BTreeSet<u64>,
    /// Those of `foreign_numbers` the manifest records (tag 12), so that a
    /// later open, whose counter is past them, still knows the files under
    /// them are not the engine's.
    skips_recorded: BTreeSet<u64>,
    /// The largest timestamp made durable in SSTs.
    last_timestamp: u64,
    /// Versions older than this may have been collected.
    history_horizon: u64,
    /// The next keyspace id (ids are never reused).
    next_keyspace_id: u32,
    /// Sealed WALs not yet flushed: number → length.
    sealed_wals: BTreeMap<u64, u64>,
    /// Live WALs' uids: number → uid.
    wal_uids: BTreeMap<u64, [u8; 16]>,
    /// Where blob files are opened.
    blob_store: Arc<crate::blob::BlobStore>,
    /// The blob files the state's SSTs point into.
    blobs: crate::blob::set::BlobSet,
    /// Set when a manifest write failed: its outcome is unknown, so no
    /// further record may be written.
    failed: bool,
    /// The manifest is rewritten as a snapshot once it grows past this.
    max_manifest_size: u64,
    /// The keys the manifest is encrypted with.
    ciphers: Arc<crate::encryption::Ciphers>,
    manifest: Option<ManifestWriter>,
    /// The manifest the state was replayed from.
    replayed: Option<u64>,
}

#[derive(Debug)]
struct ManifestWriter {
    number: u64,
    /// Bytes of the snapshot record the manifest started with.
    snapshot_len: u64,
    log: LogWriter<Vec<u8>>,
    file: FileHandle,
}

impl ManifestWriter {
    /// After a record was synced: appends and syncs a sync marker covering
    /// it, so that damage to any acknowledged edit reads as corruption
    /// rather than as a torn tail (which recovery would silently drop).
    fn mark_synced(&mut self, path: &Path) -> Result<()> {
        let durable = self.log.offset();
        if self
            .log
            .add_sync_marker(durable)
            .map_err(|e| Error::format(path, e))?
        {
            let bytes = std::mem::take(self.log.get_mut());
            self.file.0.append(&bytes).map_err(|e| Error::io(path, e))?;
            self.file.0.sync().map_err(|e| Error::io(path, e))?;
        }
        Ok(())
    }
}

struct FileHandle(Box<dyn WritableFile>);

impl std::fmt::Debug for FileHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileHandle")
    }
}

impl VersionSet {
    /// An empty state (a new database) of the database in `dir` opened
    /// with `opts`, whose manifest is encrypted with `ciphers` and
    /// rewritten once past `max_manifest_size`. Its blob files are opened
    /// through a store of its own ([`blob_store`](Self::blob_store)).
    pub(crate) fn new(
        dir: &Path,
        opts: &crate::options::Options,
        max_manifest_size: u64,
        ciphers: Arc<crate::encryption::Ciphers>,
    ) -> Self {
        let fs = opts.fs.clone();
        let num_levels = opts.num_levels;
        let blob_store = Arc::new(crate::blob::BlobStore::new(
            dir.to_path_buf(),
            fs.clone(),
            ciphers.clone(),
            opts.separation(),
        ));
        VersionSet {
            dir: dir.to_path_buf(),
            fs,
            num_levels,
            keyspaces: BTreeMap::new(),
            log_number: 0,
            next_file_number: 1,
            file_number_limit: 1,
            foreign_numbers: BTreeSet::new(),
            skips_recorded: BTreeSet::new(),
            last_timestamp: 0,
            history_horizon: 0,
            next_keyspace_id: 0,
            sealed_wals: BTreeMap::new(),
            wal_uids: BTreeMap::new(),
            blob_store,
            blobs: crate::blob::set::BlobSet::default(),
            failed: false,
            max_manifest_size,
            ciphers,
            manifest: None,
            replayed: None,
        }
    }

    /// Keyspaces by id: name and levels.
    pub(crate) fn keyspaces(&self) -> &BTreeMap<u32, (String, Arc<Levels>)> {
        &self.keyspaces
    }

    /// The levels of keyspace `id`.
    pub(crate) fn levels_of(&self, id: u32) -> Option<&Arc<Levels>> {
        self.keyspaces.get(&id).map(|(_, l)| l)
    }

    /// WAL files numbered below this are fully flushed.
    pub(crate) fn log_number(&self) -> u64 {
        self.log_number
    }

    /// The largest timestamp made durable in SSTs.
    pub(crate) fn last_timestamp(&self) -> u64 {
        self.last_timestamp
    }

    /// Versions older than this may have been collected.
    pub(crate) fn history_horizon(&self) -> u64 {
        self.history_horizon
    }

    /// The next keyspace id (ids are never reused).
    pub(crate) fn next_keyspace_id(&self) -> u32 {
        self.next_keyspace_id
    }

    /// Sealed WALs not yet flushed: number → length.
    pub(crate) fn sealed_wals(&self) -> &BTreeMap<u64, u64> {
        &self.sealed_wals
    }

    /// Live WALs' uids: number → uid.
    pub(crate) fn wal_uids(&self) -> &BTreeMap<u64, [u8; 16]> {
        &self.wal_uids
    }

    /// The next file number to hand out: every number the database handed
    /// out is below it.
    pub(crate) fn next_file_number(&self) -> u64 {
        self.next_file_number
    }

    /// Makes the next file number at least `n` (the manifest in use was
    /// numbered below it).
    pub(crate) fn reserve_file_numbers_below(&mut self, n: u64) {
        self.next_file_number = self.next_file_number.max(n);
    }

    /// Makes the counter step over `numbers`: files found at open under the
    /// engine's names with numbers it never handed out (not its own).
    pub(crate) fn step_over(&mut self, numbers: BTreeSet<u64>) {
        self.foreign_numbers.extend(numbers);
    }

    /// True when file number `n` was handed out by this database: below the
    /// counter and not one it stepped over.
    pub(crate) fn handed_out(&self, n: u64) -> bool {
        n < self.next_file_number && !self.foreign_numbers.contains(&n)
    }

    /// Raises the last durable timestamp to `ts` (recorded with the next
    /// snapshot of the state).
    pub(crate) fn note_last_timestamp(&mut self, ts: u64) {
        self.last_timestamp = self.last_timestamp.max(ts);
    }

    /// Records a WAL created before the manifest that will name it.
    pub(crate) fn note_wal_created(&mut self, number: u64, uid: [u8; 16]) {
        self.wal_uids.insert(number, uid);
    }

    /// The highest L0 file count of any keyspace.
    pub(crate) fn max_l0_files(&self) -> usize {
        self.keyspaces
            .values()
            .map(|(_, l)| l.level(0).len())
            .max()
            .unwrap_or(0)
    }

    /// Hands out a new file number. When the number reaches the limit the
    /// manifest records, a record reserving it and the next
    /// [`FILE_NUMBER_BATCH`]` - 1` numbers is made durable first. If that record cannot be written, no further
    /// record may be: the caller's next manifest write fails, and the
    /// number stays unrecorded until the manifest is rewritten (which
    /// records the counter).
    pub fn new_file_number(&mut self) -> u64 {
        let mut n = self.next_file_number;
        while self.foreign_numbers.contains(&n) {
            n += 1;
        }
        self.next_file_number = n + 1;
        if self.next_file_number > self.file_number_limit {
            self.reserve_file_numbers();
        }
        n
    }

    /// Records in the manifest that the number just handed out and the
    /// next [`FILE_NUMBER_BATCH`]` - 1` may be handed out. Without an open manifest
    /// (recovery, before it writes its own) there is nothing to record
    /// to: the next manifest's snapshot records the counter.
    fn reserve_file_numbers(&mut self) {
        if self.manifest.is_none() || self.failed {
            return;
        }
        let limit = self.next_file_number.saturating_add(FILE_NUMBER_BATCH - 1);
        // The foreign numbers the counter may step over up to the limit are
        // recorded with it.
        let skipped: Vec<u64> = self
            .foreign_numbers
            .range(..limit)
            .filter(|n| !self.skips_recorded.contains(n))
            .copied()
            .collect();
        let mut edit = VersionEdit {
            next_file_number: Some(limit),
            numbers_skipped: skipped.clone(),
            ..VersionEdit::default()
        };
        match self.log(&mut edit) {
            Ok(()) => {
                self.file_number_limit = limit;
                self.skips_recorded.extend(skipped);
            }
            Err(_) => self.failed = true,
        }
    }

    /// The blob files the state's SSTs point into.
    pub(crate) fn blobs(&self) -> &crate::blob::set::BlobSet {
        &self.blobs
    }

    /// Where blob files are opened.
    pub(crate) fn blob_store(&self) -> &Arc<crate::blob::BlobStore> {
        &self.blob_store
    }

    /// Applies an edit to the in-memory state (replay, or after logging).
    pub(crate) fn apply(&mut self, edit: &VersionEdit) -> Result<()> {
        for &(n, len) in &edit.wals_sealed {
            self.sealed_wals.insert(n, len);
        }
        if let Some(n) = edit.log_number {
            self.log_number = self.log_number.max(n);
        }
        for &(n, uid) in &edit.wals_created {
            self.wal_uids.insert(n, uid);
        }
        let log_number = self.log_number;
        self.sealed_wals.retain(|&n, _| n >= log_number);
        self.wal_uids.retain(|&n, _| n >= log_number);
        if let Some(n) = edit.next_file_number {
            self.next_file_number = self.next_file_number.max(n);
            self.file_number_limit = self.file_number_limit.max(n);
        }
        if let Some(t) = edit.last_timestamp {
            self.last_timestamp = self.last_timestamp.max(t);
        }
        for &n in &edit.numbers_skipped {
            self.foreign_numbers.insert(n);
            self.skips_recorded.insert(n);
        }
        if let Some(t) = edit.history_horizon {
            self.history_horizon = self.history_horizon.max(t);
        }
        if let Some(n) = edit.next_keyspace_id {
            self.next_keyspace_id = self.next_keyspace_id.max(n);
        }
        for (id, name) in &edit.keyspaces_created {
            self.next_keyspace_id = self.next_keyspace_id.max(id.saturating_add(1));
            self.keyspaces
                .insert(*id, (name.clone(), Arc::new(Levels::new(self.num_levels))));
        }
        self.blobs.add(&self.blob_store, &edit.blob_files_added);
        let mut touched: BTreeMap<u32, Changes> = BTreeMap::new();
        for r in &edit.files_removed {
            touched.entry(r.keyspace).or_default().0.push(*r);
        }
        for f in &edit.files_added {
            // A file moved between levels keeps its FileMeta: readers of the
            // old version and the new share one deletion flag.
            let moved = edit
                .files_removed
                .iter()
                .any(|r| r.keyspace == f.keyspace && r.file_number == f.file_number);
            let existing = if moved {
                self.keyspaces.get(&f.keyspace).and_then(|(_, levels)| {
                    levels
                        .all_files()
                        .find(|(_, m)| m.number == f.file_number)
                        .map(|(_, m)| m.clone())
                })
            } else {
                None
            };
            let meta = match existing {
                Some(m) => m,
                None => Arc::new(FileMeta::from_edit(
                    f,
                    &self.dir,
                    self.fs.clone(),
                    self.blobs.resolve(&f.blob_refs)?,
                )),
            };
            touched
                .entry(f.keyspace)
                .or_default()
                .1
                .push((f.level, meta));
        }
        for (ks, (removed, added)) in touched {
            let (_, levels) = self.keyspaces.get_mut(&ks).ok_or_else(|| {
                Error::InvalidArgument(format!("manifest names unknown keyspace {ks}"))
            })?;
            let mut next = (**levels).clone();
            next.apply(&removed, added)?;
            *levels = Arc::new(next);
        }
        for id in &edit.keyspaces_dropped {
            self.keyspaces.remove(id);
        }
        self.blobs.remove(&edit.blob_files_removed);
        Ok(())
    }

    /// The skipped numbers a snapshot of the state records: those recorded
    /// already, and every foreign number below the counter (the counter
    /// stepped over it, maybe before any reservation recorded it).
    fn skips_to_record(&self) -> impl Iterator<Item = u64> + '_ {
        let below = self.foreign_numbers.range(..self.next_file_number).copied();
        self.skips_recorded
            .iter()
            .copied()
            .filter(move |n| *n >= self.next_file_number)
            .chain(below)
    }

    /// An edit that recreates the whole current state: the first record of a
    /// new manifest.
    pub(crate) fn snapshot_edit(&self) -> VersionEdit {
        let mut edit = VersionEdit {
            log_number: Some(self.log_number),
            next_file_number: Some(self.next_file_number),
            last_timestamp: Some(self.last_timestamp),
            history_horizon: Some(self.history_horizon),
            next_keyspace_id: Some(self.next_keyspace_id),
            wals_sealed: self.sealed_wals.iter().map(|(&n, &l)| (n, l)).collect(),
            wals_created: self.wal_uids.iter().map(|(&n, &u)| (n, u)).collect(),
            numbers_skipped: self.skips_to_record().collect(),
            ..VersionEdit::default()
        };
        edit.blob_files_added = self.blobs.to_edits();
        for (id, (name, levels)) in &self.keyspaces {
            edit.keyspaces_created.push((*id, name.clone()));
            for (level, f) in levels.all_files() {
                edit.files_added.push(f.to_edit(*id, level as u8));
            }
        }
        edit
    }

    /// Starts a new manifest holding a snapshot of the current state, makes
    /// it durable, then points CURRENT at it (write a temp file, sync,
    /// rename, sync the directory). Returns the old manifest's number.
    pub(crate) fn rotate_manifest(&mut self) -> Result<Option<u64>> {
        let number = self.new_file_number();
        let path = names::manifest(&self.dir, number);
        let fs = self.fs.clone();
        let mut log = self.manifest_log(number, &self.snapshot_edit())?;
        let mut file = fs.create(&path).map_err(|e| Error::io(&path, e))?;
        let bytes = std::mem::take(log.get_mut());
        file.append(&bytes).map_err(|e| Error::io(&path, e))?;
        file.sync().map_err(|e| Error::io(&path, e))?;
        let mut writer = ManifestWriter {
            number,
            snapshot_len: log.offset(),
            log,
            file: FileHandle(file),
        };
        writer.mark_synced(&path)?;
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| Error::io(&self.dir, e))?;
        set_current(&*fs, &self.dir, number)?;
        // The new manifest holds the counter: the numbers the old one
        // reserved beyond it were never handed out. It also holds every
        // number skipped below the counter.
        self.file_number_limit = self.next_file_number;
        let skipped: Vec<u64> = self.skips_to_record().collect();
        self.skips_recorded.extend(skipped);
        let old = self.manifest.replace(writer);
        Ok(old.map(|m| m.number))
    }

    /// A manifest log numbered `number` whose one record is `edit`,
    /// encrypted under the current key: its bytes are the log's buffer.
    fn manifest_log(&self, number: u64, edit: &VersionEdit) -> Result<LogWriter<Vec<u8>>> {
        let path = names::manifest(&self.dir, number);
        let key = self.ciphers.current()?;
        let header = LogHeader {
            kind: LogKind::Manifest,
            file_number: number,
            file_uid: crate::random::uid(),
            key_id: key.as_ref().map(|k| k.id()),
        };
        let mut log = LogWriter::new(Vec::new(), header, Compression::None, key)
            .map_err(|e| Error::format(&path, e))?;
        log.add_record(&edit.encode())
            .map_err(|e| Error::format(&path, e))?;
        Ok(log)
    }

    /// The manifest of a copy of the current state (a checkpoint): its
    /// number and bytes. The number is the counter's next one, which no
    /// file of the state has; the copy's counter starts past it. Nothing
    /// is written here, so the source's counter does not move.
    pub(crate) fn manifest_for_copy(&self) -> Result<(u64, Vec<u8>)> {
        let mut edit = self.snapshot_edit();
        // Past numbers the state skips (foreign files' names in the source).
        let mut number = self.next_file_number;
        while edit.numbers_skipped.contains(&number) {
            number += 1;
        }
        edit.next_file_number = Some(number + 1);
        let mut log = self.manifest_log(number, &edit)?;
        Ok((number, std::mem::take(log.get_mut())))
    }

    /// Makes `edit` durable in the manifest, then applies it. Counters
    /// (next file number, last timestamp) are filled in here so every record
    /// carries them.
    pub(crate) fn log_and_apply(&mut self, mut edit: VersionEdit) -> Result<()> {
        if self.failed {
            return Err(Error::Poisoned("an earlier manifest write failed".into()));
        }
        // Blob files no SST points into after the edit leave the state in
        // the same record.
        let unreferenced = self.blobs.unreferenced_after(&self.keyspaces, &edit);
        edit.blob_files_removed.extend(unreferenced);
        let gone: Vec<_> = edit
            .blob_files_removed
            .iter()
            .filter_map(|&n| self.blobs.get(n))
            .collect();
        let r = self.log(&mut edit);
        if r.is_err() {
            self.failed = true;
            return r;
        }
        self.apply(&edit)?;
        // Logged: each goes once the last reader that can reach it does.
        for f in gone {
            f.mark_obsolete();
        }
        let (len, base) = self
            .manifest
            .as_ref()
            .map_or((0, 0), |m| (m.log.offset(), m.snapshot_len));
        // Twice the snapshot at least, so a large state does not rewrite
        // the manifest at every edit.
        if len > self.max_manifest_size.max(2 * base) {
            // The edit is durable; rewriting the manifest as one snapshot
            // record keeps it from growing without bound. If that fails the
            // old manifest stays current, but no further record may go to
            // it (its writer may be torn).
            match self.rotate_manifest() {
                Ok(Some(old)) => {
                    let _ = self.fs.remove_file(&names::manifest(&self.dir, old));
                }
                Ok(None) => {}
                Err(_) => self.failed = true,
            }
        }
        Ok(())
    }

    fn log(&mut self, edit: &mut VersionEdit) -> Result<()> {
        // A reservation records more than the counter.
        edit.next_file_number = Some(
            edit.next_file_number
                .map_or(self.next_file_number, |n| n.max(self.next_file_number)),
        );
        edit.next_keyspace_id = Some(self.next_keyspace_id);
        let m = self
            .manifest
            .as_mut()
            .ok_or_else(|| Error::InvalidArgument("no manifest is open".into()))?;
        let path = names::manifest(&self.dir, m.number);
        m.log
            .add_record(&edit.encode())
            .map_err(|e| Error::format(&path, e))?;
        let bytes = std::mem::take(m.log.get_mut());
        m.file.0.append(&bytes).map_err(|e| Error::io(&path, e))?;
        m.file.0.sync().map_err(|e| Error::io(&path, e))?;
        m.mark_synced(&path)
    }

    /// True after a manifest write failed: no edit may be logged until the
    /// manifest is rewritten.
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// Clears the failure, once `rotate_manifest` has written a new manifest.
    pub(crate) fn clear_failed(&mut self) {
        self.failed = false;
    }

    /// The file system the manifest is written through.
    pub(crate) fn fs(&self) -> &Arc<dyn FileSystem> {
        &self.fs
    }

    /// The number of the manifest in use.
    pub fn manifest_number(&self) -> Option<u64> {
        self.manifest.as_ref().map(|m| m.number).or(self.replayed)
    }

    /// Records that the state was replayed from manifest `number` (the one
    /// in use until a new one is written).
    pub(crate) fn replayed_from(&mut self, number: u64) {
        self.replayed = Some(number);
    }
}

/// The version set part: the [`VersionSet`] behind its lock, and the L0
/// gauge writers throttle on (kept outside the lock, as they read it per
/// commit group).
#[derive(Debug)]
pub(crate) struct Versions {
    set: parking_lot::Mutex<VersionSet>,
    max_l0: std::sync::atomic::AtomicUsize,
}

impl Versions {
    /// The part over `set`.
    pub(crate) fn new(set: VersionSet) -> Self {
        let max_l0 = set.max_l0_files();
        Versions {
            set: parking_lot::Mutex::new(set),
            max_l0: std::sync::atomic::AtomicUsize::new(max_l0),
        }
    }

    /// Locks the version set. Whoever changes the levels through it calls
    /// [`levels_changed`](Self::levels_changed) before letting go.
    pub(crate) fn lock(&self) -> parking_lot::MutexGuard<'_, VersionSet> {
        self.set.lock()
    }

    /// Hands out a new file number, or fails when the manifest cannot
    /// record it (a file under an unrecorded number would not be provably
    /// the engine's after a crash).
    pub(crate) fn new_file_number(&self) -> Result<u64> {
        let mut vs = self.set.lock();
        let n = vs.new_file_number();
        if vs.failed() {
            return Err(Error::Poisoned(
                "a manifest write failed: new file numbers cannot be recorded".into(),
            ));
        }
        Ok(n)
    }

    /// Recomputes the L0 gauge from `vs` (this part's set, locked).
    pub(crate) fn levels_changed(&self, vs: &VersionSet) {
        self.max_l0.store(vs.max_l0_files(), Ordering::Relaxed);
    }

    /// The highest L0 file count of any keyspace, as of the last change.
    pub(crate) fn max_l0_files(&self) -> usize {
        self.max_l0.load(Ordering::Relaxed)
    }
}

/// Points CURRENT at manifest `number`, atomically and durably.
fn set_current(fs: &dyn FileSystem, dir: &Path, number: u64) -> Result<()> {
    let tmp = dir.join(names::CURRENT_TMP);
    let mut f = fs.create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.append(format!("MANIFEST-{number:06}\n").as_bytes())
        .map_err(|e| Error::io(&tmp, e))?;
    f.sync().map_err(|e| Error::io(&tmp, e))?;
    drop(f);
    let current = dir.join(names::CURRENT);
    fs.rename(&tmp, &current)
        .map_err(|e| Error::io(&current, e))?;
    fs.sync_dir(dir).map_err(|e| Error::io(dir, e))
}
