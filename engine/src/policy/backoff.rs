//! Retry pauses after background failures (provisional).

use std::time::Duration;

/// The class of a failure; pauses grow across consecutive failures of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureCause {
    /// No space left on the device.
    NoSpace,
    /// Another I/O error.
    Io,
    /// Anything else.
    Other,
}

/// Consecutive failures and their cause.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    consecutive: u32,
    cause: Option<FailureCause>,
}

impl Backoff {
    /// Records a failure.
    pub(crate) fn on_failure(&mut self, cause: FailureCause) {
        if self.cause != Some(cause) {
            self.consecutive = 0;
        }
        self.cause = Some(cause);
        self.consecutive = self.consecutive.saturating_add(1);
    }

    /// Records a success.
    pub(crate) fn on_success(&mut self) {
        *self = Backoff::default();
    }

    /// The pause before the next retry.
    pub(crate) fn pause(&self) -> Duration {
        let n = self.consecutive.saturating_sub(1).min(16);
        (Duration::from_millis(20) * (1u32 << n)).min(Duration::from_secs(30))
    }
}

/// True when space was freed since a failure for lack of it.
pub(crate) fn space_freed(then: Option<u64>, now: Option<u64>) -> bool {
    matches!((then, now), (Some(t), Some(n)) if n > t)
}
