//! Shapes what the store aggregates (`AdminStore::usage`) into chart buckets and the
//! usage table. Everything goes through `AdminStore`, so every store works.

use std::collections::HashMap;

use proxy_core::admin::{AdminStore, LogQuery, UsageCell, UsageQuery};
use proxy_core::keys::KeyId;
use proxy_core::log::LogRecord;
use proxy_core::platform::StoreError;

use crate::timefmt;

const PAGE: u32 = 1000;

/// The overview's time windows: the last hour, day, week or 30 days (each ending with
/// the bucket that holds now), or a custom one from and to a UTC time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    Hour,
    Day,
    Week,
    /// The last 30 days, a bucket a day.
    Month,
    /// `[from_ms, to_ms)`, bucketed by [`custom_bucket_ms`].
    Custom {
        from_ms: u64,
        to_ms: u64,
    },
}

/// The ranges the picker offers as links.
pub const PRESETS: [Range; 4] = [Range::Hour, Range::Day, Range::Week, Range::Month];

/// The longest custom range: a year of day buckets.
const MAX_CUSTOM_MS: u64 = 366 * DAY_MS;

impl Range {
    /// `range=hour|day|week|month` (the day when absent or unknown), or `range=custom`
    /// with `from` and `to` as the logs page takes them (UTC `YYYY-MM-DDTHH:MM`, or a
    /// date for its midnight). A custom range that does not parse, is empty or is
    /// longer than a year is refused with the reason, for the page to show.
    pub fn parse(range: Option<&str>, from: Option<&str>, to: Option<&str>) -> Result<Range, String> {
        Ok(match range {
            Some("hour") => Range::Hour,
            Some("week") => Range::Week,
            Some("month") => Range::Month,
            Some("custom") => {
                let time = |name: &str, text: Option<&str>| {
                    let text = text.unwrap_or("").trim();
                    timefmt::parse_input(text).ok_or_else(|| {
                        format!(
                            "{name}: {text:?} is not a UTC time (YYYY-MM-DDTHH:MM) or a date (YYYY-MM-DD)"
                        )
                    })
                };
                let (from_ms, to_ms) = (time("from", from)?, time("to", to)?);
                if to_ms <= from_ms {
                    return Err("to must be later than from".into());
                }
                if to_ms - from_ms > MAX_CUSTOM_MS {
                    return Err("a custom range is at most 366 days".into());
                }
                Range::Custom { from_ms, to_ms }
            }
            _ => Range::Day,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Range::Hour => "hour",
            Range::Day => "day",
            Range::Week => "week",
            Range::Month => "month",
            Range::Custom { .. } => "custom",
        }
    }

    /// The range picker's words for it.
    pub fn label(self) -> &'static str {
        match self {
            Range::Hour => "Last hour",
            Range::Day => "Last day",
            Range::Week => "Last week",
            Range::Month => "Last 30 days",
            Range::Custom { .. } => "Custom",
        }
    }

    /// The query string that asks for this range again (links and the live refresh).
    pub fn query(self) -> String {
        match self {
            Range::Custom { from_ms, to_ms } => format!(
                "range=custom&from={}&to={}",
                timefmt::input_value(from_ms),
                timefmt::input_value(to_ms)
            ),
            preset => format!("range={}", preset.name()),
        }
    }
}

/// A custom range's bucket width: about 30 to 200 buckets whatever its length.
pub fn custom_bucket_ms(span_ms: u64) -> u64 {
    match span_ms {
        s if s <= 3 * 3_600_000 => 60_000,
        s if s <= 3 * DAY_MS => 3_600_000,
        s if s <= 21 * DAY_MS => 6 * 3_600_000,
        _ => DAY_MS,
    }
}

pub const DAY_MS: u64 = 86_400_000;

/// What a range charts: records started in `[since_ms, until_ms)` (`None`: up to
/// now), in `count` buckets of `width_ms` aligned to the epoch as the stores align
/// them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub since_ms: u64,
    pub until_ms: Option<u64>,
    pub width_ms: u64,
    pub count: usize,
}

