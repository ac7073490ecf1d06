//! The proxy route: the IO around the core's request pipeline (`proxy_core::request`).
//! Read the head, admit, read the body, let the engine serve, write the answer; every
//! rule in between is the core's, shared with the Worker.

use std::sync::Arc;

use axum::body::Body;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use proxy_core::log::LogRecord;
use proxy_core::pool::StateChange;
use proxy_core::request::{
    AbandonSink, Abandoned, Admission, Answer, BodyObserver, InFlight, Refusal, Reply, RequestHead,
};
use proxy_core::{ErrorShape, ProxyError};

use crate::body::read_body;
use crate::clock::{monotonic_us, unix_ms};
use crate::headers::downstream_headers;
use crate::observed_body::ObservedBody;
use crate::respond::{add_headers, reply_response, set_request_id};
use crate::runtime::ProxyState;

pub(crate) async fn proxy(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let now_ms = unix_ms();
    let arrived_us = monotonic_us();
    let (id, seed) = state.ids.next(now_ms);
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    // Known when the server was started with connect info (both binaries are).
    let client_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| state.client_ip(c.0.ip(), headers).to_string());
    let client = client_ip.as_deref();
    let head = RequestHead {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        api_key: header(headers, "x-goog-api-key"),
        authorization: header(headers, "authorization"),
        content_length: header(headers, "content-length").and_then(|v| v.parse().ok()),
        client_ip: client,
        user_agent: header(headers, "user-agent"),
        traceparent: header(headers, "traceparent"),
        arrived_us,
    };
    let admitted = Admission::begin(id, now_ms, &head, state.config.admission)
        .and_then(|a| a.authorize(&state.proxy_keys()));
    let authorized = match admitted {
        Ok(authorized) => authorized,
        Err(refusal) => return refuse(&state, client, refusal),
    };
    let limit = authorized.body_limit();
    let reading_us = monotonic_us();
    let read = read_body(
        body,
        limit,
        head.content_length,
        state.config.body_pace,
        &state.body_budget,
    )
    .await;
    let upload_us = monotonic_us().saturating_sub(reading_us);
    // The lease keeps the body's share of the memory budget until the answer is built.
    let (body, _lease) = match read {
        Ok(read) => read,
        Err(error) => return refuse(&state, client, authorized.refuse(error)),
    };
    let client_headers = headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)));
    let prepared = match authorized.with_body(body, client_headers, state.engine.governor()) {
        Ok(prepared) => prepared,
        Err(refusal) => return refuse(&state, client, refusal),
    };
    let Some(mut settlement) = InFlight::new(prepared, state.as_ref())
        .serve(&state.engine, seed)
        .await
    else {
        return reply_response(Reply::error(&ProxyError::Internal, ErrorShape::Gemini, "-"));
    };
    settlement.set_overhead(
        monotonic_us()
            .saturating_sub(arrived_us)
            .saturating_sub(upload_us),
    );
    state.learned(std::mem::take(&mut settlement.state_changes));
    for note in &settlement.notes {
        tracing::info!(request_id = request_id(&settlement.answer), "{note}");
    }
    let mut response = match settlement.answer {
        Answer::Stream {
            status,
            response,
            observer,
        } => stream_response(&state, status, response, *observer),
        Answer::Reply { reply, record } => {
            let response = reply_response(reply);
            state.log(*record);
            response
        }
    };
    add_headers(response.headers_mut(), &settlement.headers);
    response
}

fn request_id<R>(answer: &Answer<R>) -> &str {
    match answer {
        Answer::Stream { observer, .. } => observer.request_id(),
        Answer::Reply { reply, .. } => &reply.request_id,
    }
}

/// Where a request dropped before upstream answered goes: the state and log queues,
/// as cut by the shutdown once the listener said so.
impl AbandonSink for &ProxyState {
    fn why(&self) -> Abandoned {
        match self.is_cut() {
            true => Abandoned::Shutdown,
            false => Abandoned::ClientLeft,
        }
    }

    fn abandoned(&self, changes: Vec<StateChange>, record: LogRecord) {
        self.learned(changes);
        self.log(record);
    }
}

/// Answers a refusal; logs it unless it is one of a stranger's many (the core's
/// sampler counts those instead).
fn refuse(state: &ProxyState, client: Option<&str>, refusal: Refusal) -> Response {
    let keep = state.refusals.keep(&refusal, client, unix_ms());
    let Refusal { reply, record } = refusal;
    if keep {
        state.log(*record);
    }
    reply_response(reply)
}

/// Streams upstream's 2xx body to the client; the observer completes the record.
fn stream_response(
    state: &ProxyState,
    status: u16,
    upstream: crate::upstream::UpstreamReply,
    observer: BodyObserver,
) -> Response {
    let mut headers = downstream_headers(upstream.headers());
    if observer.changes_length() {
        headers.remove(axum::http::header::CONTENT_LENGTH);
    }
    set_request_id(&mut headers, observer.request_id());
    let body = Body::from_stream(ObservedBody::new(
        upstream,
        observer,
        state.records.clone(),
        state.cut_flag(),
    ));
    let mut response = Response::new(body);
    *response.status_mut() = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK);
    *response.headers_mut() = headers;
    response
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
