//! Checking every checksum of every live file, as an operator's scrub.
//!
//! Reads bypass the caches, so what is checked is what is on disk. Every
//! damaged file is reported, not just the first.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_format::key::{InternalKeyRef, ValueKind};
use strata_format::log::{LogKind, LogReadOptions, LogReader};
use strata_format::manifest::VersionEdit;
use strata_format::sst::{Table, TableReadOptions};

use crate::blob::BlobStore;
use crate::encryption::Ciphers;
use crate::error::{Error, Result};
use crate::fs::{names, FileSystem};
use crate::levels::FileMeta;
use crate::options::{Options, SstReads};
use crate::table_file::SstSource;
use crate::version::VersionSet;

/// One damaged file found by [`Db::verify`](crate::Db::verify).
#[derive(Debug, Clone)]
pub struct DamagedFile {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, with the offset where it applies.
    pub error: Error,
}

/// What [`Db::verify`](crate::Db::verify) checked and found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Files read in full.
    pub files_checked: usize,
    /// Bytes read.
    pub bytes_checked: u64,
    /// SST entries decoded.
    pub entries_checked: u64,
    /// SST range-tombstone entries decoded (one per fragment and
    /// timestamp): what compaction has yet to collect of range deletes.
    pub range_deletions_checked: u64,
    /// Separated values read from blob files (one per blob pointer of
    /// the live SSTs).
    pub blob_values_checked: u64,
    /// Every damaged file.
    pub damaged: Vec<DamagedFile>,
}

impl VerifyReport {
    /// True when no file is damaged.
    pub fn is_ok(&self) -> bool {
        self.damaged.is_empty()
    }

    /// The counters a table check adds to.
    pub(crate) fn tallies(&mut self) -> Tallies<'_> {
        Tallies {
            entries: &mut self.entries_checked,
            range_deletions: &mut self.range_deletions_checked,
            blob_values: &mut self.blob_values_checked,
            damaged: &mut self.damaged,
        }
    }

    pub(crate) fn record(&mut self, path: PathBuf, r: Result<u64>) {
        self.files_checked += 1;
        match r {
            Ok(bytes) => self.bytes_checked += bytes,
            Err(error) => self.damaged.push(DamagedFile { path, error }),
        }
    }
}

/// What a table check counts.
pub(crate) struct Tallies<'a> {
    entries: &'a mut u64,
    range_deletions: &'a mut u64,
    blob_values: &'a mut u64,
    /// Where a damaged blob file is reported (once per file).
    damaged: &'a mut Vec<DamagedFile>,
}

/// What checking a file needs: where the files are, how SSTs are read and
/// the keys.
pub(crate) struct Checker<'a> {
    fs: &'a dyn FileSystem,
    dir: &'a Path,
    reads: SstReads,
    ciphers: &'a Ciphers,
    /// Where the values blob pointers name are read, to check them too.
    blobs: Option<&'a BlobStore>,
}

/// Every SST of the current version.
pub(crate) fn live_tables(vs: &VersionSet) -> Vec<Arc<FileMeta>> {
    vs.keyspaces()
        .values()
        .flat_map(|(_, l)| l.all_files().map(|(_, f)| f.clone()).collect::<Vec<_>>())
        .collect()
}

/// The path an error concerns, when it names one.
fn error_path(e: &Error) -> Option<PathBuf> {
    match e {
        Error::Io { path, .. } | Error::Format { path, .. } | Error::Decrypt { path, .. } => {
            Some(path.clone())
        }
        _ => None,
    }
}

