//! Usage totals over the request logs: overall, per model and per answering key.

use proxy_core::admin::{LogStats, UsageRow};
use proxy_core::platform::StoreError;
use rusqlite::{Connection, Row};

use crate::convert::{from_sql, to_sql};
use crate::error::DbResult;

/// The aggregate columns shared by every grouping. An error is an HTTP error status or
/// a failure hidden in a 200 (blocked, cut short), which sets `error_kind`. Missing
/// token counts add nothing; `SUM` over no rows is NULL, hence the outer COALESCE.
const AGGREGATES: &str = "COUNT(*), \
     COALESCE(SUM(CASE WHEN l.status >= 400 OR l.error_kind IS NOT NULL THEN 1 ELSE 0 END), 0), \
     COALESCE(SUM(COALESCE(l.prompt_tokens, 0)), 0), \
     COALESCE(SUM(COALESCE(l.candidates_tokens, 0)), 0), \
     COALESCE(SUM(COALESCE(l.thoughts_tokens, 0)), 0), \
     COALESCE(SUM(COALESCE(l.cached_tokens, 0)), 0), \
     COALESCE(SUM(COALESCE(l.total_tokens, 0)), 0), \
     COALESCE(SUM(l.latency_ms), 0)";

/// Reads the aggregates starting at column `first`, under the name `group`.
fn usage(row: &Row<'_>, first: usize, group: String) -> rusqlite::Result<UsageRow> {
    let requests = from_sql(row.get(first)?);
    let latency_sum = from_sql(row.get(first + 7)?);
    Ok(UsageRow {
        group,
        requests,
        errors: from_sql(row.get(first + 1)?),
        prompt_tokens: from_sql(row.get(first + 2)?),
        candidates_tokens: from_sql(row.get(first + 3)?),
        thoughts_tokens: from_sql(row.get(first + 4)?),
        cached_tokens: from_sql(row.get(first + 5)?),
        total_tokens: from_sql(row.get(first + 6)?),
        avg_latency_ms: latency_sum.checked_div(requests).unwrap_or(0),
    })
}

/// Groups are listed busiest first, then by name, so the output is stable.
fn sort(rows: &mut [UsageRow]) {
    rows.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.group.cmp(&b.group)));
}

pub(crate) fn log_stats(conn: &mut Connection, since_ms: u64) -> Result<LogStats, StoreError> {
    // One read transaction so the three groupings add up to the same total.
    let tx = conn.transaction().db()?;
    let since = to_sql(since_ms);

    let total = tx
        .query_row(
            &format!("SELECT {AGGREGATES} FROM request_logs l WHERE l.started_at_ms >= ?1"),
            [since],
            |row| usage(row, 0, "total".into()),
        )
        .db()?;

    let mut by_model = {
        let mut stmt = tx
            .prepare_cached(&format!(
                "SELECT l.model, {AGGREGATES} FROM request_logs l \
                 WHERE l.started_at_ms >= ?1 GROUP BY l.model"
            ))
            .db()?;
        let rows = stmt
            .query_map([since], |row| {
                // Requests rejected before a model was known still count somewhere.
                let model: Option<String> = row.get(0)?;
                usage(row, 1, model.unwrap_or_else(|| "(none)".into()))
            })
            .db()?;
        rows.map(|row| row.db()).collect::<Result<Vec<_>, _>>()?
    };

    let mut by_key = {
        // Grouped by id, named by the key's current name; a removed or unnamed key
        // shows as `#id`, and requests no key answered as "(none)".
        let mut stmt = tx
            .prepare_cached(&format!(
                "SELECT l.answered_key_id, (SELECT name FROM keys WHERE id = l.answered_key_id), \
                 {AGGREGATES} FROM request_logs l \
                 WHERE l.started_at_ms >= ?1 GROUP BY l.answered_key_id"
            ))
            .db()?;
        let rows = stmt
            .query_map([since], |row| {
                let id: Option<i64> = row.get(0)?;
                let name: Option<String> = row.get(1)?;
                let group = match (id, name) {
                    (None, _) => "(none)".to_string(),
                    (Some(_), Some(name)) if !name.is_empty() => name,
                    (Some(id), _) => format!("#{id}"),
                };
                usage(row, 2, group)
            })
            .db()?;
        rows.map(|row| row.db()).collect::<Result<Vec<_>, _>>()?
    };

    tx.commit().db()?;
    sort(&mut by_model);
    sort(&mut by_key);
    Ok(LogStats {
        total,
        by_model,
        by_key,
    })
}
