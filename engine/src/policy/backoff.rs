//! Retrying after a background failure: how long a flush or compaction
//! thread pauses before it tries to leave the error state again.
//!
//! The pause starts at 20 ms and doubles with each further failure of the
//! same cause (past 1 s it keeps doubling, up to 30 s), so a condition that
//! persists, such as a full disk, costs a few retries a minute rather than
//! one a second. A failure of another cause keeps the pause where it is:
//! it has not repeated yet, and nothing has succeeded. Only work that
//! succeeds starts over from 20 ms; a successful resume followed by the
//! same failure does not. After a failure for lack of space the retry
//! waits for the pause, or comes sooner when the file system's free bytes
//! rose (space was freed, so the work may now fit).

use std::time::Duration;

use crate::error::Error;

/// The first pause after a failure.
pub(crate) const FIRST_PAUSE: Duration = Duration::from_millis(20);

/// The longest pause: a failure that persists for hours is still retried
/// this often, so the database resumes soon after it is fixed.
pub(crate) const MAX_PAUSE: Duration = Duration::from_secs(30);

/// How often free space is looked at while a failure for lack of space
/// waits out its pause.
pub(crate) const SPACE_POLL: Duration = Duration::from_millis(100);

/// Why background work failed, as far as retrying cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureCause {
    /// The file system is full (ENOSPC): retrying helps once space is
    /// freed.
    NoSpace,
    /// Another I/O error: the device may recover.
    Io,
    /// Anything else (damaged data, a bad key): retrying cannot help, only
    /// the user's resume does.
    Other,
}

impl FailureCause {
    /// The cause of a flush's or compaction's error.
    pub(crate) fn of(e: &Error) -> FailureCause {
        match e {
            Error::Io {
                kind: std::io::ErrorKind::StorageFull,
                ..
            } => FailureCause::NoSpace,
            Error::Io { .. } => FailureCause::Io,
            _ => FailureCause::Other,
        }
    }

    /// True when a background thread retries leaving the error state by
    /// itself (a full disk or a failing device may recover); for other
    /// causes it waits for the user's resume.
    pub(crate) fn retried(self) -> bool {
        matches!(self, FailureCause::NoSpace | FailureCause::Io)
    }
}

/// The pause state of one background thread across its failures: kept
/// between error states, cleared only when work succeeds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Backoff {
    /// Failures since the last success that set the pause: the first one,
    /// and each that repeated the cause before it.
    consecutive: u32,
    /// The cause of the last failure since the last success.
    cause: Option<FailureCause>,
}

impl Backoff {
    /// A thread with no failure since its last success.
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Backoff::default()
    }

    /// Records a failure; returns the pause before the next retry.
    pub(crate) fn on_failure(&mut self, cause: FailureCause) -> Duration {
        if self.consecutive == 0 || self.cause == Some(cause) {
            self.consecutive = self.consecutive.saturating_add(1);
        }
        self.cause = Some(cause);
        self.pause()
    }

    /// Records work that succeeded: the next failure pauses 20 ms again.
    pub(crate) fn on_success(&mut self) {
        *self = Backoff::default();
    }

    /// The pause the last failure asked for (zero with no failure).
    pub(crate) fn pause(&self) -> Duration {
        if self.consecutive == 0 {
            return Duration::ZERO;
        }
        let doublings = self.consecutive - 1;
        let factor = 1u32.checked_shl(doublings).unwrap_or(u32::MAX);
        FIRST_PAUSE.saturating_mul(factor).min(MAX_PAUSE)
    }

    /// The cause of the last failure since the last success.
    #[cfg(test)]
    pub(crate) fn cause(&self) -> Option<FailureCause> {
        self.cause
    }

    /// Failures since the last success that set the pause.
    #[cfg(test)]
    pub(crate) fn consecutive(&self) -> u32 {
        self.consecutive
    }

    /// True when the retry also waits for free space to rise, so the
    /// caller samples the file system's free bytes at the failure and
    /// while waiting.
    pub(crate) fn watches_space(&self) -> bool {
        self.cause == Some(FailureCause::NoSpace)
    }
}

/// True when the retry may run `elapsed` after a failure that asked for
/// `pause`: the pause ran out, or the file system's free bytes rose from
/// `free_then` (at the failure) to `free_now`. Pass `None` for
/// `free_then` when the failure was not for lack of space (or free space
/// is unknown): then only the pause counts.
pub(crate) fn may_retry(
    elapsed: Duration,
    pause: Duration,
    free_then: Option<u64>,
    free_now: Option<u64>,
) -> bool {
    elapsed >= pause || matches!((free_then, free_now), (Some(then), Some(now)) if now > then)
}

