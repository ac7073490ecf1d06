//! Server functions: what the browser bundle asks the server for. On the server
//! (`ssr`) they read the store through the same page-data functions the pages use; in
//! the bundle (`hydrate`) the macro turns each into a POST to `/api/<name>`. Each
//! answers only to a logged-in operator.

use leptos::prelude::*;
use proxy_core::admin::KeyRow;

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

/// The overview's changing part for the overview's own query string (`range=hour`,
/// `range=custom&from=…&to=…`, `&split=model`), rendered as the page renders it:
/// cards, charts and tables from one read, so they agree.
#[server(prefix = "/api", endpoint = "overview_section")]
pub async fn overview_section(query: String) -> Result<String, ServerFnError> {
    let state = crate::server_fns::operator_state().await?;
    let params: crate::handlers::pages::OverviewParams = serde_urlencoded::from_str(&query)
        .map_err(|e| ServerFnError::new(format!("bad overview query: {e}")))?;
    let (range, split, _) = params.choice();
    let overview =
        crate::handlers::pages::overview_data(state.admin.as_ref(), range, split, proxy_axum::unix_ms())
            .await
            .map_err(crate::server_fns::store_failed)?;
    let owner = leptos::prelude::Owner::new();
    Ok(owner.with(|| crate::views::overview::section(&overview)))
}
