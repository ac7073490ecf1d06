//! Usage totals over the request logs: overall, per model and per answering key, from
//! the schema's `usage_summary` function (one statement, GROUPING SETS, so the three
//! groupings add up to the same total). Group names are made there, as store-sqlite
//! makes them: "(none)" for no model or no key, the key's name, or `#id`.

use proxy_core::admin::{LogStats, UsageRow};
use proxy_core::platform::StoreError;
use tokio_postgres::Row;

use crate::convert::{from_sql, ts_from_ms, ts_param};
use crate::error::DbResult;

fn usage(row: &Row) -> Result<UsageRow, StoreError> {
    let get = |column: &str| -> Result<u64, StoreError> { Ok(from_sql(row.try_get(column).db()?)) };
    Ok(UsageRow {
        group: row.try_get("group_name").db()?,
        requests: get("requests")?,
        errors: get("errors")?,
        prompt_tokens: get("prompt_tokens")?,
        candidates_tokens: get("candidates_tokens")?,
        thoughts_tokens: get("thoughts_tokens")?,
        cached_tokens: get("cached_tokens")?,
        total_tokens: get("total_tokens")?,
        avg_latency_ms: get("avg_latency_ms")?,
    })
}

/// Groups are listed busiest first, then by name (byte order, whatever the database's
/// collation), so the output is stable and the same as store-sqlite's.
fn sort(rows: &mut [UsageRow]) {
    rows.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.group.cmp(&b.group)));
}

pub(crate) async fn log_stats(
    client: &deadpool_postgres::Client,
    since_ms: u64,
) -> Result<LogStats, StoreError> {
    let stmt = client
        .prepare_cached(concat!(
            "SELECT group_kind, group_name, requests, errors, prompt_tokens, candidates_tokens, \
             thoughts_tokens, cached_tokens, total_tokens, avg_latency_ms \
             FROM usage_summary(",
            ts_from_ms!("$1"),
            ")"
        ))
        .await
        .db()?;
    let rows = client.query(&stmt, &[&ts_param(since_ms)]).await.db()?;
    let mut stats = LogStats {
        total: UsageRow {
            group: "total".into(),
            ..UsageRow::default()
        },
        ..LogStats::default()
    };
    for row in &rows {
        let kind: String = row.try_get("group_kind").db()?;
        let usage = usage(row)?;
        match kind.as_str() {
            "total" => stats.total = usage,
            "model" => stats.by_model.push(usage),
            "key" => stats.by_key.push(usage),
            other => {
                return Err(StoreError::Unavailable(format!(
                    "usage_summary returned an unknown group kind {other:?}; is the schema newer than this build?"
                )));
            }
        }
    }
    sort(&mut stats.by_model);
    sort(&mut stats.by_key);
    Ok(stats)
}
