//! Retention: what flushes and compactions must keep readable. Live
//! snapshots and transactions pin their start timestamps; the history
//! window keeps every version from `history_retention` ago on; the horizon
//! records below which versions may already have been collected.
//!
//! Locks: one `Mutex` over the live snapshots, taken alone (a caller may
//! hold the conflict log's lock around it, see `txn::conflicts`). The
//! window floor and the horizon are atomics that only grow.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::policy::gc::GcPoints;
use crate::timestamp::{Clock, Timestamp};

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The retention part (see the module doc).
pub(crate) struct Retention {
    clock: Arc<dyn Clock>,
    /// The window's length in microseconds (changed at run time by
    /// [`set_history`](Self::set_history)).
    history_micros: AtomicU64,
    /// Live snapshots and transactions: start timestamp → count.
    snapshots: Mutex<BTreeMap<u64, usize>>,
    /// The largest window start handed out (it never moves back).
    window_floor: AtomicU64,
    /// Versions older than this may have been collected.
    horizon: AtomicU64,
}

impl Retention {
    /// Retention keeping `history` of the past by `clock`, with versions
    /// below `horizon` already collected.
    pub(crate) fn new(clock: Arc<dyn Clock>, history: Duration, horizon: u64) -> Self {
        Retention {
            clock,
            history_micros: AtomicU64::new(micros(history)),
            snapshots: Mutex::new(BTreeMap::new()),
            window_floor: AtomicU64::new(0),
            horizon: AtomicU64::new(horizon),
        }
    }

    /// The start of the history window given the newest visible
    /// timestamp: `history` before now, but never after `visible` (the
    /// present is always readable) and never earlier than a window start
    /// already handed out (a wall clock stepping back cannot reopen history
    /// that may be gone).
    fn window_start(&self, visible: u64) -> u64 {
        let history = Duration::from_micros(self.history_micros.load(Ordering::Acquire));
        let retained = self.clock.now().saturating_sub(history).as_u64();
        let start = visible.min(retained);
        let floor = self.window_floor.fetch_max(start, Ordering::AcqRel);
        start.max(floor)
    }

    /// Sets the window's length from now on. A longer window keeps more
    /// from now on but cannot bring back what was collected: its start
    /// never moves back.
    pub(crate) fn set_history(&self, history: Duration) {
        self.history_micros
            .store(micros(history), Ordering::Release);
    }

    /// The window's length.
    pub(crate) fn history(&self) -> Duration {
        Duration::from_micros(self.history_micros.load(Ordering::Acquire))
    }

    /// What flushes and compactions must keep readable: every timestamp
    /// from the window's start on, and each live snapshot below it.
    pub(crate) fn gc_points(&self, visible: u64) -> GcPoints {
        let snaps = self.snapshots.lock();
        GcPoints::new(self.window_start(visible), snaps.keys().copied())
    }

    /// The oldest timestamp a read of the past may ask for now (live
    /// snapshots' own timestamps stay readable too): the window start, but
    /// never below the horizon of what was already collected.
    pub(crate) fn available_from(&self, visible: u64) -> u64 {
        self.window_start(visible)
            .max(self.horizon.load(Ordering::Acquire))
    }

    /// Fails with [`Error::HistoryUnavailable`] unless a read at `ts` is
    /// inside the window or at a live snapshot.
    pub(crate) fn check_readable(&self, ts: u64, visible: u64) -> Result<()> {
        let snaps = self.snapshots.lock();
        self.readable(&snaps, ts, visible)
    }

    fn readable(&self, snaps: &BTreeMap<u64, usize>, ts: u64, visible: u64) -> Result<()> {
        let oldest = self.available_from(visible);
        if ts < oldest && !snaps.contains_key(&ts) {
            return Err(Error::HistoryUnavailable {
                requested: Timestamp(ts),
                oldest: Timestamp(oldest),
            });
        }
        Ok(())
    }

    /// Registers a snapshot at `ts` (checked against the window), or at
    /// `visible` when `ts` is `None`; compaction keeps what it can see
    /// until it is released. Returns its timestamp.
    pub(crate) fn register(&self, ts: Option<u64>, visible: u64) -> Result<u64> {
        let mut snaps = self.snapshots.lock();
        let ts = match ts {
            Some(t) => {
                self.readable(&snaps, t, visible)?;
                t
            }
            None => visible,
        };
        *snaps.entry(ts).or_insert(0) += 1;
        Ok(ts)
    }

    /// Releases a snapshot registered at `ts`.
    pub(crate) fn release(&self, ts: u64) {
        let mut snaps = self.snapshots.lock();
        if let Some(n) = snaps.get_mut(&ts) {
            *n -= 1;
            if *n == 0 {
                snaps.remove(&ts);
            }
        }
    }

    /// Records that a flush or compaction collected versions below `oldest`.
    pub(crate) fn raise_horizon(&self, oldest: u64) {
        self.horizon.fetch_max(oldest, Ordering::AcqRel);
    }
}
