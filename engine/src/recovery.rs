//! Opening a database: the recovery procedure (SPEC.md §13.5). `db::open`
//! runs it and wires the database around what it found.
//!
//! 1. Create the directory if needed and take the lock file (neither for a
//!    read-only open).
//! 2. Read CURRENT and replay the manifest it names (a torn last record is
//!    an edit that was never acknowledged, and is ignored).
//! 3. Tell the engine's files from the others: a file is the engine's when
//!    its name is one the engine writes and its number is below the
//!    manifest's counter. Replay, in order, the engine's WALs numbered at
//!    or above the manifest's log number into fresh memtables. A torn tail
//!    ends a WAL's replay; it is corruption when a later WAL holds records
//!    (a WAL is synced before the next is created). Damage before a tail
//!    fails the open with the file and offset.
//! 4. Start a new WAL; flush what was replayed to L0 (`db::open`).
//! 5. Write a new manifest holding a snapshot of the state, point CURRENT at
//!    it, and delete the engine's files it no longer references: old
//!    manifests, flushed WALs, SSTs no version lists (left by a crash
//!    mid-flush or mid-compaction), and `CURRENT.tmp`. Files that are not
//!    the engine's are left alone and reported.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_format::batch::BatchRecord;
use strata_format::log::{LogEnd, LogKind, LogReadOptions, LogReader};
use strata_format::manifest::VersionEdit;

use strata_format::blob::BlobPointer;
use strata_format::key::ValueKind;

use crate::blob::{BlobFile, BlobStore};
use crate::commit::wal::Wal;
use crate::encryption::Ciphers;
use crate::error::{Error, Result};
use crate::fs::names::{self, FileKind};
use crate::fs::FileLock;
use crate::keyspaces::KeyspaceState;
use crate::options::{Options, SstReads};
use crate::version::VersionSet;

/// What steps 1 to 3 recover, and the WAL started for step 4.
pub(crate) struct Recovered {
    /// The directory's lock.
    pub lock: Box<dyn FileLock>,
    /// The state the manifest describes.
    pub versions: VersionSet,
    /// The keyspaces, their memtables holding what the WALs replayed.
    pub keyspaces: Vec<Arc<KeyspaceState>>,
    /// The new WAL, not yet in the manifest.
    pub wal: Wal,
    /// The last commit timestamp found.
    pub last_ts: u64,
    /// The keys.
    pub ciphers: Arc<Ciphers>,
}