/// How long to wait before checking [`may_retry`] again, `elapsed` into a
/// `pause`: the rest of the pause, or at most [`SPACE_POLL`] when free
/// space is watched.
pub(crate) fn next_check(elapsed: Duration, pause: Duration, watching_space: bool) -> Duration {
    let rest = pause.saturating_sub(elapsed);
    if watching_space {
        rest.min(SPACE_POLL)
    } else {
        rest
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;
    use crate::policy::datadriven::{self, Case};

    fn duration(c: &Case, key: &str) -> Duration {
        let v: String = c.get(key);
        if let Some(ms) = v.strip_suffix("ms") {
            Duration::from_millis(c.parse(key, ms))
        } else if let Some(s) = v.strip_suffix('s') {
            Duration::from_secs(c.parse(key, s))
        } else {
            c.fail(format!("{key}={v}: want a number of ms or s"))
        }
    }

    fn cause(c: &Case) -> FailureCause {
        match c.get::<String>("cause").as_str() {
            "nospace" => FailureCause::NoSpace,
            "io" => FailureCause::Io,
            "other" => FailureCause::Other,
            v => c.fail(format!("unknown cause {v}")),
        }
    }

    fn state(b: &Backoff) -> String {
        format!(
            "pause={:?} consecutive={} cause={:?}",
            b.pause(),
            b.consecutive(),
            b.cause()
        )
    }

    /// A failure that repeats with the disk full and free space never
    /// rising: each retry waits (polling free space) until `may_retry`,
    /// then fails again. Returns the times of the retries within `span`.
    fn disk_full(span: Duration) -> Vec<Duration> {
        let mut b = Backoff::new();
        let mut now = Duration::ZERO;
        let mut retries = Vec::new();
        let free = Some(0);
        loop {
            let pause = b.on_failure(FailureCause::NoSpace);
            let failed_at = now;
            while !may_retry(now - failed_at, pause, free, free) {
                now += next_check(now - failed_at, pause, b.watches_space());
            }
            if now > span {
                return retries;
            }
            retries.push(now);
        }
    }

    #[test]
    fn backoff_testdata() {
        let mut b = Backoff::new();
        datadriven::run("backoff.txt", |c| match c.cmd.as_str() {
            "fail" => {
                let _ = b.on_failure(cause(c));
                state(&b)
            }
            "success" => {
                b.on_success();
                state(&b)
            }
            "schedule" => {
                let mut s = Backoff::new();
                let mut total = Duration::ZERO;
                let mut out = String::new();
                for i in 1..=c.get::<u32>("failures") {
                    let p = s.on_failure(cause(c));
                    total += p;
                    let _ = writeln!(out, "failure {i}: pause {p:?}, {total:?} in all");
                }
                out
            }
            "may-retry" => {
                let then = c.raw("free_then").map(|v| c.parse("free_then", v));
                let now = c.raw("free_now").map(|v| c.parse("free_now", v));
                let elapsed = duration(c, "elapsed");
                let pause = duration(c, "pause");
                if may_retry(elapsed, pause, then, now) {
                    "retry".to_string()
                } else {
                    let next = next_check(elapsed, pause, then.is_some());
                    format!("wait, check again in {next:?}")
                }
            }
            "disk-full" => {
                let retries = disk_full(duration(c, "for"));
                let times: Vec<_> = retries.iter().map(|t| format!("{t:?}")).collect();
                format!("{} retries at {}", retries.len(), times.join(" "))
            }
            _ => c.fail("unknown command"),
        });
    }

    #[test]
    fn twenty_seconds_of_full_disk_cost_at_most_25_retries() {
        let mut b = Backoff::new();
        let mut slept = Duration::ZERO;
        let mut cycles = 0;
        loop {
            slept += b.on_failure(FailureCause::NoSpace);
            if slept > Duration::from_secs(20) {
                break;
            }
            cycles += 1;
        }
        assert!(cycles <= 25, "{cycles} retries in 20 s");
        assert_eq!(disk_full(Duration::from_secs(20)).len(), cycles);
    }

    #[test]
    fn pause_grows_past_a_second_and_stops_at_the_cap() {
        let mut b = Backoff::new();
        let pauses: Vec<_> = (0..40).map(|_| b.on_failure(FailureCause::Io)).collect();
        assert_eq!(pauses[0], FIRST_PAUSE);
        assert!(pauses.windows(2).all(|w| w[1] >= w[0]));
        let first_past_second = pauses.iter().position(|&p| p >= Duration::from_secs(1));
        let i = first_past_second.unwrap();
        assert!(pauses[i + 1] > pauses[i], "keeps growing past 1 s");
        assert_eq!(*pauses.last().unwrap(), MAX_PAUSE);
        b.on_success();
        assert_eq!(b.on_failure(FailureCause::Io), FIRST_PAUSE);
    }

    #[test]
    fn causes_of_errors() {
        let io = |kind| Error::io("x", std::io::Error::new(kind, "x"));
        let full = io(std::io::ErrorKind::StorageFull);
        assert_eq!(FailureCause::of(&full), FailureCause::NoSpace);
        let eio = io(std::io::ErrorKind::Other);
        assert_eq!(FailureCause::of(&eio), FailureCause::Io);
        let bad = Error::InvalidArgument("x".into());
        assert_eq!(FailureCause::of(&bad), FailureCause::Other);
        // As the background threads decided before: only I/O errors retry.
        for e in [&full, &eio, &bad, &Error::Closed] {
            assert_eq!(FailureCause::of(e).retried(), matches!(e, Error::Io { .. }));
        }
    }
}