/// Checks a closed database's directory without changing anything in it
/// (no recovery runs): CURRENT, the manifest, every WAL recovery would
/// replay and every SST the manifest names. When the manifest cannot be
/// read, every SST and WAL in the directory is still checked on its own.
pub(crate) fn verify_dir(dir: &Path, opts: &Options) -> Result<VerifyReport> {
    let fs = opts.fs.clone();
    let listing = fs.list(dir).map_err(|e| Error::io(dir, e))?;
    let _lock = crate::recovery::lock_for_reading(&*fs, dir)?;
    let ciphers = std::sync::Arc::new(Ciphers::new(opts.key_provider.clone()));
    let mut report = VerifyReport::default();
    let mut vs = VersionSet::new(dir, opts, u64::MAX, ciphers.clone());
    let blobs = vs.blob_store().clone();
    let c = Checker::new(&*fs, dir, opts.sst_reads, &ciphers, Some(&blobs));
    let replayed = crate::recovery::replay_manifest(dir, &mut vs, &ciphers);
    let current = dir.join(names::CURRENT);
    let manifest_ok = match replayed {
        Ok(Some(n)) => {
            report.record(current, Ok(0));
            let r = c.log(n, LogKind::Manifest, Durable::UpToMarkers, None);
            report.record(names::manifest(dir, n), r);
            // The damage open refuses: a WAL of the database beyond the
            // numbers the manifest handed out.
            if let Err(error) = crate::recovery::refuse_wals_the_manifest_lost(
                &*fs,
                dir,
                Some(n),
                vs.next_file_number(),
                &listing,
            ) {
                report.damaged.push(DamagedFile {
                    path: names::manifest(dir, n),
                    error,
                });
            }
            true
        }
        Ok(None) => {
            if listing.iter().any(|n| names::parse(n).is_some()) {
                let e = Error::format(
                    &current,
                    strata_format::Error::corruption("CURRENT is missing", 0),
                );
                report.record(current, Err(e));
            }
            false
        }
        // Without the right key nothing can be checked: a missing or wrong
        // key is the caller's problem, not damage to report.
        Err(e @ Error::Decrypt { .. }) => return Err(e),
        Err(e) => {
            let path = error_path(&e).unwrap_or(current);
            report.record(path, Err(e));
            false
        }
    };
    let mut wals: Vec<u64> = listing
        .iter()
        .filter_map(|n| match names::parse(n) {
            // With a manifest, only the database's own WALs (SPEC.md
            // §13.5): a WAL numbered beyond what it handed out is not one.
            Some(names::FileKind::Wal(w))
                if !manifest_ok || (w >= vs.log_number() && vs.handed_out(w)) =>
            {
                Some(w)
            }
            _ => None,
        })
        .collect();
    wals.sort_unstable();
    for n in wals {
        // A WAL not recorded as sealed may end in a crash's torn tail (the
        // newest, or one retired unsealed by an open or a resume that did
        // not finish); only what its markers prove durable must be sound.
        let durable = match vs.sealed_wals().get(&n) {
            Some(&len) => Durable::Len(len),
            None => Durable::UpToMarkers,
        };
        let r = c.log(n, LogKind::Wal, durable, vs.wal_uids().get(&n).copied());
        report.record(names::wal(dir, n), r);
    }
    if manifest_ok {
        for f in live_tables(&vs) {
            let r = c.table(&f, &mut report.tallies());
            report.record(f.path().to_path_buf(), r);
        }
    } else {
        for name in &listing {
            if let Some(names::FileKind::Table(n)) = names::parse(name) {
                let path = dir.join(name);
                let r = c.table_alone(n, &path, &mut report.tallies());
                report.record(path, r);
            }
        }
    }
    Ok(report)
}

/// How much of a log must be sound.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Durable {
    /// This many bytes: a log being written, or one sealed at this length.
    Len(u64),
    /// What its sync markers prove durable; a torn tail after that is the
    /// normal trace of a crash.
    UpToMarkers,
}

impl<'a> Checker<'a> {
    /// Checks files of `dir` read through `fs` (SSTs as `reads` says),
    /// decrypting with `ciphers`.
    pub(crate) fn new(
        fs: &'a dyn FileSystem,
        dir: &'a Path,
        reads: SstReads,
        ciphers: &'a Ciphers,
        blobs: Option<&'a BlobStore>,
    ) -> Self {
        Checker {
            fs,
            dir,
            reads,
            ciphers,
            blobs,
        }
    }

    pub(crate) fn current(&self, manifest: Option<u64>) -> Result<u64> {
        let path = self.dir.join(names::CURRENT);
        let text = self.fs.read(&path).map_err(|e| Error::io(&path, e))?;
        let name = String::from_utf8_lossy(&text).trim().to_owned();
        match (names::parse(&name), manifest) {
            (Some(names::FileKind::Manifest(n)), Some(m)) if n == m => Ok(text.len() as u64),
            _ => Err(Error::format(
                &path,
                strata_format::Error::corruption(
                    format!("CURRENT names {name:?}, not the manifest in use"),
                    0,
                ),
            )),
        }
    }