/// Steps 1 to 3 of opening, and the new WAL of step 4; the caller wires
/// the database, then flushes what was replayed. With `read_only`, nothing
/// is created or written: no lock file is taken (any number of readers may
/// open the directory, on a read-only mount too), the WALs are replayed in
/// memory only, and the WAL returned is detached (it refuses appends).
pub(crate) fn recover(dir: &Path, opts: &Options, read_only: bool) -> Result<Recovered> {
    opts.validate()?;
    let fs = opts.fs.clone();
    let lock = if read_only {
        Box::new(NoLock) as Box<dyn FileLock>
    } else {
        fs.create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        take_lock(&*fs, dir)?
    };

    // 2. The manifest.
    let ciphers = Arc::new(Ciphers::new(opts.key_provider.clone()));
    let mut vs = VersionSet::new(dir, opts, opts.max_manifest_size, ciphers.clone());
    let blobs = vs.blob_store().clone();
    // Nothing is written before every key the files need has been checked:
    // a wrong or missing key fails the open and leaves the directory as it
    // was.
    ciphers.current()?;
    let replayed_manifest = replay_manifest(dir, &mut vs, &ciphers)?;
    if replayed_manifest.is_none() {
        if read_only {
            return Err(Error::format(
                dir.join(names::CURRENT),
                strata_format::Error::corruption("no database here: CURRENT is missing", 0),
            ));
        }
        refuse_data_without_current(&*fs, dir)?;
    }

    // 3. The WALs.
    let listing = fs.list(dir).map_err(|e| Error::io(dir, e))?;
    // Every number the database handed out is below the manifest's next
    // file number. A file named as the engine names its files with a
    // number at or above it is not the engine's: it is not replayed, not
    // deleted, and does not move the counter, which steps over its number
    // so that nothing is ever written over it.
    let handed_out = vs.next_file_number();
    let foreign = listing
        .iter()
        .filter_map(|n| match names::parse(n) {
            Some(
                FileKind::Wal(w) | FileKind::Table(w) | FileKind::Manifest(w) | FileKind::Blob(w),
            ) if w >= handed_out => Some(w),
            _ => None,
        })
        .collect();
    vs.step_over(foreign);
    if replayed_manifest.is_some() {
        refuse_wals_the_manifest_lost(&*fs, dir, replayed_manifest, handed_out, &listing)?;
    }
    let mut wals: Vec<u64> = listing
        .iter()
        .filter_map(|n| match names::parse(n) {
            Some(FileKind::Wal(w)) if w >= vs.log_number() && vs.handed_out(w) => Some(w),
            _ => None,
        })
        .collect();
    wals.sort_unstable();
    // The WAL the manifest's log number names was created (and its
    // directory entry synced) before the record naming it, and is deleted
    // only after a later record moves the log number past it: if it is
    // missing, records of the manifest were lost.
    if replayed_manifest.is_some() && vs.log_number() > 0 && !wals.contains(&vs.log_number()) {
        return Err(manifest_says(
            dir,
            replayed_manifest,
            format!(
                "the manifest's log number names WAL {}, which is missing (its later records were lost)",
                vs.log_number()
            ),
        ));
    }
    // A sealed WAL the manifest knows of must be there, whole.
    for (&n, _) in vs.sealed_wals().iter() {
        if !wals.contains(&n) {
            return Err(manifest_says(
                dir,
                replayed_manifest,
                format!("WAL {n} was sealed and not yet flushed, but it is missing"),
            ));
        }
    }
    check_tables_present(dir, replayed_manifest, &vs, &listing)?;

    let keyspaces: Vec<Arc<KeyspaceState>> = vs
        .keyspaces()
        .iter()
        .map(|(id, (name, levels))| {
            Arc::new(KeyspaceState::new(
                *id,
                name.clone(),
                levels.clone(),
                opts.memtable_size,
            ))
        })
        .collect();
    // The clock resumes above every timestamp the files know of, the
    // history horizon included.
    let mut last_ts = vs.last_timestamp().max(vs.history_horizon());
    // A torn tail is the trace of a crash in the WAL being written then. A
    // WAL is sealed (synced) before the next is created, and recovery
    // creates one before it has flushed what it replayed, so a torn WAL may
    // be followed by WALs only if those hold no record.
    let mut torn: Option<(u64, u64)> = None;
    for &number in &wals {
        let path = names::wal(dir, number);
        let bytes = fs.read(&path).map_err(|e| Error::io(&path, e))?;
        let keyring = ciphers.keyring(log_key_id(&bytes));
        let ropts = LogReadOptions {
            keyring: Some(&keyring),
            durable_len: vs.sealed_wals().get(&number).copied(),
            expected_uid: vs.wal_uids().get(&number).copied(),
            ..LogReadOptions::new(number, LogKind::Wal)
        };
        let mut reader = LogReader::new(&bytes, &ropts).map_err(|e| Error::format(&path, e))?;
        // The blob file beside the WAL, opened at its first pointer.
        let mut blob: Option<Arc<BlobFile>> = None;
        let mut cut: Option<u64> = None;
        while let Some((at, record)) = reader.next_record().map_err(|e| Error::format(&path, e))? {
            if let Some((torn_wal, offset)) = torn {
                return Err(Error::format(
                    names::wal(dir, torn_wal),
                    strata_format::Error::corruption(
                        format!("WAL {torn_wal} is cut short but WAL {number} holds later writes"),
                        offset,
                    ),
                ));
            }
            let batch = BatchRecord::decode(&record, at).map_err(|e| Error::format(&path, e))?;
            // A keyspace id never handed out means the manifest lost the
            // record creating it: replaying would drop the writes silently.
            if let Some(op) = batch
                .ops()
                .iter()
                .find(|op| op.keyspace >= vs.next_keyspace_id())
            {
                return Err(Error::format(
                    &path,
                    strata_format::Error::corruption(
                        format!(
                            "write to keyspace id {}, which MANIFEST-{:06} never created",
                            op.keyspace,
                            replayed_manifest.unwrap_or(0)
                        ),
                        at,
                    ),
                ));
            }
            if let Err(e) = check_blob_pointers(&batch, at, &reader, &blobs, &mut blob, number, dir)
            {
                match e {
                    // A record past what was synced whose value did not
                    // reach the blob file: the crash cut the log there.
                    BlobCheck::Torn => {
                        cut = Some(at);
                        break;
                    }
                    BlobCheck::Failed(e) => return Err(e),
                }
            }
            let ts = replay_record(&batch, blob.as_ref(), |id| {
                keyspaces.iter().find(|k| k.id() == id).cloned()
            });
            last_ts = last_ts.max(ts);
        }
        if let Some(offset) = cut {
            torn.get_or_insert((number, offset));
        } else if let Some(LogEnd::TornTail { offset }) = reader.end() {
            torn.get_or_insert((number, offset));
        }
    }

    verify_table_keys(&vs, &ciphers, opts.sst_reads)?;

    // 4. Flush what was replayed, under a fresh WAL (flushed by `finish`).
    let wal_number = vs.new_file_number();
    let wal = if read_only {
        Wal::detached(dir, wal_number)?
    } else {
        Wal::create(
            &*fs,
            dir,
            wal_number,
            ciphers.current()?,
            opts.wal_mmap,
            blobs.clone(),
        )?
    };
    // The new manifest written by `finish` records the new WAL's uid.
    vs.note_wal_created(wal_number, wal.uid());
    vs.note_last_timestamp(last_ts);
    Ok(Recovered {
        lock,
        versions: vs,
        keyspaces,
        wal,
        last_ts,
        ciphers,
    })
}

