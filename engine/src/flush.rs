//! The flush queue: sealed memtables waiting to be written to L0, in the
//! order they were sealed, and the signals between writers and the
//! background work.
//!
//! Locks: one `Mutex` over the queue's state, taken alone or last; the
//! flush lock, held by whoever writes a sealed generation to L0 (the flush
//! thread, a writer without background threads, or a resume) through
//! [`FlushQueue::drain`], so each generation is flushed once and in order.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::keyspaces::KeyspaceState;
use crate::memtable::Memtable;

/// The memtables sealed by one switch, and the WAL that was started then:
/// once they are flushed, every older WAL can go.
#[derive(Clone)]
pub(crate) struct Sealed {
    next_wal: u64,
    memtables: Vec<(Arc<KeyspaceState>, Arc<Memtable>)>,
}

impl Sealed {
    /// The memtables sealed when WAL `next_wal` was started.
    pub(crate) fn new(next_wal: u64, memtables: Vec<(Arc<KeyspaceState>, Arc<Memtable>)>) -> Self {
        Sealed {
            next_wal,
            memtables,
        }
    }

    /// The WAL started when these were sealed.
    pub(crate) fn next_wal(&self) -> u64 {
        self.next_wal
    }

    /// The sealed memtables, with their keyspaces.
    pub(crate) fn memtables(&self) -> &[(Arc<KeyspaceState>, Arc<Memtable>)] {
        &self.memtables
    }
}

#[derive(Default)]
struct State {
    /// Sealed generations waiting for a flush, oldest first.
    queue: VecDeque<Sealed>,
    compaction_wanted: bool,
    /// Generations sealed and flushed so far.
    sealed: u64,
    flushed: u64,
}

/// The flush queue part (see the module doc).
#[derive(Default)]
pub(crate) struct FlushQueue {
    state: Mutex<State>,
    /// Wakes the background threads.
    work: Condvar,
    /// Wakes writers and callers waiting for background work.
    done: Condvar,
    flush_lock: Mutex<()>,
}

impl FlushQueue {
    /// Queues a sealed generation and wakes the flush thread.
    pub(crate) fn push(&self, sealed: Sealed) {
        let mut st = self.state.lock();
        st.queue.push_back(sealed);
        st.sealed += 1;
        self.work.notify_all();
    }

    /// Generations waiting.
    pub(crate) fn len(&self) -> usize {
        self.state.lock().queue.len()
    }

    /// Generations sealed so far.
    pub(crate) fn sealed(&self) -> u64 {
        self.state.lock().sealed
    }

    /// Flushes every queued generation, oldest first, with `flush`, under
    /// the flush lock. A flushed generation leaves the queue and asks for a
    /// compaction. On failure `on_error` runs before the flush lock is let
    /// go (so a resume, which takes it, never misses the failure) and the
    /// generation stays queued. Returns the generations flushed.
    pub(crate) fn drain(
        &self,
        mut flush: impl FnMut(&Sealed) -> Result<()>,
        on_error: impl FnOnce(&Error),
    ) -> Result<usize> {
        let _flush = self.flush_lock.lock();
        let mut flushed = 0;
        loop {
            let job = self.state.lock().queue.front().cloned();
            let Some(job) = job else { return Ok(flushed) };
            if let Err(e) = flush(&job) {
                on_error(&e);
                return Err(e);
            }
            let mut st = self.state.lock();
            st.queue.pop_front();
            st.flushed += 1;
            st.compaction_wanted = true;
            flushed += 1;
            self.work.notify_all();
            self.done.notify_all();
        }
    }

    /// Waits for the flush lock to be free: a flush running now has
    /// finished, and any failure it had is recorded.
    pub(crate) fn pass_flush_lock(&self) {
        drop(self.flush_lock.lock());
    }

    /// Waits until generation `target` (a value of [`sealed`](Self::sealed))
    /// is flushed; `check` runs between waits and may end the wait with its
    /// error.
    pub(crate) fn wait_flushed(&self, target: u64, check: impl Fn() -> Result<()>) -> Result<()> {
        let mut st = self.state.lock();
        while st.flushed < target {
            check()?;
            self.done.wait_for(&mut st, Duration::from_millis(50));
        }
        Ok(())
    }

    /// For the flush thread: waits until a generation is queued and
    /// `ready()` allows flushing it; returns false once `stop()`.
    pub(crate) fn wait_for_flush(&self, stop: impl Fn() -> bool, ready: impl Fn() -> bool) -> bool {
        let mut st = self.state.lock();
        loop {
            if stop() {
                return false;
            }
            if !st.queue.is_empty() && ready() {
                return true;
            }
            self.work.wait(&mut st);
        }
    }

    /// For the compaction thread: waits until a compaction is asked for (and
    /// takes the request) or `wake()` says there is other work; returns
    /// false once `stop()`.
    pub(crate) fn wait_for_compaction(
        &self,
        stop: impl Fn() -> bool,
        wake: impl Fn() -> bool,
    ) -> bool {
        let mut st = self.state.lock();
        loop {
            if stop() {
                return false;
            }
            if st.compaction_wanted {
                st.compaction_wanted = false;
                return true;
            }
            if wake() {
                return true;
            }
            self.work.wait(&mut st);
        }
    }

    /// Asks the compaction thread for a compaction.
    pub(crate) fn request_compaction(&self) {
        let mut st = self.state.lock();
        st.compaction_wanted = true;
        self.work.notify_all();
    }

    /// While `full(queued generations)` holds: asks for a compaction and
    /// waits up to `timeout` for background work to finish something.
    /// Returns whether it waited.
    pub(crate) fn stall_while(&self, full: impl Fn(usize) -> bool, timeout: Duration) -> bool {
        let mut st = self.state.lock();
        if !full(st.queue.len()) {
            return false;
        }
        st.compaction_wanted = true;
        self.work.notify_all();
        self.done.wait_for(&mut st, timeout);
        true
    }

    /// Sleeps up to `timeout` unless woken (a resume, a shutdown).
    pub(crate) fn pause(&self, timeout: Duration, stop: impl Fn() -> bool) {
        let mut st = self.state.lock();
        if !stop() {
            self.work.wait_for(&mut st, timeout);
        }
    }

    /// Wakes every thread waiting on the queue (work was done, the error
    /// state was left, or the database is closing).
    pub(crate) fn notify_all(&self) {
        let _st = self.state.lock();
        self.work.notify_all();
        self.done.notify_all();
    }
}
