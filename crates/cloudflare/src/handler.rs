//! One client request, the same steps as the native route (`proxy-axum`'s handler):
//! authenticate, read the request, let the engine serve it, stream the answer back,
//! log the outcome. Only the IO differs; every decision is `proxy-core`'s.

use std::rc::Rc;

use bytes::Bytes;
use futures_channel::oneshot;
use futures_util::StreamExt;
use proxy_core::auth::{AuthOutcome, extract_credential};
use proxy_core::engine::{Execution, Served};
use proxy_core::log::LogRecord;
use proxy_core::platform::PreparedRequest;
use proxy_core::request::{RETURNED_HEADERS, forwards_header, inspect_body, upstream_target};
use proxy_core::route::{BodyFormat, parse_route, take_key_param};
use proxy_core::stream_meta::MetaReader;
use proxy_core::{ErrorShape, ProxyError};
use worker::{Context, Headers, Method, Request, Response};

use crate::clock::{WorkerClock, unix_ms};
use crate::diag;
use crate::observed_stream::{ObservedStream, PendingLog};
use crate::respond::{error_response, json_response};
use crate::state::WorkerState;

/// Stored request bodies (when switched on) are cut to this many bytes.
const LOGGED_BODY_LIMIT: usize = 64 * 1024;

/// A request in flight: its log record, when it started, and where logs go.
struct InFlight<'a> {
    state: Rc<WorkerState>,
    ctx: &'a Context,
    record: LogRecord,
    started_ms: u64,
    shape: ErrorShape,
}

impl InFlight<'_> {
    /// Answers with the proxy's own error and logs it.
    fn reject(mut self, error: ProxyError) -> worker::Result<Response> {
        self.record.reject(&error);
        let response = error_response(&error, self.shape, &self.record.id);
        self.submit();
        response
    }

    /// Hands the finished record to the log queue, written after the response went out.
    fn submit(mut self) {
        self.record.latency_ms = unix_ms().saturating_sub(self.started_ms);
        self.ctx.wait_until(self.state.logs.clone().submit(self.record));
    }
}

pub async fn handle(state: Rc<WorkerState>, mut request: Request, ctx: &Context) -> worker::Result<Response> {
    let now_ms = unix_ms();
    let (id, seed) = state.next_request_id(now_ms);
    let url = request.url()?;
    let path = url.path().to_string();
    let method = request.method();
    if path == "/healthz" && method == Method::Get {
        // A fresh isolate loads its keys first, so the counts mean something.
        let _ = ensure_keys(&state, ctx).await;
        let body = state.health().to_string().into_bytes();
        return json_response(200, body, &id);
    }
    let (query_key, query) = take_key_param(url.query().unwrap_or(""));
    let credential = extract_credential(
        header(request.headers(), "x-goog-api-key").as_deref(),
        header(request.headers(), "authorization").as_deref(),
        query_key.as_deref(),
    );
    let bearer = credential.as_ref().is_some_and(|c| c.bearer);
    let record = LogRecord {
        id,
        started_at_ms: now_ms,
        route: "unknown".into(),
        ..LogRecord::default()
    };
    let mut flight = InFlight {
        state: state.clone(),
        ctx,
        record,
        started_ms: now_ms,
        shape: ErrorShape::Gemini,
    };
    let mut route = match parse_route(&path, bearer) {
        Ok(route) => route,
        Err(error) => return flight.reject(error),
    };
    flight.shape = route.api.error_shape();
    flight.record.apply_route(&route);
    if let Err(error) = ensure_keys(&state, ctx).await {
        diag::warn(&format!("cannot read keys from the store: {error}"));
        return flight.reject(ProxyError::NoKeys("the key store cannot be read".into()));
    }
    match state.keys.proxy_keys().check(credential.as_ref()) {
        AuthOutcome::Allowed { proxy_key_id } => flight.record.proxy_key_id = Some(proxy_key_id),
        AuthOutcome::Missing => return flight.reject(ProxyError::MissingKey),
        AuthOutcome::Unknown => return flight.reject(ProxyError::UnknownKey),
        AuthOutcome::Revoked { proxy_key_id } => {
            flight.record.proxy_key_id = Some(proxy_key_id);
            return flight.reject(ProxyError::RevokedKey);
        }
    }
    let body = match read_body(&mut request, state.config.max_body_bytes).await {
        Ok(body) => body,
        Err(error) => return flight.reject(error),
    };
    let framing = match inspect_body(&mut route, method != Method::Get, &body, &query) {
        Ok(framing) => framing,
        Err(error) => return flight.reject(error),
    };
    flight.record.model = route.model.clone();
    flight.record.stream = framing.stream;
    if state.config.log_bodies && !body.is_empty() {
        let logged = &body[..body.len().min(LOGGED_BODY_LIMIT)];
        flight.record.request_body = Some(String::from_utf8_lossy(logged).into_owned());
    }
    let prepared = PreparedRequest {
        method: method.as_ref().to_string(),
        path_and_query: upstream_target(&route, &query),
        headers: upstream_headers(request.headers()),
        body,
    };
    let execution = state.engine.execute(&prepared, route.model_or_any(), seed).await;
    respond(flight, execution, framing.format)
}