/// Why a record's blob pointers did not check out.
enum BlobCheck {
    /// A value is missing or damaged where nothing was synced: the record
    /// is part of a torn tail.
    Torn,
    /// A value is missing or damaged where the WAL was synced (a synced
    /// record's values were synced before it): corruption.
    Failed(Error),
}

/// Reads every value the blob pointers of `batch` (a record of WAL
/// `number`) name from the WAL's blob file, opening it at the first
/// pointer (`blob`), and checks it.
fn check_blob_pointers(
    batch: &BatchRecord<'_>,
    at: u64,
    reader: &LogReader<'_>,
    store: &BlobStore,
    blob: &mut Option<Arc<BlobFile>>,
    number: u64,
    dir: &Path,
) -> std::result::Result<(), BlobCheck> {
    let mut pointers = batch
        .ops()
        .iter()
        .filter(|op| op.kind == ValueKind::BlobPointer)
        .peekable();
    if pointers.peek().is_none() {
        return Ok(());
    }
    // Asked only of a record found wanting: the check may scan the rest of
    // the WAL for sync markers.
    let fail = |e: Error| {
        if reader.is_durable(at) {
            BlobCheck::Failed(e)
        } else {
            BlobCheck::Torn
        }
    };
    let file = match blob {
        Some(f) => f.clone(),
        None => {
            let Some(h) = reader.header() else {
                return Err(BlobCheck::Torn);
            };
            let path = names::blob(dir, number);
            let size = match store.fs().file_size(&path) {
                Ok(size) => size,
                // No blob file: every pointer into it lies past its end,
                // judged below as a torn tail or as corruption.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                // Any other failure is the device's, not a torn tail.
                Err(e) => return Err(BlobCheck::Failed(Error::io(&path, e))),
            };
            let f = store.register(&strata_format::manifest::BlobFileAdded {
                file_number: number,
                file_uid: h.file_uid,
                key_id: h.key_id,
                size,
            });
            *blob = Some(f.clone());
            f
        }
    };
    for op in pointers {
        let ptr = BlobPointer::decode(op.value, 0)
            .map_err(|e| BlobCheck::Failed(Error::format(names::wal(dir, number), e)))?;
        if ptr.file_number != number {
            return Err(BlobCheck::Failed(Error::format(
                names::wal(dir, number),
                strata_format::Error::corruption(
                    format!(
                        "a write points into blob file {}, not the WAL's own",
                        ptr.file_number
                    ),
                    at,
                ),
            )));
        }
        file.read(&ptr, store.ciphers()).map_err(fail)?;
    }
    Ok(())
}

