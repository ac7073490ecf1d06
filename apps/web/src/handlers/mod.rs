//! axum handlers: page renders (GET) and form posts (POST, redirect after).

pub mod actions;
pub mod login;
pub mod pages;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use proxy_core::platform::StoreError;

/// A rendered page, never cached (it shows live state and secrets once), never framed
/// (clickjacking a one-button form would be a CSRF by other means).
pub fn html(body: String) -> Response {
    let mut response = Html(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

/// Renders a page inside its own reactive owner: components with signals (the shared
/// ones in `live`) need one, and it is dropped with everything it owned once the HTML
/// is out.
pub fn render(page: impl FnOnce() -> String) -> Response {
    let owner = leptos::prelude::Owner::new();
    html(owner.with(page))
}

/// What a dashboard handler fails with: handlers return `Result<Response, AppError>`
/// and use `?`, and this is the one place such a failure becomes a response and a log
/// line.
#[derive(Debug)]
pub enum AppError {
    /// A store query failed: a 503 page with the store's message, which holds no secret.
    Store(StoreError),
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            Self::Store(error) => {
                tracing::warn!(%error, "dashboard store query failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the store failed: {error}"),
                )
                    .into_response()
            }
        }
    }
}
