//! The whole web app: dashboard pages plus the proxy route from `proxy-axum`, which
//! keeps its own proxy-key auth and answers every path the dashboard does not own.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use proxy_core::route::is_api_path;
use tower_service::Service;

use crate::handlers::{actions, login, pages};
use crate::state::AppState;

pub fn dashboard_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(login::show).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/keys", get(pages::keys).post(actions::add_keys))
        .route("/keys/recheck-all", post(actions::recheck_all))
        .route("/keys/{id}/limits", post(actions::set_key_limits))
        .route("/keys/{id}/{action}", post(actions::key_action))
        .route(
            "/proxy-keys",
            get(pages::proxy_keys).post(actions::create_proxy_key),
        )
        .route("/proxy-keys/{id}", post(actions::edit_proxy_key))
        .route("/proxy-keys/{id}/revoke", post(actions::revoke_proxy_key))
        .route("/proxy-keys/{id}/delete", post(actions::delete_proxy_key))
        .route(
            "/proxy-keys/{id}/passthrough/{setting}",
            post(actions::set_proxy_key_passthrough),
        )
        .route("/logs", get(pages::logs))
        .route("/logs/{id}", get(pages::log_detail))
        .route("/usage", get(pages::usage))
        .route("/usage.csv", get(pages::usage_csv))
        .route("/pkg/{file}", get(crate::bundle::serve))
        .route("/api/{name}", post(crate::server_fns::handle))
        .route_layer(axum::middleware::from_fn(crate::same_origin::require_same_origin))
        .with_state(state)
}

/// Dashboard routes first; the API's paths (`/v1beta/…`, `/v1/…`) and the proxy's own
/// (`/healthz`, `/metrics`) are the proxy's; any other path is the dashboard's 404, so
/// a browser's `/favicon.ico` or a mistyped page is never logged as a failed request.
pub fn app(dashboard: Arc<AppState>) -> Router {
    let proxy = proxy_axum::proxy_router(dashboard.proxy.clone());
    let state = dashboard.clone();
    let fallback = move |request: Request| {
        let mut proxy = proxy.clone();
        let state = state.clone();
        async move {
            let path = request.uri().path();
            match is_api_path(path) || PROXY_PATHS.contains(&path) {
                // A Router is always ready: no poll_ready needed.
                true => proxy.call(request).await.into_response(),
                false => pages::not_found(&state, request.headers(), path),
            }
        }
    };
    dashboard_router(dashboard)
        .route("/favicon.ico", get(pages::favicon))
        .fallback(fallback)
}

/// The proxy's paths besides the API's.
const PROXY_PATHS: [&str; 2] = ["/healthz", "/metrics"];
