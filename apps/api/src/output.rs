//! Plain-text tables and times for CLI output.

use std::time::{Duration, UNIX_EPOCH};

/// Prints rows as aligned columns under a header. Cells are escaped ([`escape_control`]):
/// some hold text a client chose (model names come from the request path).
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| escape_control(cell)).collect())
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// RFC 3339 UTC, to the second.
pub fn format_time(unix_ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(unix_ms)).to_string()
}

/// USD with at least two decimals and up to six (`$12.50`, `$0.0123`, `$0.000012`).
pub fn format_usd(usd: f64) -> String {
    let text = format!("{usd:.6}");
    let trimmed = text.trim_end_matches('0');
    let decimals = trimmed.split_once('.').map_or(0, |(_, d)| d.len());
    if decimals >= 2 {
        format!("${trimmed}")
    } else {
        format!("${usd:.2}")
    }
}

/// A span like `29d 17h`, `3h 5m`, `4m 10s` or `12s`: the two largest units.
pub fn format_duration_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, hours, minutes, seconds) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {seconds}s"),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

pub fn opt<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// Parses an age like `15m`, `24h`, `7d` into milliseconds.
pub fn parse_age_ms(text: &str) -> anyhow::Result<u64> {
    let duration = humantime::parse_duration(text)
        .map_err(|e| anyhow::anyhow!("invalid duration {text:?} (use e.g. 15m, 24h, 7d): {e}"))?;
    Ok(duration.as_millis() as u64)
}

pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `text` safe to print on a terminal: control characters (escape sequences, carriage
/// returns, newlines, C1 controls) and the bidirectional overrides that reorder what is
/// shown are written as Rust escapes (`\u{1b}`, `\r`, `\n`); everything else as is.
pub fn escape_control(text: &str) -> String {
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(unsafe_char) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if unsafe_char(c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{escape_control, format_duration_ms, format_usd};

    #[test]
    fn money_and_spans_read_as_people_write_them() {
        assert_eq!(format_usd(12.5), "$12.50");
        assert_eq!(format_usd(0.0), "$0.00");
        assert_eq!(format_usd(0.0123), "$0.0123");
        assert_eq!(format_usd(0.000_012), "$0.000012");
        assert_eq!(format_usd(1.762_3), "$1.7623");
        assert_eq!(format_duration_ms(12_000), "12s");
        assert_eq!(format_duration_ms(250_000), "4m 10s");
        assert_eq!(format_duration_ms(3 * 3_600_000 + 300_000), "3h 5m");
        assert_eq!(format_duration_ms(29 * 86_400_000 + 17 * 3_600_000), "29d 17h");
    }

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escape_control("gemini-2.5-flash"), "gemini-2.5-flash");
        assert_eq!(escape_control("ünï \\ \"x\""), "ünï \\ \"x\"");
        assert_eq!(escape_control("a\u{1b}[2Jb"), r"a\u{1b}[2Jb");
        assert_eq!(escape_control("a\r\nb\t"), r"a\r\nb\t");
        assert_eq!(escape_control("\u{9b}\u{7f}\u{202e}"), r"\u{9b}\u{7f}\u{202e}");
    }
}
