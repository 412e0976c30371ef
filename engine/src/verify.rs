//! Checking every checksum of every live file, as an operator's scrub.
//!
//! Reads bypass the caches, so what is checked is what is on disk. Every
//! damaged file is reported, not just the first.

use std::path::PathBuf;
use std::sync::Arc;

use strata_format::key::InternalKeyRef;
use strata_format::log::{LogEnd, LogKind, LogReadOptions, LogReader};
use strata_format::manifest::VersionEdit;
use strata_format::sst::{Table, TableReadOptions};

use crate::db::DbInner;
use crate::error::{Error, Result};
use crate::fs::names;
use crate::version::FileMeta;

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
    /// Every damaged file.
    pub damaged: Vec<DamagedFile>,
}

impl VerifyReport {
    /// True when no file is damaged.
    pub fn is_ok(&self) -> bool {
        self.damaged.is_empty()
    }

    fn record(&mut self, path: PathBuf, r: Result<u64>) {
        self.files_checked += 1;
        match r {
            Ok(bytes) => self.bytes_checked += bytes,
            Err(error) => self.damaged.push(DamagedFile { path, error }),
        }
    }
}

impl DbInner {
    /// Reads and checks CURRENT, the manifest, the live WALs and every live
    /// SST.
    pub(crate) fn verify(&self) -> Result<VerifyReport> {
        self.check_open()?;
        let mut report = VerifyReport::default();
        let (manifest, tables) = {
            let vs = self.versions.lock();
            let tables: Vec<Arc<FileMeta>> = vs
                .keyspaces
                .values()
                .flat_map(|(_, l)| l.all_files().map(|(_, f)| f.clone()).collect::<Vec<_>>())
                .collect();
            (vs.manifest_number(), tables)
        };
        let current = self.dir.join(names::CURRENT);
        let r = self.verify_current(manifest);
        report.record(current, r);
        if let Some(n) = manifest {
            let path = names::manifest(&self.dir, n);
            let r = self.verify_log(n, LogKind::Manifest, None);
            report.record(path, r);
        }
        // Older WALs were sealed (synced) before the next one started: all
        // of each must be sound. The one in use may end in a write not yet
        // synced, so it is read under the WAL lock with its durable length.
        let wals: Vec<u64> = self.live_wals.lock().clone();
        for n in wals {
            let path = names::wal(&self.dir, n);
            let r = {
                let wal = self.wal.lock();
                if wal.number == n {
                    self.verify_log(n, LogKind::Wal, Some(wal.synced))
                } else {
                    drop(wal);
                    self.verify_log(n, LogKind::Wal, None)
                }
            };
            match r {
                Err(Error::Io {
                    kind: std::io::ErrorKind::NotFound,
                    ..
                }) => {
                    // Flushed and deleted meanwhile.
                }
                r => report.record(path, r),
            }
        }
        for f in tables {
            let r = self.verify_table(&f, &mut report.entries_checked);
            report.record(f.path().to_path_buf(), r);
        }
        Ok(report)
    }

    fn verify_current(&self, manifest: Option<u64>) -> Result<u64> {
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

    /// Reads every record of a log. `durable` is the synced length of a log
    /// still being written; without it the whole file must be sound.
    fn verify_log(&self, number: u64, kind: LogKind, durable: Option<u64>) -> Result<u64> {
        let path = match kind {
            LogKind::Wal => names::wal(&self.dir, number),
            LogKind::Manifest => names::manifest(&self.dir, number),
        };
        let bytes = self.fs.read(&path).map_err(|e| Error::io(&path, e))?;
        let id = strata_format::log::peek_header(&bytes).and_then(|h| h.key_id);
        let keyring = self.ciphers.keyring(id);
        let opts = LogReadOptions {
            keyring: Some(&keyring),
            durable_len: Some(durable.unwrap_or(bytes.len() as u64)),
            ..LogReadOptions::new(number, kind)
        };
        let fail = |e| Error::format(&path, e);
        let mut reader = LogReader::new(&bytes, &opts).map_err(fail)?;
        if reader.header().is_none() && durable.is_none_or(|d| d > 0) {
            return Err(fail(strata_format::Error::corruption(
                "log header is missing or damaged",
                0,
            )));
        }
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
        if let (Some(LogEnd::TornTail { offset }), None) = (reader.end(), durable) {
            return Err(fail(strata_format::Error::corruption(
                "log cut short",
                offset,
            )));
        }
        Ok(bytes.len() as u64)
    }

    /// Opens a table afresh (footer, index, filter, properties) and decodes
    /// every entry, checking order, count and bounds against the manifest.
    fn verify_table(&self, f: &FileMeta, entries: &mut u64) -> Result<u64> {
        let path = f.path();
        let data = self.fs.map(path).map_err(|e| Error::io(path, e))?;
        let len = data.len() as u64;
        let fail = |what: String, offset: u64| {
            Error::format(path, strata_format::Error::corruption(what, offset))
        };
        if len != f.size {
            return Err(fail(
                format!("file is {len} bytes, the manifest says {}", f.size),
                len.min(f.size),
            ));
        }
        let keyring = self.ciphers.keyring(f.key_id);
        let opts = TableReadOptions {
            file_number: f.number,
            expected_uid: Some(f.uid),
            keyring: Some(&keyring),
            expected_key_id: Some(f.key_id),
        };
        let table = Table::open(data, &opts).map_err(|e| Error::format(path, e))?;
        let mut it = table.iter_without_fill();
        it.seek_to_first().map_err(|e| Error::format(path, e))?;
        let mut count = 0u64;
        let mut prev: Option<Vec<u8>> = None;
        while it.valid() {
            let key = it.key();
            InternalKeyRef::parse(key).map_err(|e| Error::format(path, e))?;
            if let Some(p) = &prev {
                if strata_format::key::compare_internal(p, key) != std::cmp::Ordering::Less {
                    return Err(fail("keys out of order".into(), 0));
                }
            }
            prev = Some(key.to_vec());
            count += 1;
            it.next().map_err(|e| Error::format(path, e))?;
        }
        let props = table.properties();
        if count != props.entries {
            return Err(fail(
                format!("{count} entries, the properties say {}", props.entries),
                0,
            ));
        }
        if props.smallest_key != f.smallest || props.largest_key != f.largest {
            return Err(fail("key range differs from the manifest's".into(), 0));
        }
        *entries += count;
        Ok(len)
    }
}
