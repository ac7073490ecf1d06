//! Shapes what the store aggregates (`AdminStore::usage`) into chart buckets and the
//! usage table. Everything goes through `AdminStore`, so every store works.

use std::collections::HashMap;

use proxy_core::admin::{AdminStore, LogQuery, UsageCell, UsageQuery};
use proxy_core::keys::KeyId;
use proxy_core::log::LogRecord;
use proxy_core::platform::StoreError;

use crate::timefmt;

const PAGE: u32 = 1000;

/// The overview's time windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    Hour,
    Day,
    Week,
    /// The last 30 days, a bucket a day.
    Month,
}

impl Range {
    pub fn parse(text: Option<&str>) -> Range {
        match text {
            Some("hour") => Range::Hour,
            Some("week") => Range::Week,
            Some("month") => Range::Month,
            _ => Range::Day,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Range::Hour => "hour",
            Range::Day => "day",
            Range::Week => "week",
            Range::Month => "month",
        }
    }

    /// The range picker's words for it.
    pub fn label(self) -> &'static str {
        match self {
            Range::Hour => "Last hour",
            Range::Day => "Last day",
            Range::Week => "Last week",
            Range::Month => "Last 30 days",
        }
    }

    /// (bucket width, bucket count)
    pub fn buckets(self) -> (u64, usize) {
        match self {
            Range::Hour => (60_000, 60),
            Range::Day => (3_600_000, 24),
            Range::Week => (6 * 3_600_000, 28),
            Range::Month => (DAY_MS, 30),
        }
    }

    pub fn span_ms(self) -> u64 {
        let (width, count) = self.buckets();
        width * count as u64
    }
}

pub const DAY_MS: u64 = 86_400_000;

/// The buckets `range` charts at `now`: (first bucket's start, width, count), aligned to
/// the epoch as the stores align them, the last bucket holding `now`.
pub fn window(range: Range, now_ms: u64) -> (u64, u64, usize) {
    let (width, count) = range.buckets();
    let end = (now_ms / width + 1) * width;
    (end.saturating_sub(width * count as u64), width, count)
}

/// The whole of `range`'s window as one bucket: the overview's headline totals.
pub fn window_totals(range: Range, now_ms: u64) -> UsageQuery {
    UsageQuery {
        since_ms: window(range, now_ms).0,
        ..UsageQuery::default()
    }
}

/// Every bucket of the window in order, zeros where the store had no records (it
/// returns only buckets with some), from cells of a query that grouped by time alone.
pub fn fill_buckets(cells: &[UsageCell], start: u64, width: u64, count: usize) -> Vec<UsageCell> {
    let by_start: HashMap<u64, &UsageCell> = cells.iter().map(|c| (c.bucket_start_ms, c)).collect();
    (0..count as u64)
        .map(|i| {
            let at = start + width * i;
            by_start.get(&at).map_or_else(
                || UsageCell {
                    bucket_start_ms: at,
                    ..UsageCell::default()
                },
                |c| (*c).clone(),
            )
        })
        .collect()
}

/// Cells split by model and key summed per bucket, for charts of counts and tokens.
/// Percentiles do not add up, so the sums carry none (0).
pub fn sum_per_bucket(cells: &[UsageCell]) -> Vec<UsageCell> {
    let mut sums: HashMap<u64, UsageCell> = HashMap::new();
    for c in cells {
        let sum = sums.entry(c.bucket_start_ms).or_insert_with(|| UsageCell {
            bucket_start_ms: c.bucket_start_ms,
            ..UsageCell::default()
        });
        sum.add(c);
    }
    sums.into_values().collect()
}

/// One row of the usage table: a UTC day, a model and the key that answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageLine {
    pub day: String,
    pub model: String,
    pub key: String,
    pub cell: UsageCell,
}

/// Day x model x key cells as table rows: newest day first, then model and key.
pub fn usage_lines(cells: Vec<UsageCell>, key_names: &HashMap<KeyId, String>) -> Vec<UsageLine> {
    let mut lines: Vec<UsageLine> = cells
        .into_iter()
        .map(|cell| UsageLine {
            day: timefmt::date(cell.bucket_start_ms),
            model: cell.model.clone().unwrap_or_else(|| "-".into()),
            key: key_label(cell.upstream_key_id, key_names),
            cell,
        })
        .collect();
    lines.sort_by(|a, b| {
        b.day
            .cmp(&a.day)
            .then_with(|| a.model.cmp(&b.model))
            .then_with(|| a.key.cmp(&b.key))
    });
    lines
}

