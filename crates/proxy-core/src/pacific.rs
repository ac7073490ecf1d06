//! "Until midnight Pacific time", computed without a time-zone database.
//!
//! Gemini's per-day quotas reset at midnight in America/Los_Angeles. Carrying tz data
//! into a wasm Worker for one rule is wasteful, and the US rule is short: daylight time
//! from the second Sunday of March to the first Sunday of November, switching at 02:00
//! local, so local midnight itself is never ambiguous.

use crate::civil::{civil_from_days, days_from_civil};

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// Unix milliseconds of the next midnight in America/Los_Angeles strictly after `now_ms`.
pub fn next_midnight_pacific_ms(now_ms: u64) -> u64 {
    let now = now_ms as i64;
    let local = now + utc_offset_ms_at(now);
    let next_local_midnight = (local.div_euclid(DAY_MS) + 1) * DAY_MS;
    let day = next_local_midnight / DAY_MS;
    let offset = if is_daylight_date(day) {
        -7 * HOUR_MS
    } else {
        -8 * HOUR_MS
    };
    (next_local_midnight - offset).max(0) as u64
}

/// Offset of Pacific time from UTC at a UTC instant.
fn utc_offset_ms_at(utc_ms: i64) -> i64 {
    let (year, _, _) = civil_from_days(utc_ms.div_euclid(DAY_MS));
    // 02:00 PST is 10:00 UTC; 02:00 PDT is 09:00 UTC.
    let start = days_from_civil(year, 3, nth_sunday(year, 3, 2)) * DAY_MS + 10 * HOUR_MS;
    let end = days_from_civil(year, 11, nth_sunday(year, 11, 1)) * DAY_MS + 9 * HOUR_MS;
    if (start..end).contains(&utc_ms) {
        -7 * HOUR_MS
    } else {
        -8 * HOUR_MS
    }
}

/// Whether local midnight that starts day `day` (days since 1970-01-01, local) is in
/// daylight time: after the March switch day, up to and including the November one.
fn is_daylight_date(day: i64) -> bool {
    let (year, _, _) = civil_from_days(day);
    let start = days_from_civil(year, 3, nth_sunday(year, 3, 2));
    let end = days_from_civil(year, 11, nth_sunday(year, 11, 1));
    day > start && day <= end
}

/// Day of month of the `n`th Sunday of `month`.
fn nth_sunday(year: i64, month: u32, n: u32) -> u32 {
    let first = days_from_civil(year, month, 1);
    // 1970-01-01 was a Thursday: (days + 4) % 7 == 0 on Sundays.
    let weekday = (first + 4).rem_euclid(7) as u32;
    let first_sunday = 1 + (7 - weekday) % 7;
    first_sunday + 7 * (n - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix ms of a UTC date and hour, for readable expectations.
    fn utc(year: i64, month: u32, day: u32, hour: i64) -> u64 {
        (days_from_civil(year, month, day) * DAY_MS + hour * HOUR_MS) as u64
    }

    fn check(now: u64, expected: u64) {
        assert_eq!(next_midnight_pacific_ms(now), expected, "now = {now}");
    }

    #[test]
    fn next_midnight_in_standard_and_daylight_time() {
        // 2026-01-15 12:00 UTC is 04:00 PST; next midnight PST is 2026-01-16 08:00 UTC.
        check(utc(2026, 1, 15, 12), utc(2026, 1, 16, 8));
        // 2026-07-01 06:59 UTC is 23:59 PDT on June 30; midnight is 07:00 UTC.
        check(utc(2026, 7, 1, 6) + 59 * 60_000, utc(2026, 7, 1, 7));
        // Exactly at midnight PDT the next one is a day later.
        check(utc(2026, 7, 1, 7), utc(2026, 7, 2, 7));
    }

    #[test]
    fn switch_days() {
        // 2026: DST starts Sunday March 8, ends Sunday November 1.
        assert_eq!(nth_sunday(2026, 3, 2), 8);
        assert_eq!(nth_sunday(2026, 11, 1), 1);
        // March 7 evening PST -> midnight starting March 8 is still PST (08:00 UTC).
        check(utc(2026, 3, 8, 4), utc(2026, 3, 8, 8));
        // During March 8 (after 02:00 PDT) -> midnight starting March 9 is PDT (07:00 UTC).
        check(utc(2026, 3, 8, 20), utc(2026, 3, 9, 7));
        // October 31 PDT -> midnight starting November 1 is still PDT.
        check(utc(2026, 10, 31, 20), utc(2026, 11, 1, 7));
        // November 1 after the switch -> midnight starting November 2 is PST.
        check(utc(2026, 11, 1, 20), utc(2026, 11, 2, 8));
    }
}
