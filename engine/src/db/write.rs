//! The write path's wiring: room in the memtables (switches, slowdowns and
//! stalls, by the stall policy), the memtable switch with its WAL rotation
//! and manifest edit, and background work done inline when the database
//! runs without threads.

use std::time::{Duration, Instant};

use strata_format::manifest::VersionEdit;

use crate::commit::wal::Wal;
use crate::commit::CommitHost;
use crate::error::{Error, Result};
use crate::error_state::Origin;
use crate::flush::Sealed;
use crate::policy::stall::{self, StallDecision, StallInputs, StallLimits};

use super::DbInner;

impl CommitHost for DbInner {
    fn make_room(&self) -> Result<()> {
        let limits = StallLimits::from_options(&self.opts);
        let mut slowed = false;
        loop {
            self.check_writable()?;
            let active_bytes = self.pipeline.active_bytes();
            // The queue's length matters only once the memtables are full:
            // its lock stays off the common path.
            let immutable_memtables = if active_bytes >= self.opts.memtable_size {
                self.flushes.len()
            } else {
                0
            };
            let inputs = StallInputs {
                l0_files: self.versions.max_l0_files(),
                immutable_memtables,
                active_bytes,
            };
            match stall::decide(&limits, &inputs, slowed) {
                StallDecision::Proceed => return Ok(()),
                StallDecision::Slowdown => {
                    // Spread the delay over many writes rather than stopping.
                    self.counters.slowed();
                    std::thread::sleep(Duration::from_millis(1));
                    slowed = true;
                }
                StallDecision::Stop if !self.opts.background_threads => {
                    self.background_work_inline()?;
                }
                StallDecision::Stop => {
                    let started = Instant::now();
                    let waited = self.flushes.stall_while(
                        |imm| {
                            let now = StallInputs {
                                immutable_memtables: imm,
                                ..inputs
                            };
                            stall::decide(&limits, &now, true) == StallDecision::Stop
                        },
                        Duration::from_millis(100),
                    );
                    if waited {
                        self.counters.stalled(started.elapsed().as_micros() as u64);
                    }
                }
                StallDecision::Switch => {
                    self.switch_memtables()?;
                    if !self.opts.background_threads {
                        // Without threads the writer does the flush, as a
                        // background thread would.
                        self.background_work_inline()?;
                    }
                }
            }
        }
    }

    fn wal_failed(&self, e: Error) -> Error {
        self.poison(e, Origin::Wal)
    }
}

impl DbInner {
    /// Seals every keyspace's memtable and starts a new WAL; the sealed
    /// memtables go to the flush queue. The old WAL is synced first, so a
    /// torn tail can only be in the newest WAL. Callers keep commits out
    /// (the commit lock, or leading the commit queue).
    pub(super) fn switch_memtables(&self) -> Result<()> {
        self.switch(true)
    }

    /// Switches the memtables without sealing the WAL in use, whose tail
    /// is in doubt after a failed write: its memtables are flushed before
    /// anything else is written (see `resume`).
    pub(super) fn switch_memtables_unsealed(&self) -> Result<()> {
        self.switch(false)
    }

    fn switch(&self, seal: bool) -> Result<()> {
        let _switch = self.switch_lock.lock();
        if seal {
            // After a failed append the WAL's tail and its writer's offset
            // are in doubt: it must not be sealed (only `resume` may retire
            // it, unsealed).
            self.check_writable()?;
        }
        let number = self
            .versions
            .new_file_number()
            .map_err(|e| self.poison(e, Origin::Manifest))?;
        let key = self
            .ciphers
            .current()
            .map_err(|e| self.poison(e, Origin::Wal))?;
        let (sealed, created) = self
            .pipeline
            .logs()
            .rotate(seal, || {
                let wal = Wal::create(
                    &*self.fs,
                    &self.dir,
                    number,
                    key,
                    self.opts.wal_mmap,
                    self.tables.blobs().clone(),
                )?;
                self.fs
                    .sync_dir(&self.dir)
                    .map_err(|e| Error::io(&self.dir, e))?;
                Ok(wal)
            })
            .map_err(|e| self.poison(e, Origin::Wal))?;
        // Recovery holds the old WAL to its sealed length, and expects the
        // new one's uid.
        let edit = VersionEdit {
            wals_sealed: if seal { vec![sealed] } else { Vec::new() },
            wals_created: vec![created],
            ..VersionEdit::default()
        };
        self.versions
            .lock()
            .log_and_apply(edit)
            .map_err(|e| self.poison(e, Origin::Manifest))?;
        let memtables = self
            .keyspaces
            .all()
            .into_iter()
            .filter_map(|ks| ks.seal_memtable().map(|m| (ks, m)))
            .collect();
        self.pipeline.memtables_switched();
        self.flushes.push(Sealed::new(number, memtables));
        Ok(())
    }

    /// Seals the memtables (if they hold anything) and waits until every
    /// sealed memtable is flushed.
    pub(super) fn flush(&self) -> Result<()> {
        self.flush_and_switch(false)
    }

    /// Flushes; with `new_wal`, also starts a new WAL even if the memtables
    /// are empty (so the WAL in use is under the current key).
    pub(super) fn flush_and_switch(&self, new_wal: bool) -> Result<()> {
        self.check_writable()?;
        let target = {
            // No commit may be between its WAL write and its memtable
            // inserts while the memtables are switched.
            let _commit = self.pipeline.quiesce();
            if new_wal || self.pipeline.active_bytes() > 0 {
                self.switch_memtables()?;
            }
            self.flushes.sealed()
        };
        if !self.opts.background_threads {
            self.background_work_inline()?;
        }
        // Wait for what was sealed up to now, not for later generations.
        self.flushes.wait_flushed(target, || self.check_writable())
    }

    /// Without background threads: flushes every sealed generation and
    /// compacts until the levels are within their targets, on the caller's
    /// thread. Callers hold none of the write-path locks.
    pub(super) fn background_work_inline(&self) -> Result<()> {
        self.drain_flushes()?;
        match self.compact_until_settled() {
            Ok(()) | Err(Error::Closed) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
