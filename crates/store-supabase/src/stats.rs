//! Usage totals over the request logs, from the `usage_summary` function: one call
//! returns the total, per-model and per-key rows of one consistent snapshot.

use proxy_core::admin::{LogStats, UsageCell, UsageQuery, UsageRow, sort_usage};
use serde::Deserialize;
use serde_json::json;

use crate::convert::{from_db, to_timestamp};
use crate::error::RestError;
use crate::rest::Rest;

#[derive(Deserialize)]
struct SummaryRow {
    group_kind: String,
    group_name: String,
    requests: i64,
    errors: i64,
    prompt_tokens: i64,
    candidates_tokens: i64,
    thoughts_tokens: i64,
    cached_tokens: i64,
    total_tokens: i64,
    avg_latency_ms: i64,
}

impl SummaryRow {
    fn usage(self) -> UsageRow {
        UsageRow {
            group: self.group_name,
            requests: from_db(self.requests),
            errors: from_db(self.errors),
            prompt_tokens: from_db(self.prompt_tokens),
            candidates_tokens: from_db(self.candidates_tokens),
            thoughts_tokens: from_db(self.thoughts_tokens),
            cached_tokens: from_db(self.cached_tokens),
            total_tokens: from_db(self.total_tokens),
            avg_latency_ms: from_db(self.avg_latency_ms),
        }
    }
}

/// Groups are listed busiest first, then by name, so the output is stable.
fn sort(rows: &mut [UsageRow]) {
    rows.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.group.cmp(&b.group)));
}

pub(crate) async fn log_stats(rest: &Rest, since_ms: u64) -> Result<LogStats, RestError> {
    let rows: Vec<SummaryRow> = rest
        .fetch(
            rest.rpc("usage_summary", &json!({ "since": to_timestamp(since_ms) })),
            &[],
        )
        .await?;
    let mut stats = LogStats::default();
    for row in rows {
        match row.group_kind.as_str() {
            "model" => stats.by_model.push(row.usage()),
            "key" => stats.by_key.push(row.usage()),
            "total" => stats.total = row.usage(),
            other => {
                return Err(RestError::Unexpected(format!(
                    "usage_summary returned group kind {other:?}"
                )));
            }
        }
    }
    stats.total.group = "total".into();
    sort(&mut stats.by_model);
    sort(&mut stats.by_key);
    Ok(stats)
}

/// Per-bucket usage from the schema's `usage_buckets` function, which answers one JSON
/// array (never cut short by PostgREST's max-rows) whose fields are `UsageCell`'s.
pub(crate) async fn usage(rest: &Rest, query: &UsageQuery) -> Result<Vec<UsageCell>, RestError> {
    let args = json!({
        "since_ms": query.since_ms,
        "until_ms": query.until_ms,
        "bucket_ms": query.bucket_ms,
        "by_model": query.by_model,
        "by_upstream_key": query.by_upstream_key,
        "by_proxy_key": query.by_proxy_key,
    });
    let mut cells: Vec<UsageCell> = rest.fetch(rest.rpc("usage_buckets", &args), &[]).await?;
    sort_usage(&mut cells);
    Ok(cells)
}
