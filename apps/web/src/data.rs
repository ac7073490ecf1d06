//! Reads the store for the pages and aggregates request logs into chart buckets and
//! the usage table. Everything goes through `AdminStore`, so every store works.

use std::collections::{BTreeMap, HashMap};

use proxy_core::admin::{AdminStore, LogQuery};
use proxy_core::keys::KeyId;
use proxy_core::log::LogRecord;
use proxy_core::platform::StoreError;

use crate::timefmt;

/// Upper bound on records read for one chart or usage table, so a huge log table
/// cannot stall the dashboard; pages say when it was reached.
pub const MAX_ROWS: usize = 50_000;
const PAGE: u32 = 1000;

/// The overview's time windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    Hour,
    Day,
    Week,
}

impl Range {
    pub fn parse(text: Option<&str>) -> Range {
        match text {
            Some("hour") => Range::Hour,
            Some("week") => Range::Week,
            _ => Range::Day,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Range::Hour => "hour",
            Range::Day => "day",
            Range::Week => "week",
        }
    }

    /// (bucket width, bucket count)
    pub fn buckets(self) -> (u64, usize) {
        match self {
            Range::Hour => (60_000, 60),
            Range::Day => (3_600_000, 24),
            Range::Week => (6 * 3_600_000, 28),
        }
    }

    pub fn span_ms(self) -> u64 {
        let (width, count) = self.buckets();
        width * count as u64
    }
}

/// Records that started in `[since, until)`, newest first, at most `MAX_ROWS`.
pub async fn fetch_logs(
    admin: &dyn AdminStore,
    since_ms: u64,
    until_ms: Option<u64>,
) -> Result<Vec<LogRecord>, StoreError> {
    let mut all: Vec<LogRecord> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut offset = 0u32;
    loop {
        let query = LogQuery {
            since_ms: Some(since_ms),
            until_ms,
            limit: PAGE,
            offset,
            ..LogQuery::default()
        };
        let page = admin.list_logs(&query).await?;
        let full = page.len() == PAGE as usize;
        // Records written meanwhile shift later pages by a few rows; ids dedupe them.
        all.extend(page.into_iter().filter(|r| seen.insert(r.id.clone())));
        if !full || all.len() >= MAX_ROWS {
            break;
        }
        offset += PAGE;
    }
    all.truncate(MAX_ROWS);
    Ok(all)
}

pub fn is_error(record: &LogRecord) -> bool {
    record.status >= 400 || record.error_kind.is_some()
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub requests: u64,
    pub errors: u64,
    pub prompt: u64,
    pub output: u64,
    pub thinking: u64,
    pub cached: u64,
    pub total: u64,
    pub latency_sum: u64,
}

impl Totals {
    pub fn add(&mut self, r: &LogRecord) {
        self.requests += 1;
        self.errors += u64::from(is_error(r));
        self.prompt += r.prompt_tokens.unwrap_or(0);
        self.output += r.candidates_tokens.unwrap_or(0);
        self.thinking += r.thoughts_tokens.unwrap_or(0);
        self.cached += r.cached_tokens.unwrap_or(0);
        self.total += r.total_tokens.unwrap_or(0);
        self.latency_sum += r.latency_ms;
    }

    pub fn avg_latency(&self) -> u64 {
        self.latency_sum.checked_div(self.requests).unwrap_or(0)
    }

    pub fn error_rate_percent(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 * 100.0 / self.requests as f64
        }
    }
}

/// `count` consecutive buckets of `width` ms ending at `now`, oldest first.
pub fn buckets(logs: &[LogRecord], now_ms: u64, width: u64, count: usize) -> Vec<(u64, Totals)> {
    let end = (now_ms / width + 1) * width;
    let start = end.saturating_sub(width * count as u64);
    let mut out: Vec<(u64, Totals)> = (0..count)
        .map(|i| (start + width * i as u64, Totals::default()))
        .collect();
    for record in logs {
        if record.started_at_ms < start {
            continue;
        }
        let index = ((record.started_at_ms - start) / width) as usize;
        if let Some((_, totals)) = out.get_mut(index) {
            totals.add(record);
        }
    }
    out
}

/// One row of the usage table: day × model × key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UsageKey {
    pub day: String,
    pub model: String,
    pub key: String,
}

/// Groups by UTC day, model and the key that answered; newest day first.
pub fn usage(logs: &[LogRecord], key_names: &HashMap<KeyId, String>) -> Vec<(UsageKey, Totals)> {
    let mut groups: BTreeMap<UsageKey, Totals> = BTreeMap::new();
    for record in logs {
        let key = UsageKey {
            day: timefmt::date(record.started_at_ms),
            model: record.model.clone().unwrap_or_else(|| "-".into()),
            key: key_label(record.answered_key_id, key_names),
        };
        groups.entry(key).or_default().add(record);
    }
    let mut rows: Vec<_> = groups.into_iter().collect();
    rows.sort_by(|a, b| b.0.day.cmp(&a.0.day).then_with(|| a.0.cmp(&b.0)));
    rows
}

/// Daily totals (oldest first) for the usage chart.
pub fn per_day(rows: &[(UsageKey, Totals)]) -> Vec<(String, Totals)> {
    let mut days: BTreeMap<String, Totals> = BTreeMap::new();
    for (key, totals) in rows {
        let day = days.entry(key.day.clone()).or_default();
        day.requests += totals.requests;
        day.errors += totals.errors;
        day.prompt += totals.prompt;
        day.output += totals.output;
        day.thinking += totals.thinking;
        day.cached += totals.cached;
        day.total += totals.total;
        day.latency_sum += totals.latency_sum;
    }
    days.into_iter().collect()
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

    fn record(id: &str, at: u64, status: u16, model: &str, key: KeyId) -> LogRecord {
        LogRecord {
            id: id.into(),
            started_at_ms: at,
            status,
            model: Some(model.into()),
            answered_key_id: Some(key),
            prompt_tokens: Some(10),
            candidates_tokens: Some(5),
            latency_ms: 100,
            ..LogRecord::default()
        }
    }

    #[test]
    fn buckets_and_usage_add_up() {
        let day = 86_400_000;
        let logs = vec![
            record("a", day + 10, 200, "m1", 1),
            record("b", day + 20, 429, "m1", 1),
            record("c", 2 * day + 5, 200, "m2", 2),
        ];
        let b = buckets(&logs, 2 * day + 10, day, 2);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].1.requests, 2);
        assert_eq!(b[0].1.errors, 1);
        assert_eq!(b[1].1.requests, 1);
        let names = HashMap::from([(1, "first".to_string())]);
        let rows = usage(&logs, &names);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0.day, "1970-01-03");
        assert_eq!(rows[0].0.key, "#2");
        assert_eq!(rows[1].0.key, "first (#1)");
        assert_eq!(rows[1].1.prompt, 20);
        assert_eq!(per_day(&rows).len(), 2);
    }
}
