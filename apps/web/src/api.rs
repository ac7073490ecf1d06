//! Server functions: what the browser bundle asks the server for. On the server
//! (`ssr`) they read the store through the same page-data functions the pages use; in
//! the bundle (`hydrate`) the macro turns each into a POST to `/api/<name>`. Each
//! answers only to a logged-in operator.

use leptos::prelude::*;
use proxy_core::admin::{KeyRow, UsageCell};

/// Every upstream key's row as the store has it now, for live status cells.
#[server(prefix = "/api", endpoint = "key_rows")]
pub async fn key_rows() -> Result<Vec<KeyRow>, ServerFnError> {
    let state = crate::server_fns::operator_state().await?;
    state
        .admin
        .list_keys()
        .await
        .map_err(crate::server_fns::store_failed)
}

/// The overview's headline totals for "hour", "day" or "week".
#[server(prefix = "/api", endpoint = "overview_totals")]
pub async fn overview_totals(range: String) -> Result<UsageCell, ServerFnError> {
    let state = crate::server_fns::operator_state().await?;
    let range = crate::data::Range::parse(Some(&range));
    let query = crate::data::window_totals(range, proxy_axum::unix_ms());
    let cells = state
        .admin
        .usage(&query)
        .await
        .map_err(crate::server_fns::store_failed)?;
    Ok(cells.into_iter().next().unwrap_or_default())
}
