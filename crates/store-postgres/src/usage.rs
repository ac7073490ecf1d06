//! Usage per time bucket and group, from the schema's `usage_buckets` function (the
//! Supabase store calls the same one over REST), which answers one JSON array whose
//! fields are `UsageCell`'s.

use proxy_core::admin::{UsageCell, UsageQuery, sort_usage};
use proxy_core::platform::StoreError;

use crate::convert::to_sql;
use crate::error::DbResult;

pub(crate) async fn usage(
    client: &deadpool_postgres::Client,
    query: &UsageQuery,
) -> Result<Vec<UsageCell>, StoreError> {
    let stmt = client
        .prepare_cached("SELECT usage_buckets($1, $2, $3, $4, $5, $6)::text")
        .await
        .db()?;
    let until = query.until_ms.map(to_sql);
    let row = client
        .query_one(
            &stmt,
            &[
                &to_sql(query.since_ms),
                &until,
                &to_sql(query.bucket_ms),
                &query.by_model,
                &query.by_upstream_key,
                &query.by_proxy_key,
            ],
        )
        .await
        .db()?;
    let text: String = row.try_get(0).db()?;
    let mut cells: Vec<UsageCell> = serde_json::from_str(&text)
        .map_err(|e| StoreError::Unavailable(format!("usage_buckets answered unexpected JSON: {e}")))?;
    sort_usage(&mut cells);
    Ok(cells)
}
