//! Restoring a backup into a new directory, whole or as of an earlier time.

use std::path::Path;

use strata_format::backup::Catalog;

use super::BackupEngine;
use crate::checkpoint::{hidden_sibling, parent_of};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::options::{Options, WriteOptions};
use crate::reader::Reader;
use crate::timestamp::Timestamp;

/// What `restore` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreInfo {
    /// The backup restored.
    pub id: u64,
    /// The commit timestamp the restored database holds the state of.
    pub ts: Timestamp,
    /// Bytes read from the backup.
    pub bytes: u64,
    /// For a restore as of an earlier time: the keys written (the state at
    /// that time, each at its version's own commit timestamp).
    pub keys: Option<u64>,
}

impl BackupEngine {
    /// Restores backup `id` into `target`, which must not exist or be an
    /// empty directory. Every file is checked against the catalog as it is
    /// copied: a damaged backup is refused, naming the file, and `target`
    /// is left as it was.
    ///
    /// With `at`, the restored database holds the state as of commit
    /// timestamp `at` instead (at most the backup's own, and inside the
    /// history window the backup keeps, else
    /// [`Error::HistoryUnavailable`]): every key's version visible at `at`,
    /// written at that version's commit timestamp with its expiry, so reads
    /// and `get_at` of those versions agree with the source; the history
    /// before `at` is not carried over. `opts` are the options the restored
    /// database is opened with (its key provider, for an encrypted one).
    pub fn restore(
        &self,
        id: u64,
        target: &Path,
        at: Option<Timestamp>,
        opts: &Options,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<RestoreInfo> {
        let catalog = self.catalog(id)?;
        check_target(target)?;
        if let Some(at) = at {
            if at.as_u64() > catalog.ts {
                return Err(Error::InvalidArgument(format!(
                    "backup {id} holds the state up to timestamp {}; {} is after it",
                    catalog.ts,
                    at.as_u64()
                )));
            }
        }
        let copy = hidden_sibling(target, "restore")?;
        self.fs
            .create_dir_all(&copy)
            .map_err(|e| Error::io(&copy, e))?;
        let result = self
            .fill(&catalog, &copy, progress)
            .and_then(|bytes| match at {
                None => {
                    self.install(&copy, target)?;
                    Ok(RestoreInfo {
                        id,
                        ts: Timestamp(catalog.ts),
                        bytes,
                        keys: None,
                    })
                }
                Some(at) => {
                    let rebuilt = hidden_sibling(target, "restore-at")?;
                    let keys = rebuild_at(&copy, &rebuilt, at, opts);
                    self.remove_copy(&catalog, &copy);
                    let keys = keys.inspect_err(|_| remove_tree(&rebuilt))?;
                    self.install(&rebuilt, target)?;
                    Ok(RestoreInfo {
                        id,
                        ts: at,
                        bytes,
                        keys: Some(keys),
                    })
                }
            });
        if result.is_err() {
            self.remove_copy(&catalog, &copy);
        }
        result
    }

    /// Copies every file of `catalog` into `dir`, checking it; returns the
    /// bytes copied.
    fn fill(
        &self,
        catalog: &Catalog,
        dir: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64> {
        let total: u64 = catalog.files.iter().map(|f| f.size).sum();
        let mut done = 0u64;
        for f in &catalog.files {
            let to = dir.join(&f.name);
            let mut w = self.fs.create(&to).map_err(|e| Error::io(&to, e))?;
            let mut crc = 0u32;
            let n = self.read_stored(f, &mut |chunk| {
                crc = crc32c::crc32c_append(crc, chunk);
                w.append(chunk).map_err(|e| Error::io(&to, e))?;
                done += chunk.len() as u64;
                progress(done, total);
                Ok(())
            })?;
            if n != f.size || crc != f.crc32c {
                let stored = self.dir.join(&f.stored_as);
                return Err(Error::format(
                    &stored,
                    strata_format::Error::Checksum {
                        what: format!(
                            "{} in backup {} ({n} bytes, the catalog says {})",
                            f.stored_as, catalog.id, f.size
                        ),
                        offset: 0,
                        stored: f.crc32c,
                        computed: crc,
                    },
                ));
            }
            w.sync().map_err(|e| Error::io(&to, e))?;
        }
        self.fs.sync_dir(dir).map_err(|e| Error::io(dir, e))?;
        Ok(done)
    }

    /// Moves the finished directory `from` to `target`.
    fn install(&self, from: &Path, target: &Path) -> Result<()> {
        if target.exists() {
            // Checked empty before the copy; rename replaces only an empty
            // directory, so a file that appeared since makes this fail.
            std::fs::remove_dir(target).map_err(|e| Error::io(target, e))?;
        }
        self.fs
            .rename(from, target)
            .map_err(|e| Error::io(target, e))?;
        let parent = parent_of(target);
        self.fs.sync_dir(&parent).map_err(|e| Error::io(&parent, e))
    }

    /// Removes a copy `fill` made (the files the catalog names, and what a
    /// read-only open may have left: nothing else).
    fn remove_copy(&self, catalog: &Catalog, dir: &Path) {
        for f in &catalog.files {
            let _ = self.fs.remove_file(&dir.join(&f.name));
        }
        let _ = std::fs::remove_dir(dir);
    }
}

/// `target` must not exist, or be an empty directory.
fn check_target(target: &Path) -> Result<()> {
    match std::fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::InvalidArgument(format!(
                    "{} is not empty: a restore goes into a new or empty directory",
                    target.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::InvalidArgument(format!(
            "{} cannot be restored into: {e}",
            target.display()
        ))),
    }
}

/// Removes a database directory this module made.
fn remove_tree(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// Writes into a new database at `to` the state of the database at `from`
/// as of `at`: each key's visible version at its own commit timestamp, in
/// timestamp order. Returns the keys written.
fn rebuild_at(from: &Path, to: &Path, at: Timestamp, opts: &Options) -> Result<u64> {
    // Only the history the backup holds limits the restore, not a window
    // counted back from today.
    let src = Db::open_read_only(
        from,
        Options {
            history_retention: std::time::Duration::MAX,
            ..opts.clone()
        },
    )?;
    let mut snap = src.snapshot_at(at)?;
    let dst = Db::open(to, opts.clone())?;
    let names = src.keyspaces();
    let mut pairs = Vec::new();
    for name in &names {
        pairs.push((src.keyspace(name)?, dst.keyspace(name)?));
    }
    // Keys by the timestamp of their visible version: batches commit in
    // timestamp order, each at its own.
    let mut order: Vec<(u64, usize, Vec<u8>)> = Vec::new();
    for (i, (ks, _)) in pairs.iter().enumerate() {
        for r in Reader::range(
            &mut snap,
            ks,
            std::ops::Bound::Unbounded,
            std::ops::Bound::Unbounded,
        )? {
            let (k, _) = r?;
            // A snapshot's entries always carry their commit timestamp.
            if let Some(ts) = snap.get_entry(ks, &k)?.and_then(|e| e.ts) {
                order.push((ts.as_u64(), i, k.to_vec()));
            }
        }
    }
    order.sort();
    let mut written = 0u64;
    let mut i = 0;
    while i < order.len() {
        let ts = order[i].0;
        let mut batch = dst.batch();
        while i < order.len() && order[i].0 == ts {
            let (_, k, key) = &order[i];
            let (s, d) = &pairs[*k];
            if let Some(e) = snap.get_entry(s, key)? {
                match e.expires_at {
                    Some(x) => batch.put_expiring(d, key, &e.value[..], x)?,
                    None => batch.put(d, key, &e.value[..])?,
                }
                written += 1;
            }
            i += 1;
        }
        dst.write_at(batch, Timestamp(ts), WriteOptions { sync: false })?;
    }
    dst.flush()?;
    dst.close()?;
    drop(snap);
    src.close()?;
    Ok(written)
}
