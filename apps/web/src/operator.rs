//! The `Operator` extractor: a request with a live session, or a redirect to login.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use proxy_axum::unix_ms;

use crate::session::{self, Session};
use crate::state::AppState;

pub struct Operator {
    pub token: String,
    pub session: Session,
}

impl Operator {
    /// Mutations must carry the session's CSRF token (SameSite=Strict is the first line).
    /// Returns the 403 to answer when `posted` is not this session's token.
    pub fn csrf_rejection(&self, posted: &str) -> Option<Response> {
        let message = "invalid form token: reload the page and try again";
        (!self.session.csrf_matches(posted)).then(|| (StatusCode::FORBIDDEN, message).into_response())
    }

    pub fn csrf(&self) -> &str {
        &self.session.csrf
    }
}

impl Operator {
    /// The operator whose live session these headers carry, if any.
    pub fn from_headers(state: &AppState, headers: &HeaderMap) -> Option<Operator> {
        let token = session::token_from_headers(headers)?;
        let session = state.sessions.get(&token, unix_ms())?;
        Some(Operator { token, session })
    }
}

impl FromRequestParts<Arc<AppState>> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Response> {
        Operator::from_headers(state, &parts.headers).ok_or_else(|| Redirect::to("/login").into_response())
    }
}
