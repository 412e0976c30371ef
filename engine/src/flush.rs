//! Flushes: sealed memtables written to L0, in the order they were sealed.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use strata_format::key::{InternalKeyRef, ValueKind};
use strata_format::manifest::VersionEdit;

use crate::cursor::{Cursor, MemCursor};
use crate::db::{DbInner, KeyspaceState};
use crate::error::{Error, Result};
use crate::fs::names;
use crate::memtable::Memtable;
use crate::stats::add;
use crate::table_sink::TableSink;

/// The memtables sealed by one switch, and the WAL that was started then:
/// once they are flushed, every older WAL can go.
#[derive(Clone)]
pub(crate) struct Sealed {
    pub next_wal: u64,
    pub memtables: Vec<(Arc<KeyspaceState>, Arc<Memtable>)>,
}

/// The read points a flush or compaction must preserve: every timestamp
/// from `window` on (the history window, or the present), and each live
/// snapshot below it.
#[derive(Debug, Clone)]
pub(crate) struct GcPoints {
    pub window: u64,
    /// Snapshot timestamps below `window`, newest first.
    pub snapshots: Vec<u64>,
}

impl GcPoints {
    /// The stripe of a version at `ts`: the smallest read point at or above
    /// it (`None` above the window, where every version is kept). Within a
    /// stripe only the newest version can be read.
    fn stripe(&self, ts: u64) -> Option<u64> {
        if ts > self.window {
            return None;
        }
        Some(
            self.snapshots
                .iter()
                .copied()
                .rfind(|&s| s >= ts)
                .unwrap_or(self.window),
        )
    }

    /// True when no read point lies below `stripe`.
    fn is_lowest(&self, stripe: u64) -> bool {
        self.snapshots.last().is_none_or(|&s| s >= stripe)
    }
}

/// Copies the entries under `cursor` (positioned) to `sink`, dropping what
/// no reader can see: in each stripe between read points only the newest
/// version of a key is kept, and in the lowest stripe not even that one
/// when it is a tombstone (or expired by then) and `bottommost` says no
/// older data of the key can lie below. Returns the bytes read.
pub(crate) fn copy_live(
    cursor: &mut dyn Cursor,
    sink: &mut TableSink<'_>,
    points: &GcPoints,
    bottommost: &dyn Fn(&[u8]) -> bool,
    stop: &AtomicBool,
) -> Result<u64> {
    let mut user: Vec<u8> = Vec::new();
    let mut first = true;
    let mut last_stripe: Option<u64> = None;
    let mut read = 0u64;
    let mut steps = 0u32;
    while cursor.valid() {
        steps = steps.wrapping_add(1);
        if steps.is_multiple_of(1024) && stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        let key = cursor.key();
        let value = cursor.value_ref();
        read += (key.len() + value.len()) as u64;
        let k = InternalKeyRef::parse(key).map_err(|e| Error::format("<merge input>", e))?;
        if first || k.user_key != user.as_slice() {
            user.clear();
            user.extend_from_slice(k.user_key);
            last_stripe = None;
            first = false;
        }
        match points.stripe(k.ts) {
            None => sink.add(key, value)?,
            Some(stripe) if Some(stripe) == last_stripe => {} // shadowed
            Some(stripe) => {
                last_stripe = Some(stripe);
                // Expired by the stripe's read point, a TTL entry reads as
                // absent there: like a tombstone, it still hides what is
                // below it.
                let expired = k.kind == ValueKind::PutWithTtl
                    && crate::view::ttl_expiry(value).is_none_or(|e| e <= stripe);
                let droppable = (k.kind.is_tombstone() || expired)
                    && points.is_lowest(stripe)
                    && bottommost(k.user_key);
                if !droppable {
                    sink.add(key, value)?;
                }
            }
        }
        cursor.next()?;
    }
    Ok(read)
}

