//! Login and logout. Without a configured password (loopback only), visiting the
//! login page opens a session at once.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Form;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use proxy_axum::unix_ms;
use serde::Deserialize;

use super::{html, render};
use crate::operator::Operator;
use crate::session;
use crate::state::AppState;
use crate::views;

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    password: String,
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

pub async fn show(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !state.password.required() {
        return start_session(&state, &headers);
    }
    render(|| views::login::page(None))
}

pub async fn submit(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let now = unix_ms();
    if state.limiter.check(ip, now).is_err() {
        let page = views::login::page(Some("Too many failed attempts. Wait a few minutes."));
        return (StatusCode::TOO_MANY_REQUESTS, html(page)).into_response();
    }
    if !state.password.verify(&form.password) {
        state.limiter.failed(ip, now);
        tracing::warn!(%ip, "dashboard login failed");
        let page = views::login::page(Some("Wrong password."));
        return (StatusCode::UNAUTHORIZED, html(page)).into_response();
    }
    state.limiter.succeeded(ip);
    start_session(&state, &headers)
}

pub async fn logout(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(response) = operator.csrf_rejection(&form.csrf) {
        return response;
    }
    state.sessions.remove(&operator.token);
    let mut response = Redirect::to("/login").into_response();
    if let Ok(value) = HeaderValue::from_str(&session::clear_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn start_session(state: &AppState, headers: &HeaderMap) -> Response {
    let token = match state.sessions.create(unix_ms()) {
        Ok(token) => token,
        Err(error) => {
            tracing::error!(%error, "no randomness for a session token");
            return (StatusCode::INTERNAL_SERVER_ERROR, "cannot create a session").into_response();
        }
    };
    let forwarded_tls = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = session::cookie(&token, state.secure_cookies || forwarded_tls);
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The client's address for rate limiting, as the proxy's audit trail names it: the
/// peer, or what a trusted reverse proxy reports (`--trusted-proxy`). Unknown (tests
/// without a socket) shares one bucket.
pub struct ClientIp(IpAddr);

impl FromRequestParts<Arc<AppState>> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| {
                state.proxy.client_ip(c.0.ip(), &parts.headers)
            });
        Ok(ClientIp(ip))
    }
}
