//! UTC date formatting and parsing without a date library: the dashboard only needs
//! `YYYY-MM-DD HH:MM:SS` and the `datetime-local` input's `YYYY-MM-DDTHH:MM`.

use proxy_core::civil::{civil_from_days, days_from_civil};

const DAY_MS: u64 = 86_400_000;

/// The one time-zone rule of the dashboard, stated at the foot of every page.
pub const TIME_RULE: &str = "Times are UTC, and days and months are UTC days and months (proxy \
     keys' limits and budgets, usage, logs), except where Google counts: an upstream key's \
     “today” and its requests per day follow the Pacific day, from midnight in \
     America/Los_Angeles, when Gemini's daily quotas reset.";

pub fn date(ms: u64) -> String {
    let (y, m, d) = civil_from_days((ms / DAY_MS) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

pub fn date_time(ms: u64) -> String {
    let secs = (ms % DAY_MS) / 1000;
    format!(
        "{} {:02}:{:02}:{:02}",
        date(ms),
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// The `datetime-local` form value for `ms` (UTC, minutes).
pub fn input_value(ms: u64) -> String {
    let secs = (ms % DAY_MS) / 1000;
    format!("{}T{:02}:{:02}", date(ms), secs / 3600, (secs / 60) % 60)
}

/// Parses `YYYY-MM-DDTHH:MM` (or with a space, or date only) as UTC.
pub fn parse_input(text: &str) -> Option<u64> {
    let text = text.trim();
    let (date_part, time_part) = match text.split_once(['T', ' ']) {
        Some((d, t)) => (d, t),
        None => (text, "00:00"),
    };
    let mut date_fields = date_part.split('-');
    let year: i64 = date_fields.next()?.parse().ok()?;
    let month: u32 = date_fields.next()?.parse().ok()?;
    let day: u32 = date_fields.next()?.parse().ok()?;
    let mut time_fields = time_part.split(':');
    let hour: u64 = time_fields.next()?.parse().ok()?;
    let minute: u64 = time_fields.next().unwrap_or("0").parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    Some(days * DAY_MS + (hour * 60 + minute) * 60_000)
}

/// "3m 12s" style duration for cooldowns and expiries, worded as the CLI words it.
pub use proxy_core::admin::span_text as duration;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_utc() {
        assert_eq!(date_time(0), "1970-01-01 00:00:00");
        // 2024-02-29 13:45:00 UTC
        let ms = 1_709_214_300_000;
        assert_eq!(date_time(ms), "2024-02-29 13:45:00");
        assert_eq!(input_value(ms), "2024-02-29T13:45");
        assert_eq!(parse_input("2024-02-29T13:45"), Some(ms));
        assert_eq!(parse_input("2024-02-29"), Some(ms - (13 * 60 + 45) * 60_000));
        assert_eq!(parse_input("nonsense"), None);
        assert_eq!(parse_input("2024-13-01"), None);
        assert_eq!(duration(61_000), "1m 1s");
        assert_eq!(duration(3_660_000), "1h 1m");
        assert_eq!(duration(90_000_000), "1d 1h");
    }
}
