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

/// USD reads the same in the CLI and the dashboard: the core words it.
pub use proxy_core::admin::usd_text as format_usd;

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
    use super::escape_control;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escape_control("gemini-2.5-flash"), "gemini-2.5-flash");
        assert_eq!(escape_control("ünï \\ \"x\""), "ünï \\ \"x\"");
        assert_eq!(escape_control("a\u{1b}[2Jb"), r"a\u{1b}[2Jb");
        assert_eq!(escape_control("a\r\nb\t"), r"a\r\nb\t");
        assert_eq!(escape_control("\u{9b}\u{7f}\u{202e}"), r"\u{9b}\u{7f}\u{202e}");
    }
}
