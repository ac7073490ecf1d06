//! Usage per time bucket and group, aggregated in SQL: window functions rank each
//! group's latencies so the percentiles come out of the same statement as the sums.

use proxy_core::admin::{UsageCell, UsageQuery, sort_usage};
use proxy_core::platform::StoreError;
use rusqlite::{Connection, Row, named_params};

use crate::convert::{from_sql, to_sql};
use crate::error::DbResult;

/// A dimension not asked for is NULL, so it never splits a group. Nearest-rank
/// percentiles: p50 is the ⌈n/2⌉-th latency, p95 the ⌈0.95·n⌉-th, in integer SQL.
const USAGE: &str = "WITH r AS (
    SELECT CASE WHEN :bucket > 0 THEN l.started_at_ms / :bucket * :bucket ELSE :since END AS b,
           CASE WHEN :by_model THEN l.model END AS m,
           CASE WHEN :by_key THEN l.answered_key_id END AS k,
           CASE WHEN :by_proxy_key THEN l.proxy_key_id END AS p,
           l.status, l.error_kind, l.latency_ms, l.prompt_tokens, l.candidates_tokens,
           l.thoughts_tokens, l.cached_tokens, l.total_tokens
    FROM request_logs l
    WHERE l.started_at_ms >= :since AND l.started_at_ms < :until
), ranked AS (
    SELECT r.*,
           ROW_NUMBER() OVER (PARTITION BY b, m, k, p ORDER BY latency_ms) AS rn,
           COUNT(*) OVER (PARTITION BY b, m, k, p) AS n
    FROM r
)
SELECT b, m, k, p,
       COUNT(*),
       SUM(CASE WHEN status >= 400 OR error_kind IS NOT NULL THEN 1 ELSE 0 END),
       SUM(COALESCE(prompt_tokens, 0)),
       SUM(COALESCE(candidates_tokens, 0)),
       SUM(COALESCE(thoughts_tokens, 0)),
       SUM(COALESCE(cached_tokens, 0)),
       SUM(COALESCE(total_tokens, 0)),
       SUM(latency_ms),
       MAX(CASE WHEN rn = (n + 1) / 2 THEN latency_ms END),
       MAX(CASE WHEN rn = (95 * n + 99) / 100 THEN latency_ms END)
FROM ranked
GROUP BY b, m, k, p";

fn cell(row: &Row<'_>) -> rusqlite::Result<UsageCell> {
    let count =
        |i: usize| -> rusqlite::Result<u64> { Ok(from_sql(row.get::<_, Option<i64>>(i)?.unwrap_or(0))) };
    Ok(UsageCell {
        bucket_start_ms: count(0)?,
        model: row.get(1)?,
        upstream_key_id: row.get(2)?,
        proxy_key_id: row.get(3)?,
        requests: count(4)?,
        errors: count(5)?,
        prompt_tokens: count(6)?,
        candidates_tokens: count(7)?,
        thoughts_tokens: count(8)?,
        cached_tokens: count(9)?,
        total_tokens: count(10)?,
        latency_sum_ms: count(11)?,
        latency_p50_ms: count(12)?,
        latency_p95_ms: count(13)?,
    })
}

pub(crate) fn usage(conn: &mut Connection, query: &UsageQuery) -> Result<Vec<UsageCell>, StoreError> {
    let mut stmt = conn.prepare_cached(USAGE).db()?;
    let rows = stmt
        .query_map(
            named_params! {
                ":since": to_sql(query.since_ms),
                ":until": query.until_ms.map_or(i64::MAX, to_sql),
                ":bucket": to_sql(query.bucket_ms),
                ":by_model": query.by_model,
                ":by_key": query.by_upstream_key,
                ":by_proxy_key": query.by_proxy_key,
            },
            cell,
        )
        .db()?;
    let mut cells = rows.collect::<rusqlite::Result<Vec<_>>>().db()?;
    sort_usage(&mut cells);
    Ok(cells)
}
