//! One client request: the IO around the core's request pipeline
//! (`proxy_core::request`), as in the native route (`proxy-axum`'s handler). Read the
//! head, load the isolate's keys, admit, read the body, let the engine serve, write the
//! answer, and log through `ctx.wait_until`; every rule in between is the core's.

use std::rc::Rc;

use bytes::Bytes;
use futures_channel::oneshot;
use futures_util::StreamExt;
use proxy_core::log::LogRecord;
use proxy_core::pool::StateChange;
use proxy_core::request::{
    AbandonSink, Admission, Answer, BodyObserver, InFlight, RETURNED_HEADERS, Refusal, Reply, RequestHead,
};
use proxy_core::{ErrorShape, ProxyError};
use worker::{Context, Headers, Method, Request, Response};

use crate::clock::{WorkerClock, unix_ms};
use crate::diag;
use crate::observed_stream::ObservedStream;
use crate::respond::reply_response;
use crate::state::WorkerState;
use crate::upstream::UpstreamAnswer;

pub async fn handle(state: Rc<WorkerState>, mut request: Request, ctx: &Context) -> worker::Result<Response> {
    let now_ms = unix_ms();
    let (id, seed) = state.ids.next(now_ms);
    let url = request.url()?;
    let method = request.method();
    if url.path() == "/healthz" && method == Method::Get {
        // A fresh isolate loads its keys first, so the counts mean something.
        let _ = ensure_keys(&state, ctx).await;
        let health = state.health();
        return reply_response(Reply::json(health.status_code(), health.to_json(), &id));
    }
    let client_ip = header(request.headers(), "cf-connecting-ip");
    let client = client_ip.as_deref();
    let api_key = header(request.headers(), "x-goog-api-key");
    let authorization = header(request.headers(), "authorization");
    let user_agent = header(request.headers(), "user-agent");
    let head = RequestHead {
        method: method.as_ref(),
        path: url.path(),
        query: url.query().unwrap_or(""),
        api_key: api_key.as_deref(),
        authorization: authorization.as_deref(),
        content_length: header(request.headers(), "content-length").and_then(|v| v.parse().ok()),
        client_ip: client,
        user_agent: user_agent.as_deref(),
        // No traces on the Worker (yet): nothing to continue, nothing to time.
        ..RequestHead::default()
    };
    let admission = match Admission::begin(id, now_ms, &head, state.config.admission) {
        Ok(admission) => admission,
        Err(refusal) => return refuse(&state, ctx, client, refusal),
    };
    // The one IO step before authorizing: a fresh isolate has no keys yet.
    if let Err(error) = ensure_keys(&state, ctx).await {
        diag::warn(&format!("cannot read keys from the store: {error}"));
        let error = ProxyError::NoKeys("the key store cannot be read".into());
        return refuse(&state, ctx, client, admission.refuse(error));
    }
    let authorized = match admission.authorize(&state.keys.proxy_keys()) {
        Ok(authorized) => authorized,
        Err(refusal) => return refuse(&state, ctx, client, refusal),
    };
    let body = match read_body(&mut request, authorized.body_limit()).await {
        Ok(body) => body,
        Err(error) => return refuse(&state, ctx, client, authorized.refuse(error)),
    };
    let client_headers: Vec<(String, String)> = request.headers().entries().collect();
    let client_headers = client_headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
    let prepared = match authorized.with_body(body, client_headers, state.engine.governor()) {
        Ok(prepared) => prepared,
        Err(refusal) => return refuse(&state, ctx, client, refusal),
    };
    let Some(settlement) = InFlight::new(prepared, Sink { state: &state, ctx })
        .serve(&state.engine, seed)
        .await
    else {
        return reply_response(Reply::error(&ProxyError::Internal, ErrorShape::Gemini, "-"));
    };
    keep_state(&state, ctx, settlement.state_changes);
    for note in &settlement.notes {
        crate::diag::line(note);
    }
    let response = match settlement.answer {
        Answer::Stream {
            status,
            response,
            observer,
        } => stream_response(&state, ctx, status, response, *observer),
        Answer::Reply { reply, record } => {
            let response = reply_response(reply);
            log(&state, ctx, *record);
            response
        }
    }?;
    for (name, value) in &settlement.headers {
        // A value that is no valid header (a control character) is left out.
        let _ = response.headers().set(name, value);
    }
    Ok(response)
}

/// Where a request the runtime dropped before upstream answered (its client left)
/// goes: the state and log queues, written after the response.
struct Sink<'a> {
    state: &'a Rc<WorkerState>,
    ctx: &'a Context,
}

impl AbandonSink for Sink<'_> {
    fn abandoned(&self, changes: Vec<StateChange>, record: LogRecord) {
        keep_state(self.state, self.ctx, changes);
        log(self.state, self.ctx, record);
    }
}

/// Queues learned key state for the store, written after the response went out.
fn keep_state(state: &Rc<WorkerState>, ctx: &Context, changes: Vec<StateChange>) {
    if changes.is_empty() {
        return;
    }
    for change in changes {
        state.state_changes.push(change);
    }
    ctx.wait_until(state.state_changes.clone().flush());
}

/// Answers a refusal; logs it unless it is one of a stranger's many (the core's
/// sampler counts those instead).
fn refuse(
    state: &Rc<WorkerState>,
    ctx: &Context,
    client: Option<&str>,
    refusal: Refusal,
) -> worker::Result<Response> {
    let keep = state.refusals.keep(&refusal, client, unix_ms());
    let Refusal { reply, record } = refusal;
    if keep {
        log(state, ctx, *record);
    }
    reply_response(reply)
}

/// Hands a finished record to the log queue, written after the response went out.
fn log(state: &Rc<WorkerState>, ctx: &Context, mut record: LogRecord) {
    record.close(unix_ms());
    ctx.wait_until(state.logs.clone().submit(record));
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

/// Streams upstream's 2xx body to the client as it arrives. The record is completed
/// by the body's end (or the client leaving) and written by a `wait_until` future
/// that waits for it, so the response itself is never held back.
fn stream_response(
    state: &Rc<WorkerState>,
    ctx: &Context,
    status: u16,
    mut upstream: UpstreamAnswer,
    mut observer: BodyObserver,
) -> worker::Result<Response> {
    let headers = downstream_headers(upstream.response.headers(), observer.request_id())?;
    let Some(body) = upstream.body() else {
        // No body at all (204 and the like): nothing to wait for.
        if let Some(record) = observer.end(proxy_core::request::BodyEnd::Complete, unix_ms()) {
            ctx.wait_until(state.logs.clone().submit(record));
        }
        return Ok(Response::empty()?.with_status(status).with_headers(headers));
    };
    let (done, finished) = oneshot::channel::<LogRecord>();
    let logs = state.logs.clone();
    ctx.wait_until(async move {
        if let Ok(record) = finished.await {
            logs.submit(record).await;
        }
    });
    let done = Box::new(move |record| {
        let _ = done.send(record);
    });
    let observed = ObservedStream::new(body, observer, WorkerClock, done);
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

fn header(headers: &Headers, name: &str) -> Option<String> {
    headers.get(name).ok().flatten()
}

/// Reads the body up to `limit` bytes; a declared length was checked by the core.
async fn read_body(request: &mut Request, limit: usize) -> Result<Bytes, ProxyError> {
    let too_large = ProxyError::BodyTooLarge { limit_bytes: limit };
    let unreadable = || ProxyError::BadRequest("could not read the request body".into());
    if header(request.headers(), "content-length").is_some() {
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
