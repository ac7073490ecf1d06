//! Usage per time bucket and group, from the schema's `usage_buckets` function.

use proxy_core::admin::{UsageCell, UsageQuery, sort_usage};
use serde_json::json;

use crate::error::RestError;
use crate::rest::Rest;

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
