//! The error state: why writes are refused, if they are, how that state is
//! left, and how long the engine waits before trying to leave it by itself.
//!
//! A failure that leaves the database unable to write safely (a WAL write
//! or sync, a flush, a compaction, a manifest write) puts it here: writes
//! fail with [`Error::Poisoned`], reads go on. [`Db::resume`](crate::Db::resume)
//! leaves it once the cause is gone. After an I/O error in a flush or a
//! compaction (a full disk, typically) the engine also retries by itself,
//! with a pause that grows across consecutive failures and resets only
//! when a flush or compaction succeeds again (see [`crate::policy::backoff`]).
//!
//! Locks: the cause and the retry state are each behind their own `Mutex`,
//! taken alone and briefly; `resume_lock` serialises resumes and is the
//! first lock a resume takes (see the lock order in `db`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::policy::backoff::{self, Backoff, FailureCause};

/// What failed, which decides how the error state can be left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A WAL append or sync: the WAL's tail is in doubt, so it is retired
    /// and every memtable flushed by a resume. Only a caller's resume
    /// leaves this state.
    Wal,
    /// A flush, a compaction (background or a caller's), or the manifest
    /// write that installs one.
    Background,
    /// A keyspace change or another manifest write made for a caller.
    Manifest,
}

#[derive(Debug, Clone)]
struct Failure {
    error: Error,
    origin: Origin,
}

/// The error state part (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct ErrorState {
    cause: Mutex<Option<Failure>>,
    /// Set when the state cannot be left by a resume (a background thread
    /// died).
    fatal: AtomicBool,
    /// One resume at a time.
    resume_lock: Mutex<()>,
    backoff: Mutex<Backoff>,
    /// Free bytes of the file system when the last out-of-space failure
    /// happened, if known: a retry before the pause ends waits for more.
    free_at_failure: Mutex<Option<u64>>,
    errors: AtomicU64,
    resumes: AtomicU64,
}

impl ErrorState {
    /// Fails with [`Error::Poisoned`] while in the error state.
    pub(crate) fn check(&self) -> Result<()> {
        if let Some(f) = self.cause.lock().as_ref() {
            return Err(Error::Poisoned(message(f)));
        }
        Ok(())
    }

    /// True while in the error state.
    pub(crate) fn is_set(&self) -> bool {
        self.cause.lock().is_some()
    }

    /// What failed, while in the error state.
    pub(crate) fn origin(&self) -> Option<Origin> {
        self.cause.lock().as_ref().map(|f| f.origin)
    }

    /// True when the state cannot be left.
    pub(crate) fn is_fatal(&self) -> bool {
        self.fatal.load(Ordering::Acquire)
    }

    /// Enters the error state (if not in it already) for `e`, which
    /// `origin` produced; returns `e` for convenience. `free_space` is the
    /// file system's free bytes now, when known, for an out-of-space retry.
    pub(crate) fn poison(&self, e: Error, origin: Origin, free_space: Option<u64>) -> Error {
        let mut cause = self.cause.lock();
        match cause.as_mut() {
            None => {
                *cause = Some(Failure {
                    error: e.clone(),
                    origin,
                });
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
            // A WAL or manifest failure while a flush or compaction failure
            // is being waited out: the WAL is in doubt now too, so the
            // resume must retire it.
            Some(f) if f.origin == Origin::Background && origin != Origin::Background => {
                *f = Failure {
                    error: e.clone(),
                    origin,
                };
            }
            Some(_) => {}
        }
        // A retry that fails again (while the state is still set) counts
        // as a consecutive failure too: the pauses grow.
        if origin == Origin::Background {
            self.backoff.lock().on_failure(FailureCause::of(&e));
            *self.free_at_failure.lock() = free_space;
        }
        e
    }

    /// Like [`poison`](Self::poison), for failures no resume can repair.
    pub(crate) fn poison_fatal(&self, e: Error) -> Error {
        self.fatal.store(true, Ordering::Release);
        self.poison(e, Origin::Manifest, None)
    }

    /// Leaves the error state (a resume succeeded).
    pub(crate) fn clear(&self) {
        *self.cause.lock() = None;
        self.resumes.fetch_add(1, Ordering::Relaxed);
    }

    /// Records that a flush or compaction succeeded: the next failure
    /// starts the pauses from the shortest again.
    pub(crate) fn work_succeeded(&self) {
        self.backoff.lock().on_success();
    }

    /// Serialises resumes.
    pub(crate) fn resume_guard(&self) -> MutexGuard<'_, ()> {
        self.resume_lock.lock()
    }

