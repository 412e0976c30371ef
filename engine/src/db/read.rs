//! Reads: views of a keyspace at a timestamp, snapshots, and the clock
//! reads may push forward.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::keyspaces::KeyspaceState;
use crate::policy::gc::GcPoints;
use crate::timestamp::Timestamp;
use crate::view::{ReadView, SuperVersion, ViewRef};

use super::DbInner;

impl DbInner {
    /// What flushes and compactions must keep readable now.
    pub(super) fn gc_points(&self) -> GcPoints {
        self.retention.gc_points(self.visible_ts())
    }

    /// The oldest timestamp a read of the past may ask for now.
    pub(crate) fn available_from(&self) -> u64 {
        self.retention.available_from(self.visible_ts())
    }

    /// Registers a snapshot at `ts` (checked against the window), or at the
    /// present, so that compaction keeps what it can see until it is
    /// released.
    pub(crate) fn register_snapshot(&self, ts: Option<u64>) -> Result<u64> {
        if let Some(t) = ts {
            if t > self.visible_ts() {
                self.advance_clock(t)?;
            }
        }
        self.retention.register(ts, self.visible_ts())
    }

    /// Releases a snapshot registered at `ts`.
    pub(crate) fn release_snapshot(&self, ts: u64) {
        self.retention.release(ts);
    }

    fn view(&self, ks: &KeyspaceState, ts: u64, expiry_ts: u64) -> ReadView {
        ReadView::new(
            ts,
            expiry_ts,
            ks.super_version(),
            self.tables.clone(),
            ks.counters().clone(),
        )
    }

    /// A read view of `ks` at `ts`, which a registered snapshot or
    /// transaction keeps readable, judging TTL entries at `expiry_ts`.
    pub(crate) fn view_at_registered(
        &self,
        ks: &KeyspaceState,
        ts: u64,
        expiry_ts: u64,
    ) -> ReadView {
        self.view(ks, ts, expiry_ts)
    }

    /// [`view_at_registered`](Self::view_at_registered) for one point
    /// read: the view borrows the table cache and the counters rather than
    /// cloning their handles, which a query fetching many documents pays
    /// for each.
    #[inline]
    pub(crate) fn point_read_registered<T>(
        &self,
        ks: &KeyspaceState,
        ts: u64,
        expiry_ts: u64,
        read: impl FnOnce(&ViewRef<'_>) -> T,
    ) -> T {
        self.read_borrowed(ks, ts, expiry_ts, &ks.super_version(), read)
    }

    /// Runs `read` on a view of `sv` at `ts` that borrows the table cache
    /// and `ks`'s counters.
    #[inline]
    fn read_borrowed<T>(
        &self,
        ks: &KeyspaceState,
        ts: u64,
        expiry_ts: u64,
        sv: &Arc<SuperVersion>,
        read: impl FnOnce(&ViewRef<'_>) -> T,
    ) -> T {
        read(&ViewRef::new(
            ts,
            expiry_ts,
            sv,
            &self.tables,
            ks.counters(),
        ))
    }

    /// A read view of `ks` as of `ts`, inside the history window.
    pub(crate) fn view_at(&self, ks: &KeyspaceState, ts: u64) -> Result<ReadView> {
        if ts > self.visible_ts() {
            self.advance_clock(ts)?;
        }
        // The super-version first, then the window check: whatever was
        // collected in it was collected below a horizon the check sees.
        let view = self.view(ks, ts, ts);
        self.retention.check_readable(ts, self.visible_ts())?;
        Ok(view)
    }

    /// A read view of `ks` at the newest visible timestamp.
    pub(crate) fn read_view(&self, ks: &KeyspaceState) -> ReadView {
        let (ts, expiry_ts, sv) = self.pin_present(ks);
        ReadView::new(
            ts,
            expiry_ts,
            sv,
            self.tables.clone(),
            ks.counters().clone(),
        )
    }

    /// The newest visible timestamp, the time TTL entries are judged
    /// against, and the super-version holding every write up to it.
    #[inline]
    fn pin_present(&self, ks: &KeyspaceState) -> (u64, u64, Arc<SuperVersion>) {
        // The timestamp is read under the super-version's lock, so the pair
        // is consistent with memtable switches and installs: every write at
        // or below the timestamp is in this super-version, and no flush or
        // compaction installed in it dropped a version the timestamp can see
        // (they decide what to drop from an older visible timestamp).
        let (ts, sv) = ks.with_super_version(|sv| (self.visible_ts(), sv.clone()));
        (ts, ts.max(self.opts.clock.now().as_u64()), sv)
    }

    /// Runs `read` on a borrowed view of `ks` at the newest visible
    /// timestamp: [`read_view`](Self::read_view) for a point read, which
    /// pins only the super-version.
    #[inline]
    pub(crate) fn point_read<T>(
        &self,
        ks: &KeyspaceState,
        read: impl FnOnce(&ViewRef<'_>) -> T,
    ) -> T {
        let (ts, expiry_ts, sv) = self.pin_present(ks);
        self.read_borrowed(ks, ts, expiry_ts, &sv, read)
    }

    /// Makes every later commit timestamp larger than `ts`, and `ts`
    /// visible: a read at a later timestamp than any commit then sees a state
    /// no later commit can change. Only timestamps up to the wall clock are
    /// accepted: the clock resumes above the wall clock after a restart, so
    /// the promise holds across restarts too, and no read can push the clock
    /// toward its end.
    pub(crate) fn advance_clock(&self, ts: u64) -> Result<()> {
        if let Some(committer) = &self.opts.committer {
            // A replica's clock moves only with what it applies: wait for
            // the log to get there rather than promise a state it may not
            // have.
            committer.wait_applied(Timestamp(ts))?;
            if self.visible_ts() < ts {
                return Err(Error::Replication(std::sync::Arc::new(
                    std::io::Error::other(format!("timestamp {} is not applied", Timestamp(ts))),
                )));
            }
            return Ok(());
        }
        let now = self.opts.clock.now().as_u64();
        if ts > now {
            return Err(Error::InvalidArgument(format!(
                "timestamp {} is in the future (now is {})",
                Timestamp(ts),
                Timestamp(now)
            )));
        }
        self.pipeline.advance_clock(ts);
        Ok(())
    }

    /// The clock's time, never below the newest visible commit: what a
    /// read of the present judges TTL entries against.
    pub(crate) fn expiry_now(&self) -> u64 {
        self.visible_ts().max(self.opts.clock.now().as_u64())
    }
}
