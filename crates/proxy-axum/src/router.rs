//! The router that apps mount: `/healthz` plus the proxy on every other path.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use crate::handler::proxy;
use crate::runtime::ProxyState;

/// Serves the Gemini and OpenAI-compatible routes under `/v1beta/` and `/v1/`, and
/// `GET /healthz`. Unknown paths get a Gemini-shaped 404.
pub fn proxy_router(state: Arc<ProxyState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .fallback(proxy)
        .with_state(state)
}

async fn healthz(State(state): State<Arc<ProxyState>>) -> Json<Value> {
    let (keys, available, proxy_keys) = state.counts();
    Json(json!({
        "status": "ok",
        "upstream_keys": keys,
        "upstream_keys_available": available,
        "proxy_keys": proxy_keys,
        "dropped_log_records": state.dropped_logs(),
    }))
}