impl DbInner {
    /// Writes one sealed generation to L0 and installs it.
    pub(crate) fn flush_sealed(&self, sealed: &Sealed) -> Result<()> {
        let points = self.gc_points();
        let oldest = points.window;
        let mut edit = VersionEdit::default();
        let mut max_ts = 0;
        let mut written = Vec::new();
        for (ks, mem) in &sealed.memtables {
            if ks.is_dropped() || mem.is_empty() {
                continue;
            }
            max_ts = max_ts.max(mem.max_ts());
            let mut sink = TableSink::new(self, ks.id, 0, u64::MAX);
            let mut cursor = MemCursor::new(mem.clone());
            cursor.seek_to_first()?;
            copy_live(
                &mut cursor,
                &mut sink,
                &points,
                &|_| false,
                self.shutdown_flag(),
            )?;
            let (files, bytes) = sink.finish()?;
            written.push((ks.clone(), bytes));
            edit.files_added.extend(files);
        }
        edit.log_number = Some(sealed.next_wal);
        edit.last_timestamp = Some(max_ts);
        edit.history_horizon = Some(oldest);
        {
            let mut vs = self.versions.lock();
            // A keyspace dropped meanwhile: its new files are orphans, and go.
            let dropped: Vec<_> = edit
                .files_added
                .iter()
                .filter(|f| !vs.keyspaces.contains_key(&f.keyspace))
                .map(|f| f.file_number)
                .collect();
            edit.files_added
                .retain(|f| vs.keyspaces.contains_key(&f.keyspace));
            for n in dropped {
                let _ = self.fs.remove_file(&names::table(&self.dir, n));
            }
            vs.log_and_apply(edit)?;
            self.raise_horizon(oldest);
            for (ks, mem) in &sealed.memtables {
                let mut sv = ks.sv.lock();
                let mut next = crate::view::SuperVersion {
                    mem: sv.mem.clone(),
                    imm: sv
                        .imm
                        .iter()
                        .filter(|m| !Arc::ptr_eq(m, mem))
                        .cloned()
                        .collect(),
                    levels: sv.levels.clone(),
                };
                if let Some((_, levels)) = vs.keyspaces.get(&ks.id) {
                    next.levels = levels.clone();
                }
                *sv = Arc::new(next);
            }
            self.install_levels(&vs);
        }
        for (ks, bytes) in written {
            add(&ks.counters.flush_bytes, bytes);
            add(&ks.counters.flushes, 1);
        }
        // Every WAL older than the one started with this generation is now
        // fully in SSTs.
        let mut wals = self.live_wals.lock();
        wals.retain(|&n| {
            if n < sealed.next_wal {
                let _ = self.fs.remove_file(&names::wal(&self.dir, n));
                false
            } else {
                true
            }
        });
        Ok(())
    }
}

impl DbInner {
    /// Flushes the memtables rebuilt from the WAL at open, before any
    /// thread runs.
    pub(crate) fn flush_replayed(&self, sealed: Sealed) -> Result<()> {
        self.flush_sealed(&sealed)
    }
}

/// The flush thread: flushes sealed generations in order until shutdown.
/// On shutdown it stops between generations; what it leaves is in the WAL.
pub(crate) fn flush_thread(inner: Arc<DbInner>) {
    loop {
        let job = {
            let mut bg = inner.bg.lock();
            loop {
                if inner.is_shutdown() {
                    return;
                }
                if !inner.is_poisoned() {
                    if let Some(s) = bg.imm.front() {
                        break s.clone();
                    }
                }
                inner.bg_cv.wait(&mut bg);
            }
        };
        let flushed = {
            let _flush = inner.flush_lock.lock();
            // A resume may have flushed this generation meanwhile.
            let still_first = inner
                .bg
                .lock()
                .imm
                .front()
                .is_some_and(|s| s.next_wal == job.next_wal);
            if !still_first {
                continue;
            }
            let r = inner.flush_sealed(&job);
            match &r {
                Ok(()) => {
                    // Still under the flush lock, so a resume cannot flush
                    // this generation again or see it queued after it is
                    // done.
                    let mut bg = inner.bg.lock();
                    bg.imm.pop_front();
                    bg.flushed += 1;
                    bg.compaction_wanted = true;
                }
                Err(Error::Closed) => {}
                // Into the error state before the flush lock is let go, so
                // a `resume` (which takes it) never misses the failure.
                Err(e) => {
                    inner.poison(e.clone());
                }
            }
            r
        };
        match flushed {
            Ok(()) => {
                let _bg = inner.bg.lock();
                inner.bg_cv.notify_all();
                inner.done_cv.notify_all();
            }
            Err(Error::Closed) => return,
            Err(e) => {
                // Nothing is lost: the generation stays queued and in its
                // WAL. A full disk or a failing device may recover, so
                // resuming is retried.
                let retry = matches!(e, Error::Io { .. });
                if !inner.wait_for_resume(retry) {
                    return;
                }
            }
        }
    }
}
