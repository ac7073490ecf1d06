//! The `Operator` extractor: a request with a live session, or a redirect to login.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
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

impl FromRequestParts<Arc<AppState>> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Response> {
        let token = session::token_from_headers(&parts.headers);
        let found = token.and_then(|t| state.sessions.get(&t, unix_ms()).map(|s| (t, s)));
        match found {
            Some((token, session)) => Ok(Operator { token, session }),
            None => Err(Redirect::to("/login").into_response()),
        }
    }
}