    /// The error that put the database in the error state, or an error
    /// saying it cannot be left.
    pub(crate) fn fatal_error(&self) -> Option<Error> {
        if !self.is_fatal() {
            return None;
        }
        let why = self.cause.lock().as_ref().map(message).unwrap_or_default();
        Some(Error::Poisoned(format!("{why} (cannot be resumed)")))
    }

    /// The pause before the engine tries to leave the error state by
    /// itself, or `None` when it does not (the WAL's tail is in doubt, or
    /// the state cannot be left, or the cause is not an I/O error).
    pub(crate) fn auto_retry_pause(&self) -> Option<Duration> {
        let cause = self.cause.lock();
        let f = cause.as_ref()?;
        if self.is_fatal()
            || f.origin != Origin::Background
            || !FailureCause::of(&f.error).retried()
        {
            return None;
        }
        Some(self.backoff.lock().pause())
    }

    /// True when a retry may run `elapsed` into a `pause`, given the file
    /// system's free bytes now (see [`backoff::may_retry`]).
    pub(crate) fn may_retry(
        &self,
        elapsed: Duration,
        pause: Duration,
        free_now: Option<u64>,
    ) -> bool {
        let then = if self.watches_space() {
            *self.free_at_failure.lock()
        } else {
            None
        };
        backoff::may_retry(elapsed, pause, then, free_now)
    }

    /// True when a retry also waits for free space to rise.
    pub(crate) fn watches_space(&self) -> bool {
        self.backoff.lock().watches_space()
    }

    /// The cause, for [`Stats`](crate::Stats).
    pub(crate) fn describe(&self) -> Option<String> {
        self.cause.lock().as_ref().map(message)
    }

    /// How to leave the state, for [`Stats`](crate::Stats).
    pub(crate) fn remedy(&self) -> Option<String> {
        let cause = self.cause.lock();
        let f = cause.as_ref()?;
        Some(if self.is_fatal() {
            "a background thread stopped; close and reopen the database".to_owned()
        } else {
            match (f.origin, matches!(f.error, Error::Io { .. })) {
                (Origin::Wal, _) => "the WAL's tail is in doubt: remove the cause (e.g. free disk space), then call Db::resume (or close and reopen the database); the engine does not retry by itself".to_owned(),
                (Origin::Background, true) => format!(
                    "remove the cause (e.g. free disk space); the engine retries by itself (next pause {} ms), or call Db::resume to retry now",
                    self.backoff.lock().pause().as_millis()
                ),
                _ => "remove the cause, then call Db::resume (or close and reopen the database)".to_owned(),
            }
        })
    }

    /// Failures that entered the error state so far.
    pub(crate) fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Times the error state was left.
    pub(crate) fn resumes(&self) -> u64 {
        self.resumes.load(Ordering::Relaxed)
    }
}

fn message(f: &Failure) -> String {
    format!("{}; writes are refused until Db::resume succeeds", f.error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(kind: std::io::ErrorKind) -> Error {
        Error::io("/db/000001.log", std::io::Error::from(kind))
    }

    #[test]
    fn a_wal_failure_during_a_background_one_is_resumed_as_a_wal_failure() {
        let s = ErrorState::default();
        s.poison(
            io(std::io::ErrorKind::StorageFull),
            Origin::Background,
            None,
        );
        assert!(s.auto_retry_pause().is_some());
        s.poison(io(std::io::ErrorKind::Other), Origin::Wal, None);
        assert_eq!(s.origin(), Some(Origin::Wal));
        assert!(s.auto_retry_pause().is_none(), "only a caller's resume");
        // A later background failure does not weaken it again.
        s.poison(
            io(std::io::ErrorKind::StorageFull),
            Origin::Background,
            None,
        );
        assert_eq!(s.origin(), Some(Origin::Wal));
        assert_eq!(s.errors(), 1);
        s.clear();
        assert!(s.check().is_ok());
        assert_eq!(s.resumes(), 1);
    }

    #[test]
    fn pauses_grow_across_failures_and_reset_after_work() {
        let s = ErrorState::default();
        let mut pauses = Vec::new();
        for _ in 0..4 {
            s.poison(
                io(std::io::ErrorKind::StorageFull),
                Origin::Background,
                None,
            );
            pauses.push(s.auto_retry_pause().unwrap());
            // A resume succeeds (nothing to flush), the work fails again.
            s.clear();
        }
        assert!(pauses.windows(2).all(|w| w[1] > w[0]), "{pauses:?}");
        s.work_succeeded();
        s.poison(
            io(std::io::ErrorKind::StorageFull),
            Origin::Background,
            None,
        );
        assert_eq!(s.auto_retry_pause().unwrap(), pauses[0]);
    }
}
