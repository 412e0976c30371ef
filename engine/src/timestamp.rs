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

/// A commit timestamp. Ordered; larger is later. Serialized as its raw
/// `u64`, so that stored timestamps compare as numbers.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
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

    /// The timestamp of an RFC 3339 / ISO 8601 UTC time such as
    /// `2023-01-01T00:00:00Z`, `2023-01-01T00:00:00.250+02:00` or the
    /// date `2023-01-01` (logical counter 0). Fractions finer than a
    /// microsecond are truncated.
    pub fn from_iso8601(s: &str) -> crate::Result<Timestamp> {
        let micros = iso8601::parse(s)
            .ok_or_else(|| crate::Error::InvalidArgument(format!("not an ISO 8601 time: {s:?}")))?;
        Ok(Timestamp(micros << LOGICAL_BITS))
    }

    /// The physical part as an RFC 3339 UTC time with microseconds, e.g.
    /// `2023-01-01T00:00:00.000000Z`.
    pub fn to_iso8601(self) -> String {
        iso8601::format(self.physical_micros())
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

/// RFC 3339 parsing and formatting on the proleptic Gregorian calendar,
/// by day counts (no time-zone database: offsets are explicit).
mod iso8601 {
    /// Days from 1970-01-01 to `y-m-d` (Howard Hinnant's algorithm).
    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    fn civil_from_days(z: i64) -> (i64, i64, i64) {
        let z = z + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        (yoe + era * 400 + i64::from(m <= 2), m, d)
    }

    fn days_in_month(y: i64, m: i64) -> i64 {
        match m {
            2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    /// Reads exactly `n` ASCII digits.
    fn digits(b: &[u8], at: &mut usize, n: usize) -> Option<i64> {
        let s = b.get(*at..*at + n)?;
        let mut v = 0i64;
        for &c in s {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        *at += n;
        Some(v)
    }

    fn expect(b: &[u8], at: &mut usize, c: u8) -> Option<()> {
        (b.get(*at) == Some(&c)).then(|| *at += 1)
    }

    /// Microseconds since the epoch; `None` for anything malformed, out of
    /// range, or before 1970.
    pub(super) fn parse(s: &str) -> Option<u64> {
        let b = s.as_bytes();
        let mut at = 0;
        let y = digits(b, &mut at, 4)?;
        expect(b, &mut at, b'-')?;
        let mo = digits(b, &mut at, 2)?;
        expect(b, &mut at, b'-')?;
        let d = digits(b, &mut at, 2)?;
        if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
            return None;
        }
        let days = days_from_civil(y, mo, d);
        let mut secs = days * 86_400;
        let mut micros = 0i64;
        if at < b.len() {
            if !matches!(b[at], b'T' | b't' | b' ') {
                return None;
            }
            at += 1;
            let h = digits(b, &mut at, 2)?;
            expect(b, &mut at, b':')?;
            let mi = digits(b, &mut at, 2)?;
            expect(b, &mut at, b':')?;
            let se = digits(b, &mut at, 2)?;
            if h > 23 || mi > 59 || se > 60 {
                return None;
            }
            secs += h * 3600 + mi * 60 + se;
            if b.get(at) == Some(&b'.') {
                at += 1;
                let start = at;
                let mut scale = 100_000;
                while let Some(c) = b.get(at).filter(|c| c.is_ascii_digit()) {
                    micros += i64::from(c - b'0') * scale;
                    scale /= 10;
                    at += 1;
                }
                if at == start {
                    return None;
                }
            }
            match b.get(at)? {
                b'Z' | b'z' => at += 1,
                &sign @ (b'+' | b'-') => {
                    at += 1;
                    let oh = digits(b, &mut at, 2)?;
                    expect(b, &mut at, b':')?;
                    let om = digits(b, &mut at, 2)?;
                    if oh > 23 || om > 59 {
                        return None;
                    }
                    let off = oh * 3600 + om * 60;
                    secs -= if sign == b'+' { off } else { -off };
                }
                _ => return None,
            }
            if at != b.len() {
                return None;
            }
        }
        let total = secs.checked_mul(1_000_000)?.checked_add(micros)?;
        let total = u64::try_from(total).ok()?;
        (total <= u64::MAX >> super::LOGICAL_BITS).then_some(total)
    }

    pub(super) fn format(micros: u64) -> String {
        let secs = (micros / 1_000_000) as i64;
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let r = secs.rem_euclid(86_400);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
            r / 3600,
            r % 3600 / 60,
            r % 60,
            micros % 1_000_000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_iso8601() {
        let t = Timestamp::from_iso8601("2023-01-01T00:00:00Z").unwrap();
        assert_eq!(t.physical_micros(), 1_672_531_200_000_000);
        assert_eq!(t.logical(), 0);
        assert_eq!(t.to_iso8601(), "2023-01-01T00:00:00.000000Z");
        let day = Timestamp::from_iso8601("2023-01-01").unwrap();
        assert_eq!(day, t);
        let off = Timestamp::from_iso8601("2023-01-01T02:00:00.25+02:00").unwrap();
        assert_eq!(off.physical_micros(), t.physical_micros() + 250_000);
        let leap = Timestamp::from_iso8601("2024-02-29T23:59:59.999999Z").unwrap();
        assert_eq!(leap.to_iso8601(), "2024-02-29T23:59:59.999999Z");
        for bad in [
            "",
            "2023-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2023-01-01T24:00:00Z",
            "2023-01-01T00:00:00",
            "2023-01-01T00:00:00.Z",
            "1969-12-31T23:59:59Z",
            "2023-01-01T00:00:00Zjunk",
            "２０２３-01-01",
        ] {
            assert!(Timestamp::from_iso8601(bad).is_err(), "{bad:?}");
        }
        let now = Timestamp::now();
        let back = Timestamp::from_iso8601(&now.to_iso8601()).unwrap();
        assert_eq!(back, now);
    }

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
