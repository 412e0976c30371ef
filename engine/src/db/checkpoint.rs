//! Capturing the live files of the database at one commit timestamp, for
//! checkpoints and backups.

use crate::checkpoint::{CapturedWal, LiveFiles};
use crate::error::{Error, Result};
use crate::fs::names;
use crate::timestamp::Timestamp;

use super::DbInner;

impl DbInner {
    /// The files that make up the database as of the newest commit, pinned
    /// until the result is dropped: every SST of the current version (an
    /// SST is deleted only once no holder of its metadata is left), every
    /// WAL not yet flushed with the length its acknowledged records end
    /// at (an open handle keeps a WAL's bytes even if a flush retires it),
    /// and a manifest and `CURRENT` written for the copy.
    ///
    /// Commits pause only while the lists are taken: the commit lock keeps
    /// the next group out, so the WALs end exactly at the visible
    /// timestamp; the version set's lock keeps flushes and compactions from
    /// installing meanwhile, so the version and the WALs agree.
    pub(crate) fn capture(&self) -> Result<LiveFiles> {
        // Not in the error state either: a failed WAL write may have left
        // bytes of a group never acknowledged inside the WAL's length.
        self.check_writable()?;
        let quiet = self.pipeline.quiesce();
        let ts = Timestamp(self.visible_ts());
        let vs = self.versions.lock();
        let (manifest_number, manifest) = vs.manifest_for_copy()?;
        let mut tables = Vec::new();
        for (_, levels) in vs.keyspaces().values() {
            for (_, f) in levels.all_files() {
                tables.push(f.clone());
            }
        }
        let blobs: Vec<_> = vs.blobs().files().cloned().collect();
        let log_number = vs.log_number();
        let sealed = vs.sealed_wals().clone();
        let (current, current_len) = self.pipeline.logs().with_current(|w| (w.number(), w.len()));
        let mut wals = Vec::new();
        for number in self.pipeline.logs().live() {
            if number < log_number {
                continue;
            }
            let path = names::wal(&self.dir, number);
            let file = self
                .fs
                .open_random_access(&path)
                .map_err(|e| Error::io(&path, e))?;
            let len = if number == current {
                current_len
            } else {
                sealed.get(&number).copied().unwrap_or_else(|| file.size())
            };
            // The blob file beside it, up to the values its records point
            // at (the commit lock keeps the current one from growing).
            let blob = match self.tables.blobs().get(number) {
                Some(b) => {
                    let file = self
                        .fs
                        .open_random_access(b.path())
                        .map_err(|e| Error::io(b.path(), e))?;
                    Some((b.size(), file))
                }
                None => None,
            };
            wals.push(CapturedWal::new(number, len, file, blob));
        }
        drop(vs);
        drop(quiet);
        Ok(LiveFiles::new(
            self.dir.clone(),
            self.fs.clone(),
            ts,
            tables,
            blobs,
            wals,
            (manifest_number, manifest),
        ))
    }
}
