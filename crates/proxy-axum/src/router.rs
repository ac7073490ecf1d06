//! The router that apps mount: `/healthz`, `/metrics` (unless it has a listener of its
//! own) and the proxy on every other path.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use axum::response::Response;
use axum::routing::get;
use proxy_core::error::{ErrorShape, ProxyError};
use proxy_core::request::Reply;
use sha2::{Digest, Sha256};

use crate::clock::unix_ms;
use crate::handler::proxy;
use crate::respond::reply_response;
use crate::runtime::ProxyState;

/// Serves the Gemini and OpenAI-compatible routes under `/v1beta/` and `/v1/`, and
/// `GET /healthz`. Unknown paths get a Gemini-shaped 404.
pub fn proxy_router(state: Arc<ProxyState>) -> Router {
    let router = Router::new().route("/healthz", get(healthz));
    let router = match state.config.metrics_listen {
        None => router.route("/metrics", get(metrics)),
        Some(_) => router,
    };
    router.fallback(proxy).with_state(state)
}

/// `GET /metrics` alone, for `--metrics-listen`.
pub fn metrics_router(state: Arc<ProxyState>) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(state)
}

/// The Prometheus text; with `--metrics-token`, only for `Authorization: Bearer <it>`.
async fn metrics(State(state): State<Arc<ProxyState>>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.config.metrics_token {
        let given = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
        // Compared as digests, so the time taken says nothing about the token.
        let digest = |t: &str| Sha256::digest(t.trim().as_bytes());
        if given.is_none_or(|given| digest(given) != digest(token)) {
            let (id, _) = state.ids.next(unix_ms());
            return reply_response(Reply::error(&ProxyError::MetricsToken, ErrorShape::Gemini, &id));
        }
    }
    let mut response = Response::new(Body::from(state.metrics_text()));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// The core's health answer: 200 while the proxy can serve, 503 when no key can.
async fn healthz(State(state): State<Arc<ProxyState>>) -> Response {
    let health = state.health();
    let (id, _) = state.ids.next(unix_ms());
    reply_response(Reply::json(health.status_code(), health.to_json(), &id))
}