/// Replays one WAL record into the memtables, which keep `blob` (the
/// WAL's blob file) when the record points into it; returns its timestamp.
fn replay_record(
    record: &BatchRecord<'_>,
    blob: Option<&Arc<BlobFile>>,
    lookup: impl Fn(u32) -> Option<Arc<KeyspaceState>>,
) -> u64 {
    for op in record.ops() {
        if let Some(ks) = lookup(op.keyspace) {
            let mem = ks.active_memtable();
            if op.kind == ValueKind::BlobPointer {
                if let Some(b) = blob {
                    mem.hold_blob(b);
                }
            }
            mem.insert(op.key, record.ts, op.kind, mem.copy_value(op.value));
        }
    }
    record.ts
}

/// A corruption error on the manifest in use, for a state it describes
/// that the directory contradicts.
fn manifest_says(dir: &Path, manifest: Option<u64>, what: String) -> Error {
    let path = match manifest {
        Some(n) => names::manifest(dir, n),
        None => dir.join(names::CURRENT),
    };
    Error::format(path, strata_format::Error::corruption(what, 0))
}

/// A WAL numbered at or above the manifest's next file number is not the
/// engine's, unless it is: a file that opens with a WAL header naming its
/// own number, and holds more than that header, is a WAL written after
/// records the manifest lost (or one copied in from another database).
/// Neither may be ignored nor replayed: the open fails, naming the
/// manifest. Only the file's first record is read; anything else under
/// such a name is left alone.
pub(crate) fn refuse_wals_the_manifest_lost(
    fs: &dyn crate::fs::FileSystem,
    dir: &Path,
    manifest: Option<u64>,
    handed_out: u64,
    listing: &[String],
) -> Result<()> {
    for name in listing {
        let Some(FileKind::Wal(n)) = names::parse(name) else {
            continue;
        };
        if n < handed_out {
            continue;
        }
        let path = dir.join(name);
        if fs.file_size(&path).map_err(|e| Error::io(&path, e))? <= HEADER_ONLY_WAL {
            continue;
        }
        let bytes = fs.map(&path).map_err(|e| Error::io(&path, e))?;
        let header = strata_format::log::peek_header(&bytes);
        if header.is_some_and(|h| h.kind == LogKind::Wal && h.file_number == n) {
            return Err(manifest_says(
                dir,
                manifest,
                format!(
                    "{name} is a WAL holding records, numbered beyond every file number the manifest handed out (below {handed_out}): records of the manifest were lost"
                ),
            ));
        }
    }
    Ok(())
}

