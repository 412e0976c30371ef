//! Flushes: sealed generations written to L0 and installed, by the flush
//! thread, by a writer without background threads, or by a resume, all
//! through [`FlushQueue::drain`](crate::flush::FlushQueue::drain).

use std::sync::Arc;

use strata_format::manifest::VersionEdit;
use strata_format::sst::TableOptions;

use crate::cursor::{Cursor, MemCursor};
use crate::error::{Error, Result};
use crate::error_state::Origin;
use crate::flush::Sealed;
use crate::fs::names;
use crate::gc::copy_live;
use crate::policy::gc::collect_range_tombstones;
use crate::table_sink::{JobOutputs, TableFactory, TableSink};

use super::DbInner;

impl DbInner {
    /// What tables of keyspace `id` at `level` are written with.
    pub(super) fn table_options(&self, id: u32, level: usize) -> Result<TableOptions> {
        Ok(TableOptions {
            block_size: self.opts.block_size,
            restart_interval: self.opts.restart_interval,
            bloom_bits_per_key: self.opts.bloom_bits_per_key,
            compression: self.opts.compression_for(level),
            key: self.table_key(id)?,
            created_at_micros: self.opts.clock.now().physical_micros(),
        })
    }

    /// Flushes every queued generation; a failure puts the database in the
    /// error state (under the flush lock).
    pub(super) fn drain_flushes(&self) -> Result<()> {
        let flushed = self.flushes.drain(
            |s| self.flush_sealed(s),
            |e| {
                if !matches!(e, Error::Closed) {
                    self.poison(e.clone(), Origin::Background);
                }
            },
        )?;
        if flushed > 0 {
            self.errors.work_succeeded();
        }
        Ok(())
    }

    /// Writes one sealed generation to L0 and installs it. A failure
    /// leaves no table of the generation behind.
    fn flush_sealed(&self, sealed: &Sealed) -> Result<()> {
        let points = self.gc_points();
        let oldest = points.window;
        let mut edit = VersionEdit::default();
        let mut max_ts = 0;
        let mut written = Vec::new();
        let mut outputs = JobOutputs::new(&*self.fs);
        let numbers = || self.versions.new_file_number();
        for (ks, mem) in sealed.memtables() {
            if ks.is_dropped() || mem.is_empty() {
                continue;
            }
            max_ts = max_ts.max(mem.max_ts());
            let factory = TableFactory::new(
                &self.dir,
                &*self.fs,
                &numbers,
                self.table_options(ks.id(), 0)?,
            );
            let mut sink = TableSink::new(&factory, ks.id(), 0, u64::MAX);
            // Range tombstones are never collected by a flush: older data
            // of their ranges may lie in any table.
            let dels = mem.range_tombstones();
            sink.set_range_tombstones(collect_range_tombstones(
                &points,
                (*dels).clone(),
                &|_, _| false,
            ));
            let mut cursor = MemCursor::new(mem.clone());
            cursor.seek_to_first()?;
            copy_live(
                &mut cursor,
                &mut sink,
                &points,
                &|_| false,
                &dels,
                None,
                &|| self.is_shutdown(),
            )?;
            let out = sink.finish()?;
            outputs.add(&self.dir, &out.files);
            written.push((ks.clone(), out.bytes));
            edit.files_added.extend(out.files);
        }
        // The blob files the tables point into are made durable before the
        // manifest can name them (their WAL may have been retired unsealed,
        // or replayed from the page cache after a process crash), outside
        // the version lock: a sync can take tens of milliseconds, and a
        // memtable switch waits for that lock.
        let referenced: std::collections::BTreeSet<u64> = edit
            .files_added
            .iter()
            .flat_map(|f| f.blob_refs.iter().map(|&(n, _)| n))
            .collect();
        let mut blobs = Vec::with_capacity(referenced.len());
        for n in referenced {
            let Some(b) = self.tables.blobs().get(n) else {
                return Err(Error::format(
                    names::blob(&self.dir, n),
                    strata_format::Error::corruption(
                        "a flushed table points into a blob file no memtable holds",
                        0,
                    ),
                ));
            };
            self.fs
                .sync_file(b.path())
                .map_err(|e| Error::io(b.path(), e))?;
            blobs.push(b);
        }
        edit.log_number = Some(sealed.next_wal());
        edit.last_timestamp = Some(max_ts);
        edit.history_horizon = Some(oldest);
        // The super-versions replaced: dropped once no lock is held (a
        // replaced version may hold the last reference to tables a
        // compaction removed meanwhile, whose drop deletes their files).
        let mut retired = Vec::new();
        {
            let mut vs = self.versions.lock();
            // A keyspace dropped meanwhile: its new files are orphans, and go.
            edit.files_added.retain(|f| {
                let live = vs.keyspaces().contains_key(&f.keyspace);
                if !live {
                    let _ = self.fs.remove_file(&names::table(&self.dir, f.file_number));
                }
                live
            });
            // The blob files the tables point into (those the generation's
            // values were separated into) join the state with them.
            for b in &blobs {
                if !vs.blobs().contains(b.number()) {
                    edit.blob_files_added.push(b.to_edit());
                }
            }
            // From here on a failed manifest write may still have reached
            // the disk: the next open decides about the tables.
            outputs.keep();
            vs.log_and_apply(edit)?;
            // A blob file of the generation no table points into goes
            // once the memtables pointing into it are dropped.
            for (_, mem) in sealed.memtables() {
                for b in mem.blob_files() {
                    if !vs.blobs().contains(b.number()) {
                        b.mark_obsolete();
                    }
                }
            }
            self.retention.raise_horizon(oldest);
            for (ks, mem) in sealed.memtables() {
                let levels = vs.levels_of(ks.id());
                retired.extend(ks.install(|sv| Some(sv.after_flush(mem, levels))));
            }
            retired.extend(self.install_levels(&vs));
        }
        drop(retired);
        for (ks, bytes) in written {
            ks.counters().flushed(bytes);
        }
        // Every WAL older than the one started with this generation is now
        // fully in SSTs.
        self.pipeline
            .logs()
            .retire_below(sealed.next_wal(), &*self.fs, &self.dir);
        Ok(())
    }
}

/// The flush thread: flushes sealed generations in order until shutdown.
/// On shutdown it stops between generations; what it leaves is in the WAL.
pub(super) fn flush_thread(inner: Arc<DbInner>) {
    loop {
        let work = inner
            .flushes
            .wait_for_flush(|| inner.is_shutdown(), || !inner.errors.is_set());
        if !work {
            return;
        }
        match inner.drain_flushes() {
            Ok(()) => {}
            Err(Error::Closed) => return,
            Err(_) => {
                // Nothing is lost: the generation stays queued and in its
                // WAL. The compaction thread retries leaving the error state
                // after an I/O error; a caller's resume leaves it otherwise.
                if !inner.wait_until_resumed() {
                    return;
                }
            }
        }
    }
}
