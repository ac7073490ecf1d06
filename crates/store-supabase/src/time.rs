//! Unix milliseconds, the core's time unit, to and from the `timestamptz` text that
//! PostgREST reads and writes, plus the wall clock.
//!
//! Written by hand rather than with a date crate: two small functions and a calendar
//! formula keep the wasm32 build lean, and the shapes involved are fixed (we write UTC
//! with `Z`; PostgreSQL's JSON output is ISO 8601 with a numeric offset).

/// The last millisecond of year 9999. Past it `timestamptz` text needs five-digit
/// years; such times can only come from a bogus value and are written as `infinity`.
pub(crate) const MAX_MS: u64 = 253_402_300_799_999;

use proxy_core::civil::{civil_from_days, days_from_civil};

const MS_PER_DAY: i64 = 86_400_000;

/// `2024-01-02T03:04:05.006Z`, or `infinity` past year 9999.
pub(crate) fn format_ms(ms: u64) -> String {
    if ms > MAX_MS {
        return "infinity".to_string();
    }
    // MAX_MS fits in i64 with room to spare.
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    let (days, in_day) = (ms / MS_PER_DAY, ms % MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute) = (in_day / 3_600_000, in_day / 60_000 % 60);
    let (second, milli) = (in_day / 1000 % 60, in_day % 1000);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

/// Reads `YYYY-MM-DD[T ]HH:MM:SS[.fraction][Z|±HH[:MM[:SS]]]` (no offset means UTC).
/// Sub-millisecond digits are dropped; times before 1970 read as 0. `None` for
/// anything else.
pub(crate) fn parse_ms(text: &str) -> Option<u64> {
    let mut cursor = Cursor(text.as_bytes());
    let year = cursor.number(4)?;
    cursor.expect(b'-')?;
    let month = cursor.number(2)?;
    cursor.expect(b'-')?;
    let day = cursor.number(2)?;
    cursor.expect_any(b"T ")?;
    let hour = cursor.number(2)?;
    cursor.expect(b':')?;
    let minute = cursor.number(2)?;
    cursor.expect(b':')?;
    let second = cursor.number(2)?;
    let mut milli = 0;
    if cursor.eat(b'.') {
        let digits = cursor.digits();
        if digits.is_empty() {
            return None;
        }
        for (index, digit) in digits.iter().take(3).enumerate() {
            milli += i64::from(digit - b'0') * [100, 10, 1][index];
        }
    }
    let offset_seconds = cursor.offset()?;
    if !cursor.0.is_empty() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    if hour > 24 || minute > 59 || second > 60 {
        return None;
    }
    // Both checked above to lie in 1..=31.
    let days = days_from_civil(year, month as u32, day as u32);
    let local = days * MS_PER_DAY + (hour * 3600 + minute * 60 + second) * 1000 + milli;
    Some(u64::try_from(local - offset_seconds * 1000).unwrap_or(0))
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn number(&mut self, width: usize) -> Option<i64> {
        let digits = self.0.get(..width)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.0 = &self.0[width..];
        Some(digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    }

    fn digits(&mut self) -> &[u8] {
        let len = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
        let (digits, rest) = self.0.split_at(len);
        self.0 = rest;
        digits
    }

    fn eat(&mut self, byte: u8) -> bool {
        match self.0.split_first() {
            Some((first, rest)) if *first == byte => {
                self.0 = rest;
                true
            }
            _ => false,
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    fn expect_any(&mut self, bytes: &[u8]) -> Option<()> {
        bytes.iter().any(|b| self.eat(*b)).then_some(())
    }

    /// Seconds east of UTC.
    fn offset(&mut self) -> Option<i64> {
        if self.0.is_empty() || self.eat(b'Z') {
            return Some(0);
        }
        let sign = if self.eat(b'+') {
            1
        } else if self.eat(b'-') {
            -1
        } else {
            return None;
        };
        let mut seconds = self.number(2)? * 3600;
        if self.eat(b':') {
            seconds += self.number(2)? * 60;
            if self.eat(b':') {
                seconds += self.number(2)?;
            }
        }
        Some(sign * seconds)
    }
}

/// Unix milliseconds now, for "which cooldowns are still running". A clock before 1970
/// reads as 0.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn now_ms() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Unix milliseconds now. `SystemTime::now` panics on wasm32, so JavaScript's clock.
#[cfg(target_arch = "wasm32")]
pub(crate) fn now_ms() -> u64 {
    // A float of whole milliseconds; `as` saturates (NaN reads as 0).
    js_sys::Date::now() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_milliseconds() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(1_700_000_000_001), "2023-11-14T22:13:20.001Z");
        assert_eq!(format_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_ms(MAX_MS), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_ms(MAX_MS + 1), "infinity");
        assert_eq!(format_ms(u64::MAX), "infinity");
    }

    #[test]
    fn parses_postgres_json_output() {
        assert_eq!(parse_ms("2023-11-14T22:13:20.001+00:00"), Some(1_700_000_000_001));
        assert_eq!(
            parse_ms("2023-11-14T22:13:20.001999+00:00"),
            Some(1_700_000_000_001)
        );
        assert_eq!(parse_ms("2023-11-14T22:13:20+00:00"), Some(1_700_000_000_000));
        assert_eq!(parse_ms("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(parse_ms("2023-11-15T03:43:20.5+05:30"), Some(1_700_000_000_500));
        assert_eq!(parse_ms("2023-11-14T21:13:20-01"), Some(1_700_000_000_000));
        assert_eq!(parse_ms("2023-11-14 22:13:20.001"), Some(1_700_000_000_001));
        assert_eq!(parse_ms("1969-12-31T23:59:59+00:00"), Some(0));
    }

    #[test]
    fn rejects_other_text() {
        for bad in [
            "",
            "infinity",
            "2023-11-14",
            "2023-13-01T00:00:00Z",
            "2023-11-14T22:13:20.+00:00",
            "2023-11-14T22:13:20+0000x",
            "2023-11-14T22:13:20 UTC",
        ] {
            assert_eq!(parse_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn round_trips_across_the_calendar() {
        let mut ms = 0u64;
        while ms < MAX_MS {
            assert_eq!(parse_ms(&format_ms(ms)), Some(ms), "{ms}");
            ms += 7_777_777_777_777 / 3 + 123;
        }
        assert_eq!(parse_ms(&format_ms(MAX_MS)), Some(MAX_MS));
    }

    #[test]
    fn clock_is_after_2020() {
        assert!(now_ms() > 1_577_836_800_000);
    }
}