    /// Reads every record of a log and decodes it.
    pub(crate) fn log(
        &self,
        number: u64,
        kind: LogKind,
        durable: Durable,
        uid: Option<[u8; 16]>,
    ) -> Result<u64> {
        let path = match kind {
            LogKind::Wal => names::wal(self.dir, number),
            LogKind::Manifest => names::manifest(self.dir, number),
        };
        let bytes = self.fs.read(&path).map_err(|e| Error::io(&path, e))?;
        let keyring = self.ciphers.keyring(crate::recovery::log_key_id(&bytes));
        let durable_len = match durable {
            Durable::Len(n) => Some(n),
            Durable::UpToMarkers => None,
        };
        let opts = LogReadOptions {
            keyring: Some(&keyring),
            durable_len,
            expected_uid: uid,
            ..LogReadOptions::new(number, kind)
        };
        let fail = |e| Error::format(&path, e);
        let mut reader = LogReader::new(&bytes, &opts).map_err(fail)?;
        while let Some((at, record)) = reader.next_record().map_err(fail)? {
            match kind {
                LogKind::Manifest => {
                    VersionEdit::decode(&record, at).map_err(fail)?;
                }
                LogKind::Wal => {
                    strata_format::batch::BatchRecord::decode(&record, at).map_err(fail)?;
                }
            }
        }
        Ok(bytes.len() as u64)
    }

    /// Checks a live table against what the manifest recorded of it.
    pub(crate) fn table(&self, f: &FileMeta, tallies: &mut Tallies<'_>) -> Result<u64> {
        let path = f.path();
        let fail = |what: String, offset: u64| {
            Error::format(path, strata_format::Error::corruption(what, offset))
        };
        let size = self.fs.file_size(path).map_err(|e| Error::io(path, e))?;
        if size != f.size {
            return Err(fail(
                format!("file is {size} bytes, the manifest says {}", f.size),
                size.min(f.size),
            ));
        }
        let table = self.open_table(f.number, path, Some(f.uid), Some(f.key_id))?;
        let props = table.properties();
        if props.smallest_key != f.smallest || props.largest_key != f.largest {
            return Err(fail("key range differs from the manifest's".into(), 0));
        }
        scan_table(&table, path, tallies, self.blobs)?;
        Ok(size)
    }

    /// Checks a table on its own, when the manifest cannot say what it
    /// should hold.
    fn table_alone(&self, number: u64, path: &Path, tallies: &mut Tallies<'_>) -> Result<u64> {
        let table = self.open_table(number, path, None, None)?;
        scan_table(&table, path, tallies, None)?;
        Ok(table.size())
    }

    /// Opens a table afresh: footer, index, filter, properties.
    fn open_table(
        &self,
        number: u64,
        path: &Path,
        uid: Option<[u8; 16]>,
        key_id: Option<Option<u32>>,
    ) -> Result<Table> {
        let source = SstSource::open(self.fs, path, self.reads)?;
        let footer_key = strata_format::sst::peek_source_key_id(&source);
        let keyring = self.ciphers.keyring(key_id.unwrap_or(footer_key));
        let opts = TableReadOptions {
            file_number: number,
            expected_uid: uid,
            keyring: Some(&keyring),
            expected_key_id: key_id,
        };
        Table::open_source(source, &opts, None).map_err(|e| Error::format(path, e))
    }
}

/// Decodes every entry of a table, checking order and count.
/// Decodes every entry of `table` and, with `blobs`, reads every value a
/// blob pointer of it names (a damaged blob file is reported once, under
/// its own name, and the scan goes on).
fn scan_table(
    table: &Table,
    path: &Path,
    tallies: &mut Tallies<'_>,
    blobs: Option<&BlobStore>,
) -> Result<()> {
    let fail = |what: String| Error::format(path, strata_format::Error::corruption(what, 0));
    let mut it = table.iter_without_fill();
    it.seek_to_first().map_err(|e| Error::format(path, e))?;
    let mut count = 0u64;
    let mut prev: Option<Vec<u8>> = None;
    while it.valid() {
        let key = it.key();
        let parsed = InternalKeyRef::parse(key).map_err(|e| Error::format(path, e))?;
        if let (ValueKind::BlobPointer, Some(store)) = (parsed.kind, blobs) {
            match store.read(it.value()) {
                Ok(_) => *tallies.blob_values += 1,
                Err(e) => {
                    let at = error_path(&e).unwrap_or_else(|| path.to_path_buf());
                    if !tallies.damaged.iter().any(|d| d.path == at) {
                        tallies.damaged.push(DamagedFile { path: at, error: e });
                    }
                }
            }
        }
        if let Some(p) = &prev {
            if strata_format::key::compare_internal(p, key) != std::cmp::Ordering::Less {
                return Err(fail("keys out of order".into()));
            }
        }
        prev = Some(key.to_vec());
        count += 1;
        it.next().map_err(|e| Error::format(path, e))?;
    }
    let expected = table.properties().entries;
    if count != expected {
        return Err(fail(format!(
            "{count} entries, the properties say {expected}"
        )));
    }
    *tallies.entries += count;
    *tallies.range_deletions += table.range_tombstones().entries();
    Ok(())
}