/// The window of `range` at `now`: a preset's last bucket holds `now`; a custom
/// range starts with the bucket holding `from` and ends at `to`.
pub fn window(range: Range, now_ms: u64) -> Window {
    let (width_ms, count, until_ms) = match range {
        Range::Hour => (60_000, 60, None),
        Range::Day => (3_600_000, 24, None),
        Range::Week => (6 * 3_600_000, 28, None),
        Range::Month => (DAY_MS, 30, None),
        Range::Custom { from_ms, to_ms } => {
            let width = custom_bucket_ms(to_ms - from_ms);
            let start = from_ms / width * width;
            let count = (to_ms - start).div_ceil(width) as usize;
            return Window {
                since_ms: from_ms,
                until_ms: Some(to_ms),
                width_ms: width,
                count,
            };
        }
    };
    let end = (now_ms / width_ms + 1) * width_ms;
    Window {
        since_ms: end.saturating_sub(width_ms * count as u64),
        until_ms,
        width_ms,
        count,
    }
}

impl Window {
    /// The first bucket's start (a custom range's `from` may fall inside it).
    pub fn first_bucket_ms(&self) -> u64 {
        self.since_ms / self.width_ms * self.width_ms
    }

    /// Every bucket's start, oldest first.
    pub fn bucket_starts(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.count as u64).map(|i| self.first_bucket_ms() + self.width_ms * i)
    }

    /// The whole window as one bucket: the overview's headline totals.
    pub fn totals(&self) -> UsageQuery {
        UsageQuery {
            since_ms: self.since_ms,
            until_ms: self.until_ms,
            ..UsageQuery::default()
        }
    }

    /// The window in its buckets.
    pub fn per_bucket(&self) -> UsageQuery {
        UsageQuery {
            bucket_ms: self.width_ms,
            ..self.totals()
        }
    }

    /// A bucket's label on the charts' time axis: the clock within a day, the date
    /// and hour within weeks, the date beyond.
    pub fn label(&self, bucket_start_ms: u64) -> String {
        let text = timefmt::date_time(bucket_start_ms);
        let span = self.width_ms * self.count as u64;
        match self.width_ms {
            DAY_MS => text[5..10].to_string(),
            w if w < 6 * 3_600_000 && span <= DAY_MS => text[11..16].to_string(),
            w if w < 6 * 3_600_000 => format!("{} {}", &text[5..10], &text[11..16]),
            _ => text[5..13].to_string(),
        }
    }
}

/// How the overview's charts split their series: by kind (outcome, token kind), or
/// one series per model or per upstream key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Kind,
    Model,
    Key,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Kind, Split::Model, Split::Key];

    pub fn parse(text: Option<&str>) -> Split {
        match text {
            Some("model") => Split::Model,
            Some("key") => Split::Key,
            _ => Split::Kind,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Split::Kind => "kind",
            Split::Model => "model",
            Split::Key => "key",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Split::Kind => "by outcome",
            Split::Model => "per model",
            Split::Key => "per upstream key",
        }
    }
}

/// One series of a split chart: a model's or a key's cells, a bucket each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitSeries {
    pub label: String,
    pub buckets: Vec<UsageCell>,
    /// The sum of the groups outside the top ones: its percentiles mean nothing.
    pub other: bool,
}

