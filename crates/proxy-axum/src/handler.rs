//! The proxy route: authenticate, read the request, let the engine serve it, stream
//! the answer back, log the outcome.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use bytes::Bytes;
use proxy_core::auth::{AuthOutcome, extract_credential};
use proxy_core::engine::{Execution, Served};
use proxy_core::log::LogRecord;
use proxy_core::platform::PreparedRequest;
use proxy_core::request::{inspect_body, upstream_target};
use proxy_core::route::{BodyFormat, parse_route, take_key_param};
use proxy_core::stream_meta::MetaReader;
use proxy_core::{ErrorShape, ProxyError};

use crate::clock::unix_ms;
use crate::headers::{downstream_headers, upstream_headers};
use crate::observed_body::{ObservedBody, PendingLog};
use crate::respond::{error_response, json_response, set_request_id};
use crate::runtime::ProxyState;

/// Stored request bodies (when switched on) are cut to this many bytes.
const LOGGED_BODY_LIMIT: usize = 64 * 1024;

/// A request in flight: its log record and the clock it is measured by.
struct Ctx {
    state: Arc<ProxyState>,
    record: LogRecord,
    started: Instant,
    shape: ErrorShape,
}

impl Ctx {
    /// Answers with the proxy's own error and logs it.
    fn reject(mut self, error: ProxyError) -> Response {
        self.record.reject(&error);
        let response = error_response(&error, self.shape, &self.record.id);
        self.submit();
        response
    }

    fn submit(mut self) {
        self.record.latency_ms = self.started.elapsed().as_millis() as u64;
        self.state.logs.submit(self.record);
    }
}

pub(crate) async fn proxy(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let started = Instant::now();
    let now_ms = unix_ms();
    let (id, seed) = state.next_request_id(now_ms);
    let (parts, body) = request.into_parts();
    let (query_key, query) = take_key_param(parts.uri.query().unwrap_or(""));
    let credential = extract_credential(
        header(&parts.headers, "x-goog-api-key"),
        header(&parts.headers, "authorization"),
        query_key.as_deref(),
    );
    let bearer = credential.as_ref().is_some_and(|c| c.bearer);
    let record = LogRecord {
        id,
        started_at_ms: now_ms,
        route: "unknown".into(),
        ..LogRecord::default()
    };
    let mut ctx = Ctx {
        state,
        record,
        started,
        shape: ErrorShape::Gemini,
    };
    let mut route = match parse_route(parts.uri.path(), bearer) {
        Ok(route) => route,
        Err(error) => return ctx.reject(error),
    };
    ctx.shape = route.api.error_shape();
    ctx.record.apply_route(&route);
    match ctx.state.proxy_keys().check(credential.as_ref()) {
        AuthOutcome::Allowed { proxy_key_id } => ctx.record.proxy_key_id = Some(proxy_key_id),
        AuthOutcome::Missing => return ctx.reject(ProxyError::MissingKey),
        AuthOutcome::Unknown => return ctx.reject(ProxyError::UnknownKey),
        AuthOutcome::Revoked { proxy_key_id } => {
            ctx.record.proxy_key_id = Some(proxy_key_id);
            return ctx.reject(ProxyError::RevokedKey);
        }
    }
    let body = match read_body(body, ctx.state.config.max_body_bytes).await {
        Ok(body) => body,
        Err(error) => return ctx.reject(error),
    };
    let framing = match inspect_body(&mut route, parts.method != Method::GET, &body, &query) {
        Ok(framing) => framing,
        Err(error) => return ctx.reject(error),
    };
    ctx.record.model = route.model.clone();
    ctx.record.stream = framing.stream;
    if ctx.state.config.log_bodies && !body.is_empty() {
        let logged = &body[..body.len().min(LOGGED_BODY_LIMIT)];
        ctx.record.request_body = Some(String::from_utf8_lossy(logged).into_owned());
    }
    let prepared = PreparedRequest {
        method: parts.method.as_str().to_string(),
        path_and_query: upstream_target(&route, &query),
        headers: upstream_headers(&parts.headers),
        body,
    };
    let execution = ctx
        .state
        .engine
        .execute(&prepared, route.model_or_any(), seed)
        .await;
    respond(ctx, execution, framing.format)
}

/// Sends the engine's verdict to the client and, unless a body is still streaming,
/// logs it now.
fn respond(mut ctx: Ctx, execution: Execution<reqwest::Response>, format: BodyFormat) -> Response {
    let Execution { served, attempts } = execution;
    for change in ctx.record.apply_attempts(attempts) {
        ctx.state.state_changes.submit(change);
    }
    match served {
        Served::Upstream(response) => {
            ctx.record.answered(response.status);
            stream_response(ctx, response.inner, format)
        }
        Served::UpstreamError { status, body } => {
            ctx.record.status = status;
            let response = json_response(status, Body::from(body), &ctx.record.id);
            ctx.submit();
            response
        }
        Served::Failed(error) => ctx.reject(error),
    }
}

fn stream_response(ctx: Ctx, upstream: reqwest::Response, format: BodyFormat) -> Response {
    let status = upstream.status();
    let mut headers = downstream_headers(upstream.headers());
    set_request_id(&mut headers, &ctx.record.id);
    let readable = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json") || ct.contains("event-stream"));
    let reader = readable.then(|| MetaReader::new(format));
    let log = PendingLog {
        record: ctx.record,
        started: ctx.started,
        queue: ctx.state.logs.clone(),
    };
    let body = Body::from_stream(ObservedBody::new(upstream, reader, log));
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, ProxyError> {
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(bytes),
        Err(error) => {
            let too_large =
                std::error::Error::source(&error).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            Err(match too_large {
                true => ProxyError::BodyTooLarge { limit_bytes: limit },
                false => ProxyError::BadRequest("could not read the request body".into()),
            })
        }
    }
}
