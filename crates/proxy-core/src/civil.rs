//! Calendar arithmetic without a date library or a time-zone database: proleptic
//! Gregorian dates to and from days since 1970-01-01. Shared by the Pacific-midnight
//! quota reset, the Supabase store's timestamps and the dashboard's dates.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

const DAY_MS: u64 = 86_400_000;

/// RFC 3339 UTC to the second (`2026-12-01T00:00:00Z`).
pub fn format_utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rest = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Parses a moment given as RFC 3339 (`2026-12-01T12:00:00Z`, `…+02:00`, fractions
/// allowed) or as a date (`2026-12-01`, midnight UTC starting that day) into unix ms.
pub fn parse_instant(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let bad = || format!("{text:?} is not a date (YYYY-MM-DD) or an RFC 3339 time (2026-12-01T12:00:00Z)");
    let number = |s: &str| -> Result<i64, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse::<i64>().map_err(|_| bad())
    };
    let (date, time) = match text.find(['T', 't', ' ']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let mut fields = date.split('-');
    let (Some(y), Some(m), Some(d), None) = (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(bad());
    };
    let (year, month, day) = (number(y)?, number(m)?, number(d)?);
    if y.len() != 4 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month as u32) {
        return Err(bad());
    }
    let days = days_from_civil(year, month as u32, day as u32);
    let mut ms = days * DAY_MS as i64;
    if let Some(time) = time {
        let (clock, offset_ms) = match time.strip_suffix(['Z', 'z']) {
            Some(clock) => (clock, 0),
            None => {
                let at = time.rfind(['+', '-']).ok_or_else(bad)?;
                let (clock, offset) = time.split_at(at);
                let sign = if offset.starts_with('-') { -1 } else { 1 };
                let (h, m) = offset[1..].split_once(':').ok_or_else(bad)?;
                let (h, m) = (number(h)?, number(m)?);
                if h > 23 || m > 59 {
                    return Err(bad());
                }
                (clock, sign * (h * 3_600_000 + m * 60_000))
            }
        };
        let (whole, fraction) = clock.split_once('.').unwrap_or((clock, ""));
        let mut parts = whole.split(':');
        let (Some(h), Some(mi), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let (h, mi, s) = (number(h)?, number(mi)?, number(s)?);
        if h > 23 || mi > 59 || s > 60 {
            return Err(bad());
        }
        let millis = match fraction {
            "" => 0,
            f => number(&format!("{f:0<3}")[..3])?,
        };
        ms += h * 3_600_000 + mi * 60_000 + s * 1000 + millis - offset_ms;
    }
    u64::try_from(ms).map_err(|_| bad())
}

fn days_in_month(year: i64, month: u32) -> i64 {
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    days_from_civil(next_year, next_month, 1) - days_from_civil(year, month, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for day in [-1000, 0, 59, 365, 10_957, 20_000, 40_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn instants_parse_from_dates_and_rfc3339_and_print_back() {
        assert_eq!(parse_instant("2026-12-01"), Ok(1_796_083_200_000));
        assert_eq!(parse_instant("2026-12-01T00:00:00Z"), Ok(1_796_083_200_000));
        assert_eq!(parse_instant("2026-12-01T02:00:00+02:00"), Ok(1_796_083_200_000));
        assert_eq!(
            parse_instant("2026-11-30T19:00:00.5-05:00"),
            Ok(1_796_083_200_500)
        );
        assert_eq!(format_utc(1_796_083_200_999), "2026-12-01T00:00:00Z");
        for bad in [
            "",
            "tomorrow",
            "2026-13-01",
            "2026-02-30",
            "26-12-01",
            "2026-12-01T25:00:00Z",
            "2026-12-01T10:00",
        ] {
            let error = parse_instant(bad).err().unwrap_or_default();
            assert!(error.contains("YYYY-MM-DD"), "{bad}: {error}");
        }
    }
}