/// Every SST the manifest names must exist with the size it recorded: a
/// missing or resized table is damage (to it, or to the manifest), found
/// at open rather than at the first read that needs it.
fn check_tables_present(
    dir: &Path,
    manifest: Option<u64>,
    vs: &VersionSet,
    listing: &[String],
) -> Result<()> {
    let present: std::collections::HashSet<&str> = listing.iter().map(String::as_str).collect();
    // The size of a file the manifest names; missing is corruption.
    let size_of = |path: &Path, what: &str| -> Result<u64> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !present.contains(name.as_str()) {
            return Err(manifest_says(
                dir,
                manifest,
                format!("the manifest names {what}{name}, which is missing"),
            ));
        }
        vs.fs().file_size(path).map_err(|e| Error::io(path, e))
    };
    let short = |path: &Path, size: u64, recorded: u64| {
        Error::format(
            path,
            strata_format::Error::corruption(
                format!("file is {size} bytes, the manifest says {recorded}"),
                size.min(recorded),
            ),
        )
    };
    for (_, levels) in vs.keyspaces().values() {
        for (_, f) in levels.all_files() {
            let size = size_of(f.path(), "")?;
            if size != f.size {
                return Err(short(f.path(), size, f.size));
            }
        }
    }
    // Blob files too; one may be longer than recorded (a WAL's blob file
    // holds the records of a torn tail), never shorter.
    for b in vs.blobs().files() {
        let size = size_of(b.path(), "blob file ")?;
        if size < b.size() {
            return Err(short(b.path(), size, b.size()));
        }
    }
    Ok(())
}

/// The lock of a read-only open: none.
#[derive(Debug)]
struct NoLock;

impl FileLock for NoLock {}