/// Loads the isolate's keys on its first request; later, starts a background reload
/// when the copy is older than the refresh interval.
async fn ensure_keys(state: &Rc<WorkerState>, ctx: &Context) -> Result<(), proxy_core::platform::StoreError> {
    let now = unix_ms();
    if !state.keys.is_loaded() {
        return state.keys.load(now).await;
    }
    if state.keys.begin_refresh(now) {
        ctx.wait_until(state.keys.clone().refresh(now));
    }
    Ok(())
}

/// Sends the engine's verdict to the client and, unless a body is still streaming,
/// logs it now.
fn respond(
    mut flight: InFlight<'_>,
    execution: Execution<Response>,
    format: BodyFormat,
) -> worker::Result<Response> {
    let Execution { served, attempts } = execution;
    let changes = flight.record.apply_attempts(attempts);
    if !changes.is_empty() {
        let queue = flight.state.state_changes.clone();
        for change in changes {
            queue.push(change);
        }
        flight.ctx.wait_until(queue.flush());
    }
    match served {
        Served::Upstream(response) => {
            flight.record.answered(response.status);
            stream_response(flight, response.inner, format)
        }
        Served::UpstreamError { status, body } => {
            flight.record.status = status;
            let response = json_response(status, body.to_vec(), &flight.record.id);
            flight.submit();
            response
        }
        Served::Failed(error) => flight.reject(error),
    }
}

/// Streams upstream's 2xx body to the client as it arrives. The record is completed
/// by the body's end (or the client leaving) and written by a `wait_until` future
/// that waits for it, so the response itself is never held back.
fn stream_response(
    flight: InFlight<'_>,
    mut upstream: Response,
    format: BodyFormat,
) -> worker::Result<Response> {
    let status = upstream.status_code();
    let headers = downstream_headers(upstream.headers(), &flight.record.id)?;
    let readable =
        header(&headers, "content-type").is_some_and(|ct| ct.contains("json") || ct.contains("event-stream"));
    let Ok(body) = upstream.stream() else {
        // No body at all (204 and the like): nothing to wait for.
        flight.submit();
        return Ok(Response::empty()?.with_status(status).with_headers(headers));
    };
    let (done, finished) = oneshot::channel::<LogRecord>();
    let logs = flight.state.logs.clone();
    flight.ctx.wait_until(async move {
        if let Ok(record) = finished.await {
            logs.submit(record).await;
        }
    });
    let log = PendingLog {
        record: flight.record,
        started_ms: flight.started_ms,
        clock: WorkerClock,
        done: Box::new(move |record| {
            let _ = done.send(record);
        }),
    };
    let reader = readable.then(|| MetaReader::new(format));
    let observed = ObservedStream::new(body, reader, log);
    Ok(Response::from_stream(observed)?
        .with_status(status)
        .with_headers(headers))
}

/// Upstream's response headers the client gets. `content-length` stays behind: the
/// runtime may have decoded a compressed body, and the body is streamed anyway.
fn downstream_headers(upstream: &Headers, request_id: &str) -> worker::Result<Headers> {
    let headers = Headers::new();
    for name in RETURNED_HEADERS.iter().filter(|n| **n != "content-length") {
        if let Some(value) = header(upstream, name) {
            headers.set(name, &value)?;
        }
    }
    headers.set("x-request-id", request_id)?;
    Ok(headers)
}

/// Client headers that travel upstream (the core's allow-list; never credentials).
fn upstream_headers(client: &Headers) -> Vec<(String, String)> {
    client
        .entries()
        .filter(|(name, _)| forwards_header(&name.to_ascii_lowercase()))
        .collect()
}

fn header(headers: &Headers, name: &str) -> Option<String> {
    headers.get(name).ok().flatten()
}

async fn read_body(request: &mut Request, limit: usize) -> Result<Bytes, ProxyError> {
    let too_large = ProxyError::BodyTooLarge { limit_bytes: limit };
    let declared = header(request.headers(), "content-length").and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large);
    }
    let unreadable = || ProxyError::BadRequest("could not read the request body".into());
    if declared.is_some() {
        // A declared length within the limit: one read, fewer trips between JS and wasm.
        let body = request.bytes().await.map_err(|_| unreadable())?;
        return match body.len() > limit {
            true => Err(too_large),
            false => Ok(Bytes::from(body)),
        };
    }
    let Ok(mut stream) = request.stream() else {
        return Ok(Bytes::new());
    };
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| unreadable())?;
        if body.len() + chunk.len() > limit {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}
