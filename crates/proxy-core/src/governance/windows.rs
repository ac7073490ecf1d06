//! The calendar windows limits are counted in: fixed windows on the clock, so every
//! instance (and Redis) agrees on which window a request falls in without talking.
//!
//! A fixed window lets a burst straddle its edge (up to twice a per-minute limit within
//! a minute that crosses it); in exchange, the count is exact, needs one number per
//! window, and is cheap to share. Google's own per-minute quotas behave the same way.

use crate::civil::{civil_from_days, days_from_civil};
use crate::pacific::next_midnight_pacific_ms;

const MINUTE_MS: u64 = 60_000;
const DAY_MS: u64 = 86_400_000;

/// A kind of window. Proxy keys count days and months in UTC; upstream keys count
/// days the way Google resets them, at midnight Pacific.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    Minute,
    DayUtc,
    DayPacific,
    MonthUtc,
}

impl Window {
    /// When the window holding `now_ms` ends (unix ms, exclusive): also its identity.
    pub fn end_ms(self, now_ms: u64) -> u64 {
        match self {
            Self::Minute => (now_ms / MINUTE_MS + 1) * MINUTE_MS,
            Self::DayUtc => (now_ms / DAY_MS + 1) * DAY_MS,
            Self::DayPacific => next_midnight_pacific_ms(now_ms),
            Self::MonthUtc => {
                let (year, month, _) = civil_from_days((now_ms / DAY_MS) as i64);
                let (year, month) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                days_from_civil(year, month, 1).max(0) as u64 * DAY_MS
            }
        }
    }

    /// A short name, for shared counters' keys.
    pub fn name(self) -> &'static str {
        match self {
            Self::Minute => "m",
            Self::DayUtc => "d",
            Self::DayPacific => "dp",
            Self::MonthUtc => "mo",
        }
    }
}

/// Whole seconds from `now_ms` until `until_ms`, at least 1: a `Retry-After` value.
pub fn retry_after_secs(now_ms: u64, until_ms: u64) -> u64 {
    until_ms.saturating_sub(now_ms).div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-03-31T23:59:30Z
    const END_OF_MARCH: u64 = 1_775_001_570_000;

    #[test]
    fn windows_end_where_the_calendar_says() {
        assert_eq!(Window::Minute.end_ms(END_OF_MARCH), END_OF_MARCH + 30_000);
        assert_eq!(
            Window::Minute.end_ms(END_OF_MARCH + 30_000),
            END_OF_MARCH + 90_000
        );
        assert_eq!(Window::DayUtc.end_ms(END_OF_MARCH), END_OF_MARCH + 30_000);
        // 2026-04-01T00:00Z, then 2026-05-01T00:00Z.
        assert_eq!(Window::MonthUtc.end_ms(END_OF_MARCH), 1_775_001_600_000);
        assert_eq!(Window::MonthUtc.end_ms(1_775_001_600_000), 1_777_593_600_000);
        // December rolls over the year.
        let december = days_from_civil(2026, 12, 15) as u64 * DAY_MS;
        assert_eq!(
            Window::MonthUtc.end_ms(december),
            days_from_civil(2027, 1, 1) as u64 * DAY_MS
        );
        // Midnight Pacific in daylight time is 07:00Z.
        assert_eq!(Window::DayPacific.end_ms(END_OF_MARCH), 1_775_026_800_000);
    }

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(retry_after_secs(0, 1), 1);
        assert_eq!(retry_after_secs(0, 1_001), 2);
        assert_eq!(retry_after_secs(5_000, 5_000), 1);
        assert_eq!(retry_after_secs(0, 60_000), 60);
    }
}