/// For a reader that changes nothing (`verify_dir`, `describe_dir`): the
/// directory's lock when it can be taken, so a database open for writing
/// is reported as [`Error::Locked`]; none on a read-only file system, where
/// no lock file can be created (and nothing can be written through this
/// mount either).
pub(crate) fn lock_for_reading(
    fs: &dyn crate::fs::FileSystem,
    dir: &Path,
) -> Result<Option<Box<dyn FileLock>>> {
    match take_lock(fs, dir) {
        Ok(l) => Ok(Some(l)),
        Err(Error::Io {
            kind: std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied,
            ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The lock files this process holds, so a second open of a directory in
/// the same process can say so (the file lock alone cannot tell it from
/// another process).
static HELD: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// A directory lock this process holds; forgotten when dropped.
#[derive(Debug)]
struct Held {
    lock: Option<Box<dyn FileLock>>,
    path: PathBuf,
}

impl FileLock for Held {}

impl Drop for Held {
    fn drop(&mut self) {
        // The file lock goes first: once the entry is gone another open in
        // this process may try the lock, and must find it free.
        drop(self.lock.take());
        if let Ok(mut held) = HELD.lock() {
            // One entry: test file systems may hold the same virtual path.
            if let Some(i) = held.iter().position(|p| *p == self.path) {
                held.swap_remove(i);
            }
        }
    }
}

/// Takes the directory's lock file, or fails with [`Error::AlreadyOpen`]
/// when this process holds it, [`Error::Locked`] when another does.
pub(crate) fn take_lock(
    fs: &dyn crate::fs::FileSystem,
    dir: &Path,
) -> Result<Box<dyn crate::fs::FileLock>> {
    let lock_path = dir.join(names::LOCK);
    // The same directory reached by another path is the same lock.
    let key =
        std::fs::canonicalize(dir).map_or_else(|_| lock_path.clone(), |d| d.join(names::LOCK));
    match fs.lock(&lock_path) {
        Ok(lock) => {
            if let Ok(mut held) = HELD.lock() {
                held.push(key.clone());
            }
            Ok(Box::new(Held {
                lock: Some(lock),
                path: key,
            }))
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            let ours = HELD.lock().is_ok_and(|held| held.contains(&key));
            Err(if ours {
                Error::AlreadyOpen(dir.to_path_buf())
            } else {
                Error::Locked(dir.to_path_buf())
            })
        }
        Err(e) => Err(Error::io(&lock_path, e)),
    }
}

/// Reads CURRENT and replays the manifest it names into `vs`; returns the
/// manifest's number, or `None` when there is no CURRENT (a new database).
pub(crate) fn replay_manifest(
    dir: &Path,
    vs: &mut VersionSet,
    ciphers: &Ciphers,
) -> Result<Option<u64>> {
    let fs = vs.fs().clone();
    let current = dir.join(names::CURRENT);
    let exists = fs
        .list(dir)
        .map_err(|e| Error::io(dir, e))?
        .iter()
        .any(|n| n == names::CURRENT);
    if !exists {
        return Ok(None);
    }
    let text = fs.read(&current).map_err(|e| Error::io(&current, e))?;
    let name = String::from_utf8_lossy(&text).trim().to_owned();
    let number = match names::parse(&name) {
        Some(FileKind::Manifest(n)) => n,
        _ => {
            return Err(Error::format(
                &current,
                strata_format::Error::corruption(format!("CURRENT names {name:?}"), 0),
            ))
        }
    };
    let path = names::manifest(dir, number);
    let bytes = fs.read(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::format(
                &current,
                strata_format::Error::corruption(
                    format!("CURRENT names {name}, which does not exist"),
                    0,
                ),
            )
        } else {
            Error::io(&path, e)
        }
    })?;
    let keyring = ciphers.keyring(log_key_id(&bytes));
    let ropts = LogReadOptions {
        keyring: Some(&keyring),
        ..LogReadOptions::new(number, LogKind::Manifest)
    };
    let mut reader = LogReader::new(&bytes, &ropts).map_err(|e| Error::format(&path, e))?;
    let mut any = false;
    while let Some((at, record)) = reader.next_record().map_err(|e| Error::format(&path, e))? {
        let edit = VersionEdit::decode(&record, at).map_err(|e| Error::format(&path, e))?;
        vs.apply(&edit).map_err(|e| match e {
            Error::InvalidArgument(m) => {
                Error::format(&path, strata_format::Error::corruption(m, at))
            }
            other => other,
        })?;
        any = true;
    }
    if !any {
        return Err(Error::format(
            &path,
            strata_format::Error::corruption("manifest holds no record", 0),
        ));
    }
    vs.reserve_file_numbers_below(number.saturating_add(1));
    vs.replayed_from(number);
    Ok(Some(number))
}

/// The size a WAL holding only its header record does not exceed (59
/// bytes): a database created and stopped before its first write, or a
/// WAL an open created before it was cut short.
const HEADER_ONLY_WAL: u64 = 64;

/// A directory without CURRENT is a new database only if it holds no
/// data: SSTs, or WALs with records past their header, without CURRENT mean
/// the file was lost, and starting an empty database over them would hide
/// them. A file named like one in another form (`2.log`, `0007.sst`) is
/// refused too, by its own name: it is not the engine's, but it is no
/// place for a new database either.
fn refuse_data_without_current(fs: &dyn crate::fs::FileSystem, dir: &Path) -> Result<()> {
    for name in fs.list(dir).map_err(|e| Error::io(dir, e))? {
        let path = dir.join(&name);
        let data = match names::parse(&name) {
            Some(FileKind::Table(_) | FileKind::Blob(_)) => true,
            Some(FileKind::Wal(_)) => {
                fs.file_size(&path).map_err(|e| Error::io(&path, e))? > HEADER_ONLY_WAL
            }
            Some(FileKind::Manifest(_) | FileKind::Temp) => false,
            None => name
                .strip_suffix(".log")
                .or_else(|| name.strip_suffix(".sst"))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        };
        if data {
            return Err(Error::format(
                dir.join(names::CURRENT),
                strata_format::Error::corruption(
                    format!("CURRENT is missing but {name} holds data; refusing to start an empty database over it"),
                    0,
                ),
            ));
        }
    }
    Ok(())
}

/// The key id a log's header declares (the header is plaintext), so the
/// right key can be fetched before reading the records.
pub(crate) fn log_key_id(bytes: &[u8]) -> Option<u32> {
    strata_format::log::peek_header(bytes).and_then(|h| h.key_id)
}

/// Opens one SST per key id the manifest names, so that a missing or wrong
/// key fails the open (as `Decrypt`, naming the file) before anything is
/// written.
fn verify_table_keys(vs: &VersionSet, ciphers: &Ciphers, reads: SstReads) -> Result<()> {
    let mut checked = std::collections::HashSet::new();
    for (_, levels) in vs.keyspaces().values() {
        for (_, f) in levels.all_files() {
            let Some(id) = f.key_id else { continue };
            if !checked.insert(id) {
                continue;
            }
            let keyring = ciphers.keyring(Some(id));
            let opts = strata_format::sst::TableReadOptions {
                file_number: f.number,
                expected_uid: Some(f.uid),
                keyring: Some(&keyring),
                expected_key_id: Some(f.key_id),
            };
            crate::table_file::open_table(&**vs.fs(), f.path(), reads, &opts, None)?;
        }
    }
    // Blob files too: a key only they need (values separated in a
    // plaintext keyspace, a rotated key) must be there as well.
    for b in vs.blobs().files() {
        let Some(id) = b.key_id() else { continue };
        if checked.insert(id) && ciphers.get(id).is_none() {
            return Err(Error::format(
                b.path(),
                strata_format::Error::MissingKey {
                    what: "blob file".into(),
                    offset: 0,
                    key_id: id,
                },
            ));
        }
    }
    Ok(())
}

/// Deletes every file of the directory that is provably the engine's and
/// that the current state `vs` does not reference (SPEC.md §13.5); returns
/// how many tables and temporary files went, and the files left alone as
/// not the engine's (for [`Stats::foreign_files`](crate::Stats::foreign_files)).
///
/// A file is the engine's when its name is one the engine writes
/// ([`names::parse`]) and, for a numbered file, its number was handed out
/// by this database: below the counter, and not one the counter stepped
/// over because a file not the engine's held it at open. Of those, an SST
/// no version lists, a WAL below the log number, a manifest other than the
/// current one, and `CURRENT.tmp` are removed.
pub(crate) fn remove_obsolete_files(
    fs: &dyn crate::fs::FileSystem,
    dir: &Path,
    vs: &VersionSet,
) -> Result<(u64, Vec<String>)> {
    let live_tables: std::collections::HashSet<u64> = vs
        .keyspaces()
        .values()
        .flat_map(|(_, l)| l.all_files().map(|(_, f)| f.number).collect::<Vec<_>>())
        .collect();
    let manifest = vs.manifest_number();
    let log_number = vs.log_number();
    let ours = |n: u64| vs.handed_out(n);
    let mut listing = fs.list(dir).map_err(|e| Error::io(dir, e))?;
    listing.sort();
    // WALs still replayed: the blob files beside them stay.
    let live_wals: std::collections::HashSet<u64> = listing
        .iter()
        .filter_map(|n| match names::parse(n) {
            Some(FileKind::Wal(w)) if w >= log_number => Some(w),
            _ => None,
        })
        .collect();
    let mut foreign = Vec::new();
    let mut removed = 0;
    for name in listing {
        let remove = match names::parse(&name) {
            Some(FileKind::Table(n)) if ours(n) => !live_tables.contains(&n),
            Some(FileKind::Wal(n)) if ours(n) => n < log_number,
            // A blob file stays while SSTs point into it or the WAL it was
            // written beside is still replayed.
            Some(FileKind::Blob(n)) if ours(n) => {
                !vs.blobs().contains(n) && !live_wals.contains(&n)
            }
            Some(FileKind::Manifest(n)) if ours(n) => Some(n) != manifest,
            Some(FileKind::Temp) => true,
            _ => {
                if name != names::LOCK && name != names::CURRENT {
                    foreign.push(name.clone());
                }
                false
            }
        };
        if remove {
            let path = dir.join(&name);
            fs.remove_file(&path).map_err(|e| Error::io(&path, e))?;
            if matches!(
                names::parse(&name),
                Some(FileKind::Table(_) | FileKind::Blob(_) | FileKind::Temp)
            ) {
                removed += 1;
            }
        }
    }
    fs.sync_dir(dir).map_err(|e| Error::io(dir, e))?;
    Ok((removed, foreign))
}
