//! Opening: the recovery of `recovery`, then the database wired around
//! what it found, the replayed writes flushed, and what the new state no
//! longer references deleted (steps 4 and 5 of the recovery procedure).

use std::path::Path;

use strata_format::manifest::VersionEdit;

use crate::error::Result;
use crate::flush::Sealed;
use crate::options::Options;
use crate::recovery;

use super::DbInner;

/// Opens the database in `dir`.
pub(super) fn open(dir: &Path, opts: Options) -> Result<DbInner> {
    let r = recovery::recover(dir, &opts, false)?;
    let wal_number = r.wal.number();
    let inner = DbInner::new(dir.to_path_buf(), opts, r, false);
    let replayed: Vec<_> = inner
        .keyspaces
        .all()
        .into_iter()
        .filter_map(|k| k.seal_memtable().map(|m| (k, m)))
        .collect();
    // 5. A new manifest with the state as replayed so far. Its log number
    // still covers the replayed WALs until they are flushed.
    inner.versions.lock().rotate_manifest()?;
    if replayed.is_empty() {
        let mut vs = inner.versions.lock();
        if vs.log_number() < wal_number {
            vs.log_and_apply(VersionEdit {
                log_number: Some(wal_number),
                ..VersionEdit::default()
            })?;
        }
    } else {
        // 4. Flush what was replayed, before any thread runs.
        inner.flushes.push(Sealed::new(wal_number, replayed));
        inner.drain_flushes()?;
    }
    inner.pipeline.memtables_switched();
    {
        let vs = inner.versions.lock();
        let (removed, foreign) = recovery::remove_obsolete_files(&*inner.fs, &inner.dir, &vs)?;
        inner.counters.removed_at_open(removed);
        inner.counters.set_foreign_files(foreign);
        inner.versions.levels_changed(&vs);
    }
    Ok(inner)
}

/// Opens the database in `dir` without writing anything: the replayed
/// writes stay in the memtables.
pub(super) fn open_read_only(dir: &Path, opts: Options) -> Result<DbInner> {
    let r = recovery::recover(dir, &opts, true)?;
    Ok(DbInner::new(dir.to_path_buf(), opts, r, true))
}
