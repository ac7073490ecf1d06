//! How usage figures read for people: one wording for the CLI and the dashboard, so an
//! operator sees the same line in both. Each caller brings its own clock format (the
//! CLI prints RFC 3339, the dashboard a UTC date and time).

use super::key_usage::LimitLeft;

/// USD with at least two decimals and up to six (`$12.50`, `$0.0123`, `$0.000012`);
/// a positive amount below a millionth reads `<$0.000001`, never `$0.00`.
pub fn usd_text(usd: f64) -> String {
    if usd > 0.0 && usd < 0.000_001 {
        return "<$0.000001".into();
    }
    let text = format!("{usd:.6}");
    let trimmed = text.trim_end_matches('0');
    let decimals = trimmed.split_once('.').map_or(0, |(_, d)| d.len());
    if decimals >= 2 {
        format!("${trimmed}")
    } else {
        format!("${usd:.2}")
    }
}

/// A span in its two largest units: `29d 17h`, `3h 5m`, `4m 10s` or `12s`.
pub fn span_text(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, hours, minutes, seconds) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {seconds}s"),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

impl LimitLeft {
    /// One line: the limit by the name its refusals use and what it leaves, e.g.
    /// `tokens per day: 1000, used 300, left 700 (resets 2026-12-03T00:00:00Z)`.
    pub fn describe(&self, time: impl Fn(u64) -> String) -> String {
        match self {
            LimitLeft::Rpm { limit, last_minute } => {
                format!("rpm: {limit} per minute ({last_minute} in the last 60 s)")
            }
            LimitLeft::Tpm { limit, last_minute } => {
                format!("tpm: {limit} tokens per minute ({last_minute} in the last 60 s)")
            }
            LimitLeft::TokensPerDay {
                limit,
                used,
                left,
                resets_at_ms,
            } => format!(
                "tokens per day: {limit}, used {used}, left {left} (resets {})",
                time(*resets_at_ms)
            ),
            LimitLeft::Budget {
                limit_usd,
                period,
                used_usd,
                left_usd,
                resets_at_ms,
            } => format!(
                "budget: {} per {}, used {}, left {} (resets {})",
                usd_text(*limit_usd),
                period.as_str(),
                usd_text(*used_usd),
                usd_text(*left_usd),
                time(*resets_at_ms)
            ),
            LimitLeft::Expires {
                at_ms, expired: true, ..
            } => format!("expires: expired at {}", time(*at_ms)),
            LimitLeft::Expires { at_ms, left_ms, .. } => {
                format!("expires: {} (in {})", time(*at_ms), span_text(*left_ms))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::BudgetPeriod;

    #[test]
    fn usd_keeps_two_to_six_decimals() {
        assert_eq!(usd_text(12.5), "$12.50");
        assert_eq!(usd_text(0.0123), "$0.0123");
        assert_eq!(usd_text(0.000012), "$0.000012");
        assert_eq!(usd_text(1.762_3), "$1.7623");
        assert_eq!(usd_text(0.0000001), "<$0.000001");
        assert_eq!(usd_text(0.0), "$0.00");
    }

    #[test]
    fn spans_show_two_units() {
        assert_eq!(span_text(12_000), "12s");
        assert_eq!(span_text(250_000), "4m 10s");
        assert_eq!(span_text(11_100_000), "3h 5m");
        assert_eq!(span_text(2_566_800_000), "29d 17h");
    }

    #[test]
    fn limits_read_with_the_callers_clock() {
        let time = |ms: u64| format!("t{ms}");
        let budget = LimitLeft::Budget {
            limit_usd: 2.0,
            period: BudgetPeriod::Month,
            used_usd: 0.375,
            left_usd: 1.625,
            resets_at_ms: 9,
        };
        assert_eq!(
            budget.describe(time),
            "budget: $2.00 per month, used $0.375, left $1.625 (resets t9)"
        );
        let expired = LimitLeft::Expires {
            at_ms: 5,
            expired: true,
            left_ms: 0,
        };
        assert_eq!(expired.describe(time), "expires: expired at t5");
        let expires = LimitLeft::Expires {
            at_ms: 5,
            expired: false,
            left_ms: 90_000,
        };
        assert_eq!(expires.describe(time), "expires: t5 (in 1m 30s)");
        let rpm = LimitLeft::Rpm {
            limit: 10,
            last_minute: 3,
        };
        assert_eq!(rpm.describe(time), "rpm: 10 per minute (3 in the last 60 s)");
    }
}