/// The `top` busiest groups of `cells`, busiest first.
pub fn busiest(mut cells: Vec<UsageCell>, top: usize) -> Vec<UsageCell> {
    cells.sort_by_key(|c| std::cmp::Reverse(c.requests));
    cells.truncate(top);
    cells
}

/// The last midnight in Pacific time, when Gemini's per-day quotas reset: "today" for
/// an upstream key.
pub fn pacific_day_start(now_ms: u64) -> u64 {
    proxy_core::pacific::next_midnight_pacific_ms(now_ms).saturating_sub(DAY_MS)
}

/// "name (#id)" for an upstream key, masked secrets never needed.
pub fn key_label(id: Option<KeyId>, names: &HashMap<KeyId, String>) -> String {
    match id {
        None => "-".into(),
        Some(id) => match names.get(&id) {
            Some(name) if !name.is_empty() => format!("{name} (#{id})"),
            _ => format!("#{id}"),
        },
    }
}

/// Finds one record by id; the time it started narrows the search to one millisecond.
pub async fn find_log(
    admin: &dyn AdminStore,
    id: &str,
    started_at_ms: u64,
) -> Result<Option<LogRecord>, StoreError> {
    let query = LogQuery {
        since_ms: Some(started_at_ms),
        until_ms: Some(started_at_ms.saturating_add(1)),
        limit: PAGE,
        ..LogQuery::default()
    };
    Ok(admin.list_logs(&query).await?.into_iter().find(|r| r.id == id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(at: u64, model: Option<&str>, key: Option<KeyId>, requests: u64) -> UsageCell {
        UsageCell {
            bucket_start_ms: at,
            model: model.map(Into::into),
            upstream_key_id: key,
            requests,
            ..UsageCell::default()
        }
    }

    #[test]
    fn window_ends_with_the_bucket_holding_now() {
        let (start, width, count) = window(Range::Hour, 100 * 60_000 + 5);
        assert_eq!((width, count), (60_000, 60));
        assert_eq!(start + width * (count as u64 - 1), 100 * 60_000);
    }

    #[test]
    fn missing_buckets_are_zeros() {
        let filled = fill_buckets(&[cell(20, None, None, 4)], 0, 10, 4);
        let shape: Vec<(u64, u64)> = filled.iter().map(|c| (c.bucket_start_ms, c.requests)).collect();
        assert_eq!(shape, vec![(0, 0), (10, 0), (20, 4), (30, 0)]);
    }

    #[test]
    fn sums_per_bucket_add_counters_across_groups() {
        let mut a = cell(0, Some("m1"), Some(1), 2);
        a.prompt_tokens = 5;
        let mut b = cell(0, Some("m2"), None, 3);
        b.prompt_tokens = 7;
        let mut sums = sum_per_bucket(&[a, b, cell(DAY_MS, None, None, 1)]);
        sums.sort_by_key(|c| c.bucket_start_ms);
        let shape: Vec<(u64, u64, u64)> = sums
            .iter()
            .map(|c| (c.bucket_start_ms, c.requests, c.prompt_tokens))
            .collect();
        assert_eq!(shape, vec![(0, 5, 12), (DAY_MS, 1, 0)]);
        assert!(sums.iter().all(|c| c.model.is_none() && c.latency_p95_ms == 0));
    }

    #[test]
    fn usage_lines_are_newest_day_first_with_key_names() {
        let names = HashMap::from([(1, "first".to_string())]);
        let lines = usage_lines(
            vec![
                cell(DAY_MS, Some("m1"), Some(1), 2),
                cell(2 * DAY_MS, Some("m2"), Some(2), 1),
                cell(DAY_MS, None, None, 1),
            ],
            &names,
        );
        let shape: Vec<(&str, &str, &str)> = lines
            .iter()
            .map(|l| (l.day.as_str(), l.model.as_str(), l.key.as_str()))
            .collect();
        assert_eq!(
            shape,
            vec![
                ("1970-01-03", "m2", "#2"),
                ("1970-01-02", "-", "-"),
                ("1970-01-02", "m1", "first (#1)")
            ]
        );
    }

    #[test]
    fn pacific_day_starts_at_local_midnight() {
        // 2026-01-15 12:00 UTC is 04:00 PST; the day began at 08:00 UTC.
        let noon_utc = 1_768_478_400_000;
        assert_eq!(pacific_day_start(noon_utc), noon_utc - 4 * 3_600_000);
    }
}
