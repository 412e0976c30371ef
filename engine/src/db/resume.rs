//! Leaving the error state: a caller's [`Db::resume`](crate::Db::resume),
//! and the background retries after an I/O error, paced by the retry
//! policy.

use std::time::{Duration, Instant};

use crate::policy::backoff;

use crate::error::Result;
use crate::error_state::Origin;
use crate::fs::names;

use super::DbInner;

impl DbInner {
    /// Leaves the error state once its cause is gone. After a failed WAL
    /// write (or a manifest write made for a caller) the WAL in use may end
    /// in a record that was never acknowledged, half written or not
    /// durable, so it is not trusted: a new WAL is started and every
    /// memtable flushed (they hold exactly the acknowledged writes). After a
    /// failed flush or compaction the WAL is sound: the queued memtables are
    /// flushed and nothing else is written, so a retry that fails again
    /// leaves no file behind. The manifest is rewritten if one of its
    /// writes failed. Only then do writes resume.
    pub(super) fn resume(&self) -> Result<()> {
        self.check_open()?;
        let _resume = self.errors.resume_guard();
        // A flush or compaction that fails puts the database in the error
        // state before letting go of its lock. Waiting for both locks here
        // means no failure that happened before this call goes unseen, to
        // poison the database again just after it was resumed. (The flush
        // lock is only passed through: `drain` takes it again below, after
        // the memtable switch, in the order flushes take it.)
        let _compaction = self.compaction_lock.lock();
        self.flushes.pass_flush_lock();
        let Some(origin) = self.errors.origin() else {
            return Ok(());
        };
        if let Some(e) = self.errors.fatal_error() {
            return Err(e);
        }
        {
            // No commit group runs, and none starts, until this is done.
            let _commit = self.pipeline.quiesce();
            {
                let mut vs = self.versions.lock();
                if vs.failed() {
                    if let Some(old) = vs.rotate_manifest()? {
                        let _ = self.fs.remove_file(&names::manifest(&self.dir, old));
                    }
                    vs.clear_failed();
                }
            }
            if origin != Origin::Background {
                // Switched before the flush lock is taken: a switch holds the
                // switch lock, and flushing takes the flush lock after it.
                self.switch_memtables_unsealed()?;
            }
            self.drain_flushes()?;
            self.errors.clear();
        }
        self.flushes.notify_all();
        Ok(())
    }

    /// Called by the compaction thread in the error state: waits until the
    /// state is left, retrying `resume` itself after an I/O error in a flush
    /// or compaction once the retry policy's pause ran out (or, after a
    /// failure for lack of space, as soon as space was freed). Returns
    /// false at shutdown or when the state cannot be left.
    pub(super) fn wait_for_resume(&self) -> bool {
        loop {
            if self.is_shutdown() || self.errors.is_fatal() {
                return false;
            }
            if !self.errors.is_set() {
                return true;
            }
            let Some(pause) = self.errors.auto_retry_pause() else {
                // Only a caller's resume leaves this state.
                self.flushes
                    .pause(Duration::from_millis(200), || self.is_shutdown());
                continue;
            };
            let watching = self.errors.watches_space();
            let started = Instant::now();
            loop {
                if self.is_shutdown() {
                    return false;
                }
                if !self.errors.is_set() {
                    return true;
                }
                let elapsed = started.elapsed();
                let free = if watching { self.free_space() } else { None };
                if self.errors.may_retry(elapsed, pause, free) {
                    break;
                }
                let step = backoff::next_check(elapsed, pause, watching);
                self.flushes.pause(step, || self.is_shutdown());
            }
            if self.resume().is_ok() {
                return true;
            }
        }
    }

    /// Called by the flush thread in the error state: waits until the state
    /// is left (by a caller, or by the compaction thread's retries).
    /// Returns false at shutdown or when the state cannot be left.
    pub(super) fn wait_until_resumed(&self) -> bool {
        loop {
            if self.is_shutdown() || self.errors.is_fatal() {
                return false;
            }
            if !self.errors.is_set() {
                return true;
            }
            self.flushes
                .pause(Duration::from_millis(200), || self.is_shutdown());
        }
    }
}
