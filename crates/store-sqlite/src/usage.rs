//! Usage per time bucket and group. SQLite runs in this process, so "aggregate in the
//! store" is cheapest as one narrow indexed scan (the columns the totals need, never
//! whole records) folded into groups here: SQLite has no percentile function, and
//! ranking with window functions sorts the whole range per query, which measured over
//! twice as slow with `bench`'s `dashboard-queries` (2.7 s against 1.2 s for a week of
//! 200 000 records).

use std::collections::HashMap;

use proxy_core::admin::{UsageCell, UsageQuery, bucket_start, sort_usage};
use proxy_core::error_class::failure_key;
use proxy_core::platform::StoreError;
use rusqlite::{Connection, named_params};

use crate::convert::{from_sql, to_sql};
use crate::error::DbResult;

/// A dimension not asked for reads as NULL, so it never splits a group and its text is
/// never copied.
const SCAN: &str = "SELECT l.started_at_ms,
       CASE WHEN :by_model THEN l.model END,
       CASE WHEN :by_key THEN l.answered_key_id END,
       CASE WHEN :by_proxy_key THEN l.proxy_key_id END,
       l.status, l.error_kind,
       l.latency_ms,
       COALESCE(l.prompt_tokens, 0), COALESCE(l.candidates_tokens, 0),
       COALESCE(l.thoughts_tokens, 0), COALESCE(l.cached_tokens, 0),
       COALESCE(l.total_tokens, 0),
       COALESCE(l.cost_usd, 0.0),
       l.ttfb_ms, l.overhead_us
FROM request_logs l
WHERE l.started_at_ms >= :since AND l.started_at_ms < :until";

/// (bucket start, model (interned), upstream key, proxy key)
type GroupKey = (u64, Option<u32>, Option<i64>, Option<i64>);

#[derive(Default)]
struct Group {
    cell: UsageCell,
    latencies: Vec<u64>,
    ttfbs: Vec<u64>,
    overheads: Vec<u64>,
}

pub(crate) fn usage(conn: &mut Connection, query: &UsageQuery) -> Result<Vec<UsageCell>, StoreError> {
    let mut stmt = conn.prepare_cached(SCAN).db()?;
    let mut rows = stmt
        .query(named_params! {
            ":since": to_sql(query.since_ms),
            ":until": query.until_ms.map_or(i64::MAX, to_sql),
            ":by_model": query.by_model,
            ":by_key": query.by_upstream_key,
            ":by_proxy_key": query.by_proxy_key,
        })
        .db()?;
    let mut models: HashMap<String, u32> = HashMap::new();
    let mut groups: HashMap<GroupKey, Group> = HashMap::new();
    while let Some(row) = rows.next().db()? {
        let model = row
            .get_ref(1)
            .db()?
            .as_str_or_null()
            .map_err(|e| StoreError::Unavailable(format!("unexpected value in request_logs.model: {e}")))?
            .map(|name| intern(&mut models, name));
        let started: i64 = row.get(0).db()?;
        let key = (
            bucket_start(query, from_sql(started)),
            model,
            row.get(2).db()?,
            row.get(3).db()?,
        );
        let group = groups.entry(key).or_default();
        let count = |i: usize| -> Result<u64, StoreError> { Ok(from_sql(row.get(i).db()?)) };
        let latency = count(6)?;
        let cell = &mut group.cell;
        cell.requests += 1;
        let status: u16 = row.get(4).db()?;
        let kind: Option<String> = row.get(5).db()?;
        if let Some(key) = failure_key(status, kind.as_deref()) {
            cell.count_failure(&key);
        }
        cell.latency_sum_ms += latency;
        cell.prompt_tokens += count(7)?;
        cell.candidates_tokens += count(8)?;
        cell.thoughts_tokens += count(9)?;
        cell.cached_tokens += count(10)?;
        cell.total_tokens += count(11)?;
        cell.cost_usd += row.get::<_, f64>(12).db()?;
        group.latencies.push(latency);
        if let Some(ttfb) = row.get::<_, Option<i64>>(13).db()? {
            group.ttfbs.push(from_sql(ttfb));
        }
        if let Some(overhead) = row.get::<_, Option<i64>>(14).db()? {
            group.overheads.push(from_sql(overhead));
        }
    }
    let names: HashMap<u32, String> = models.into_iter().map(|(name, id)| (id, name)).collect();
    let mut cells: Vec<UsageCell> = groups
        .into_iter()
        .map(|((bucket, model, key, proxy_key), mut group)| {
            let mut cell = group.cell;
            cell.bucket_start_ms = bucket;
            cell.model = model.and_then(|id| names.get(&id).cloned());
            cell.upstream_key_id = key;
            cell.proxy_key_id = proxy_key;
            cell.latency_p50_ms = nearest_rank(&mut group.latencies, 50);
            cell.latency_p95_ms = nearest_rank(&mut group.latencies, 95);
            cell.ttfb_p50_ms = nearest_rank(&mut group.ttfbs, 50);
            cell.overhead_p50_us = nearest_rank(&mut group.overheads, 50);
            cell
        })
        .collect();
    sort_usage(&mut cells);
    Ok(cells)
}

/// A small number for a model name, so grouping never copies the name per record.
fn intern(models: &mut HashMap<String, u32>, name: &str) -> u32 {
    if let Some(id) = models.get(name) {
        return *id;
    }
    let id = models.len() as u32;
    models.insert(name.to_string(), id);
    id
}

/// The ⌈p·n/100⌉-th smallest value (what PostgreSQL's `percentile_disc` returns).
fn nearest_rank(values: &mut [u64], percent: usize) -> u64 {
    if values.is_empty() {
        return 0;
    }
    let rank = (percent * values.len()).div_ceil(100).max(1);
    *values.select_nth_unstable(rank - 1).1
}

#[cfg(test)]
mod tests {
    use super::nearest_rank;

    #[test]
    fn nearest_rank_matches_percentile_disc() {
        let mut twenty: Vec<u64> = (1..=20).rev().collect();
        assert_eq!(nearest_rank(&mut twenty, 50), 10);
        assert_eq!(nearest_rank(&mut twenty, 95), 19);
        assert_eq!(nearest_rank(&mut [7], 95), 7);
        assert_eq!(nearest_rank(&mut [3, 1], 50), 1);
        assert_eq!(nearest_rank(&mut [], 50), 0);
    }
}
