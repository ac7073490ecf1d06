//! The router that apps mount: `/healthz` plus the proxy on every other path.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use proxy_core::request::Reply;

use crate::clock::unix_ms;
use crate::handler::proxy;
use crate::respond::reply_response;
use crate::runtime::ProxyState;

/// Serves the Gemini and OpenAI-compatible routes under `/v1beta/` and `/v1/`, and
/// `GET /healthz`. Unknown paths get a Gemini-shaped 404.
pub fn proxy_router(state: Arc<ProxyState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .fallback(proxy)
        .with_state(state)
}

/// The core's health answer: 200 while the proxy can serve, 503 when no key can.
async fn healthz(State(state): State<Arc<ProxyState>>) -> Response {
    let health = state.health();
    let (id, _) = state.ids.next(unix_ms());
    reply_response(Reply::json(health.status_code(), health.to_json(), &id))
}
