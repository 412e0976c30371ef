//! Commit timestamps: a hybrid logical clock.
//!
//! A [`Timestamp`] is a `u64` whose high 52 bits are physical microseconds
//! since the Unix epoch and whose low 12 bits are a logical counter. The
//! clock hands out `max(now << 12, last + 1)`: timestamps follow the wall
//! clock when it moves forward, and keep increasing through the counter
//! when it stands still or steps back. At open the clock resumes after the
//! largest timestamp found on disk, so timestamps increase across restarts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bits of the logical counter.
pub const LOGICAL_BITS: u32 = 12;

/// A commit timestamp. Ordered; larger is later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The smallest timestamp.
    pub const ZERO: Timestamp = Timestamp(0);
    /// The largest timestamp: a read at it sees every version.
    pub const MAX: Timestamp = Timestamp(u64::MAX);

    /// The timestamp of wall-clock time `t` (logical counter 0). Times
    /// before the epoch map to zero.
    pub fn from_system_time(t: SystemTime) -> Timestamp {
        let micros = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros());
        Timestamp((micros as u64).min(u64::MAX >> LOGICAL_BITS) << LOGICAL_BITS)
    }

    /// The wall-clock time of the physical part.
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.physical_micros())
    }

    /// The current wall-clock time as a timestamp.
    pub fn now() -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }

    /// Microseconds since the Unix epoch.
    pub fn physical_micros(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    /// The logical counter.
    pub fn logical(self) -> u64 {
        self.0 & ((1 << LOGICAL_BITS) - 1)
    }

    /// The raw value.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// This timestamp moved back by `d` (saturating at zero).
    pub fn saturating_sub(self, d: Duration) -> Timestamp {
        let delta =
            (d.as_micros().min(u128::from(u64::MAX >> LOGICAL_BITS)) as u64) << LOGICAL_BITS;
        Timestamp(self.0.saturating_sub(delta))
    }

    /// This timestamp moved forward by `d` (saturating).
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        let delta =
            (d.as_micros().min(u128::from(u64::MAX >> LOGICAL_BITS)) as u64) << LOGICAL_BITS;
        Timestamp(self.0.saturating_add(delta))
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        Timestamp::from_system_time(t)
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> Self {
        t.to_system_time()
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.physical_micros(), self.logical())
    }
}

/// The next `n` consecutive timestamps after `last`: the first is
/// `max(now, last + 1)`.
pub(crate) fn next_timestamps(last: u64, now: Timestamp) -> u64 {
    now.0.max(last.saturating_add(1))
}

/// Where the engine reads the time for commit timestamps and the history
/// window. The wall clock by default; a simulation can supply a
/// [`ManualClock`] so that runs repeat exactly.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that moves only when told to: each reading returns the time set
/// by [`set`](Self::set) or [`advance`](Self::advance).
#[derive(Debug, Default)]
pub struct ManualClock {
    micros: std::sync::atomic::AtomicU64,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            micros: std::sync::atomic::AtomicU64::new(start.physical_micros()),
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.micros.fetch_add(
            d.as_micros().min(u128::from(u64::MAX)) as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Sets the clock.
    pub fn set(&self, t: Timestamp) {
        self.micros
            .store(t.physical_micros(), std::sync::atomic::Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        let m = self.micros.load(std::sync::atomic::Ordering::Relaxed);
        Timestamp(m.min(u64::MAX >> LOGICAL_BITS) << LOGICAL_BITS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_system_time() {
        let t = SystemTime::now();
        let ts = Timestamp::from(t);
        let back: SystemTime = ts.into();
        let diff = t.duration_since(back).unwrap_or_default();
        assert!(diff < Duration::from_micros(1));
        assert_eq!(ts.logical(), 0);
    }

    #[test]
    fn strictly_increasing_when_the_clock_steps_back() {
        let now = Timestamp::now();
        let a = next_timestamps(0, now);
        let b = next_timestamps(a, now);
        let earlier = now.saturating_sub(Duration::from_secs(3600));
        let c = next_timestamps(b, earlier);
        assert!(a < b && b < c);
        assert_eq!(a, now.0);
    }
}
