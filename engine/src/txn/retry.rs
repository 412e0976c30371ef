//! Transactions with options, and the one loop that retries a transaction
//! after a conflict. Every layer above the engine retries through
//! [`TxnOptions::retry`], so the pause between attempts (exponential, with
//! jitter so that colliding writers do not collide again in lockstep) is
//! decided in one place.

use std::time::Duration;

use crate::error::Error;
use crate::options::WriteOptions;
use crate::random::SplitMix64;
use crate::txn::Isolation;

/// An error a transaction can be retried after: a conflict with a
/// concurrent commit, which a new attempt on a newer snapshot may avoid.
pub trait Retryable {
    /// True when a new attempt may succeed.
    fn is_conflict(&self) -> bool;
}

impl Retryable for Error {
    fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }
}

/// How a transaction runs and how it is retried after a conflict, for
/// [`Db::transaction_with`](crate::Db::transaction_with) and for any
/// layer that runs its own transactions through [`retry`](Self::retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnOptions {
    /// The isolation of each attempt.
    pub isolation: Isolation,
    /// Sync the commit before acknowledging it.
    pub sync: bool,
    /// Attempts in all before the last conflict is returned (at least 1).
    pub attempts: u32,
    /// The pause before the second attempt; each later one doubles it.
    pub backoff: Duration,
    /// The longest pause between two attempts.
    pub max_backoff: Duration,
}

impl Default for TxnOptions {
    /// Serializable, not synced, 64 attempts, pauses from 100 µs to 50 ms:
    /// eight threads incrementing one counter all succeed.
    fn default() -> Self {
        TxnOptions {
            isolation: Isolation::Serializable,
            sync: false,
            attempts: 64,
            backoff: Duration::from_micros(100),
            max_backoff: Duration::from_millis(50),
        }
    }
}

impl TxnOptions {
    /// The defaults at `isolation`.
    pub fn new(isolation: Isolation) -> Self {
        TxnOptions {
            isolation,
            ..TxnOptions::default()
        }
    }

    /// With commits synced (or not).
    pub fn with_sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    /// With at most `n` attempts.
    pub fn with_attempts(mut self, n: u32) -> Self {
        self.attempts = n;
        self
    }

    /// With pauses starting at `first` and growing to `max`.
    pub fn with_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.backoff = first;
        self.max_backoff = max;
        self
    }

    /// The write options of each commit.
    pub fn write_options(&self) -> WriteOptions {
        WriteOptions { sync: self.sync }
    }

    /// The pause before attempt `attempt` (0-based; none before the first):
    /// `backoff · 2^(attempt-1)`, capped at `max_backoff`, then a random
    /// fraction between one half and all of it.
    pub fn pause(&self, attempt: u32, rng: &mut impl FnMut() -> u64) -> Duration {
        if attempt == 0 {
            return Duration::ZERO;
        }
        let base = self
            .backoff
            .saturating_mul(1u32 << (attempt - 1).min(20))
            .min(self.max_backoff);
        let nanos = base.as_nanos().min(u64::MAX as u128) as u64;
        let half = nanos / 2;
        Duration::from_nanos(half + rng() % (nanos - half + 1))
    }

    /// Runs `attempt` until it succeeds, fails with an error that is not a
    /// conflict, or has run [`attempts`](Self::attempts) times; pauses
    /// between attempts. `attempt` gets its 0-based number and must start
    /// a new transaction each time.
    pub fn retry<T, E: Retryable>(
        &self,
        mut attempt: impl FnMut(u32) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut rng = None::<SplitMix64>;
        let mut n = 0;
        loop {
            match attempt(n) {
                Err(e) if e.is_conflict() && n + 1 < self.attempts.max(1) => {
                    let rng = rng.get_or_insert_with(|| {
                        let seed = crate::random::uid();
                        SplitMix64::new(u64::from_le_bytes(
                            seed[..8].try_into().unwrap_or_default(),
                        ))
                    });
                    n += 1;
                    std::thread::sleep(self.pause(n, &mut || rng.next_u64()));
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_to_the_cap_with_jitter_in_the_upper_half() {
        let o =
            TxnOptions::default().with_backoff(Duration::from_millis(1), Duration::from_millis(8));
        let mut hi = || u64::MAX;
        let mut lo = || 0;
        assert_eq!(o.pause(0, &mut hi), Duration::ZERO);
        assert_eq!(o.pause(1, &mut lo), Duration::from_micros(500));
        assert!(o.pause(1, &mut hi) <= Duration::from_millis(1));
        assert_eq!(o.pause(3, &mut lo), Duration::from_millis(2));
        assert_eq!(o.pause(30, &mut lo), Duration::from_millis(4));
        assert!(o.pause(30, &mut hi) <= Duration::from_millis(8));
    }

    #[test]
    fn retries_conflicts_only_and_stops_after_the_attempts() {
        let o = TxnOptions::default()
            .with_attempts(3)
            .with_backoff(Duration::from_micros(1), Duration::from_micros(2));
        let mut runs = 0;
        let r: Result<(), Error> = o.retry(|_| {
            runs += 1;
            Err(Error::Conflict {
                keyspace: "k".into(),
                key: b"x".to_vec(),
            })
        });
        assert!(r.unwrap_err().is_conflict());
        assert_eq!(runs, 3);
        let mut runs = 0;
        let r: Result<(), Error> = o.retry(|_| {
            runs += 1;
            Err(Error::Closed)
        });
        assert!(matches!(r, Err(Error::Closed)));
        assert_eq!(runs, 1);
        let r: Result<u32, Error> = o.retry(|n| {
            if n < 2 {
                Err(Error::Conflict {
                    keyspace: "k".into(),
                    key: vec![],
                })
            } else {
                Ok(n)
            }
        });
        assert_eq!(r.unwrap(), 2);
    }
}
