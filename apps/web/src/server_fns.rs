//! The server side of `api`: the axum route that runs server functions with the app
//! state in their context, and the session check every one of them starts with.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use leptos::prelude::*;
use leptos_axum::ResponseOptions;
use proxy_core::platform::StoreError;

use crate::session;
use crate::state::AppState;

/// `POST /api/{name}`: runs the named server function with `AppState` provided.
pub async fn handle(State(state): State<Arc<AppState>>, request: Request) -> Response {
    leptos_axum::handle_server_fns_with_context(move || provide_context(state.clone()), request)
        .await
        .into_response()
}

/// The app state, for a request from a live operator session; 401 otherwise.
pub async fn operator_state() -> Result<Arc<AppState>, ServerFnError> {
    let state = use_context::<Arc<AppState>>()
        .ok_or_else(|| ServerFnError::new("server functions run only inside gemini-proxy-web"))?;
    let headers: HeaderMap = leptos_axum::extract().await?;
    let live = session::token_from_headers(&headers)
        .and_then(|token| state.sessions.get(&token, proxy_axum::unix_ms()))
        .is_some();
    if live {
        return Ok(state);
    }
    if let Some(response) = use_context::<ResponseOptions>() {
        response.set_status(StatusCode::UNAUTHORIZED);
    }
    Err(ServerFnError::new("log in first: no dashboard session"))
}

/// A store failure as the function's error (the store's message holds no secret).
pub fn store_failed(error: StoreError) -> ServerFnError {
    if let Some(response) = use_context::<ResponseOptions>() {
        response.set_status(StatusCode::SERVICE_UNAVAILABLE);
    }
    ServerFnError::new(format!("the store failed: {error}"))
}