/// Cells grouped by time and one dimension as the `top` busiest groups' series (each
/// a bucket per window slot) and one "other" series summing the rest, if any.
pub fn split_series(
    cells: &[UsageCell],
    label_of: impl Fn(&UsageCell) -> String,
    window: &Window,
    top: usize,
) -> Vec<SplitSeries> {
    let mut groups: HashMap<String, Vec<UsageCell>> = HashMap::new();
    for cell in cells {
        groups.entry(label_of(cell)).or_default().push(cell.clone());
    }
    let mut ranked: Vec<(String, Vec<UsageCell>)> = groups.into_iter().collect();
    ranked.sort_by(|(a, ac), (b, bc)| {
        let total = |cs: &[UsageCell]| cs.iter().map(|c| c.requests).sum::<u64>();
        total(bc).cmp(&total(ac)).then_with(|| a.cmp(b))
    });
    let rest: Vec<UsageCell> = ranked
        .iter()
        .skip(top)
        .flat_map(|(_, cs)| cs.iter().cloned())
        .collect();
    let start = window.first_bucket_ms();
    let mut series: Vec<SplitSeries> = ranked
        .into_iter()
        .take(top)
        .map(|(label, cs)| SplitSeries {
            label,
            buckets: fill_buckets(&cs, start, window.width_ms, window.count),
            other: false,
        })
        .collect();
    if !rest.is_empty() {
        series.push(SplitSeries {
            label: "other".into(),
            buckets: fill_buckets(&sum_per_bucket(&rest), start, window.width_ms, window.count),
            other: true,
        });
    }
    series
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
        let w = window(Range::Hour, 100 * 60_000 + 5);
        assert_eq!((w.width_ms, w.count, w.until_ms), (60_000, 60, None));
        assert_eq!(w.since_ms + w.width_ms * (w.count as u64 - 1), 100 * 60_000);
    }

    #[test]
    fn custom_ranges_parse_and_bucket_by_their_length() {
        let range =
            Range::parse(Some("custom"), Some("2026-12-01T00:00"), Some("2026-12-03")).expect("parses");
        let from = timefmt::parse_input("2026-12-01").expect("date");
        assert_eq!(
            range,
            Range::Custom {
                from_ms: from,
                to_ms: from + 2 * DAY_MS
            }
        );
        let w = window(range, 0);
        assert_eq!(
            (w.since_ms, w.until_ms, w.width_ms, w.count),
            (from, Some(from + 2 * DAY_MS), 3_600_000, 48)
        );
        assert_eq!(w.label(from + 3_600_000), "12-01 01:00");
        assert_eq!(
            range.query(),
            "range=custom&from=2026-12-01T00:00&to=2026-12-03T00:00"
        );
        assert_eq!(
            Range::parse(
                Some(range.name()),
                Some("2026-12-01T00:00"),
                Some("2026-12-03T00:00")
            ),
            Ok(range)
        );
        // A from inside a bucket: the first bucket starts before it, the count covers to.
        let odd = Range::Custom {
            from_ms: from + 90_000,
            to_ms: from + 3_600_000,
        };
        let w = window(odd, 0);
        assert_eq!(
            (w.first_bucket_ms(), w.width_ms, w.count),
            (from + 60_000, 60_000, 59)
        );
        assert_eq!(w.label(from + 60_000), "00:01");
    }

    #[test]
    fn bad_custom_ranges_say_why() {
        let refuse =
            |from: &str, to: &str| Range::parse(Some("custom"), Some(from), Some(to)).expect_err(from);
        assert!(refuse("", "2026-12-03").starts_with("from: "));
        assert!(refuse("2026-12-01", "soon").starts_with("to: "));
        assert_eq!(refuse("2026-12-03", "2026-12-01"), "to must be later than from");
        assert_eq!(
            refuse("2025-01-01", "2026-12-01"),
            "a custom range is at most 366 days"
        );
        assert_eq!(Range::parse(Some("fortnight"), None, None), Ok(Range::Day));
    }

    #[test]
    fn split_series_keep_the_busiest_and_sum_the_rest() {
        let w = Window {
            since_ms: 0,
            until_ms: None,
            width_ms: 10,
            count: 2,
        };
        let cells = [
            cell(0, Some("a"), None, 5),
            cell(10, Some("a"), None, 1),
            cell(0, Some("b"), None, 3),
            cell(10, Some("c"), None, 2),
            cell(10, Some("d"), None, 1),
        ];
        let series = split_series(&cells, |c| c.model.clone().unwrap_or_default(), &w, 2);
        let shape: Vec<(&str, bool, Vec<u64>)> = series
            .iter()
            .map(|s| {
                (
                    s.label.as_str(),
                    s.other,
                    s.buckets.iter().map(|b| b.requests).collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                ("a", false, vec![5, 1]),
                ("b", false, vec![3, 0]),
                ("other", true, vec![0, 3])
            ]
        );
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
