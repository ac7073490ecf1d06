//! The per-request pipeline: read body, record, check auth and key markers,
//! then dispatch to the native or OpenAI-compatible handlers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde::de::IgnoredAny;

use crate::RecordedRequest;
use crate::body::{self, Abort, Resp};
use crate::errors::{ApiError, KeyMarker};
use crate::route::{self, Native, OpenAi, Route};
use crate::scenario::ModelFlags;
use crate::{native, openai};

/// Largest accepted request body. Tests send 20+ MB bodies with base64
/// images; Google's own limit is lower, but the fake must not be the one
/// to refuse them.
pub const MAX_BODY: usize = 128 << 20;

/// How long a `-hang-` key waits before answering: longer than any proxy
/// timeout under test.
const HANG: Duration = Duration::from_secs(120);

/// Model named in quota errors when the request names none.
const DEFAULT_MODEL: &str = "gemini-2.5-flash";

#[derive(Default)]
pub struct State {
    pub recording: AtomicBool,
    requests: Mutex<Vec<RecordedRequest>>,
    next_id: AtomicU64,
    /// Path prefix the API is served under, like a Cloudflare AI Gateway's
    /// `/v1/{account}/{gateway}/google-ai-studio`; empty for none.
    base_path: Mutex<String>,
    /// Where `-r302-` keys are sent; same-origin `/v1beta/models` if unset.
    redirect_target: Mutex<Option<String>>,
    /// `-once429-` keys that had their 429 already.
    limited_once: Mutex<std::collections::HashSet<String>>,
    /// Trace batches taken at `POST /v1/traces` (the OTLP/HTTP sink).
    pub otlp_batches: AtomicU64,
}

/// A poisoned lock only means another request panicked mid-update; the
/// value is still usable, so recover instead of propagating the panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    pub fn requests(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        lock(&self.requests)
    }

    pub fn set_base_path(&self, base_path: &str) {
        *lock(&self.base_path) = base_path.trim_end_matches('/').to_string();
    }

    pub fn set_redirect_target(&self, url: &str) {
        *lock(&self.redirect_target) = Some(url.to_string());
    }

    fn redirect_target(&self) -> String {
        lock(&self.redirect_target)
            .clone()
            .unwrap_or_else(|| "/v1beta/models".to_string())
    }

    /// True the first time `key` asks (its 429), false after.
    fn first_time(&self, key: &str) -> bool {
        lock(&self.limited_once).insert(key.to_string())
    }

    fn response_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("fake-resp-{n:08x}")
    }
}

/// Where an OTLP/HTTP exporter posts its trace batches.
pub const OTLP_TRACES_PATH: &str = "/v1/traces";

pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Resp, Abort> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    if let Some(ctl) = path.strip_prefix("/__fake/") {
        return Ok(control(&state, &parts.method, ctl));
    }
    if parts.method == Method::POST && path == OTLP_TRACES_PATH {
        // An OTLP/HTTP collector that keeps nothing: the bench's trace sink.
        if Limited::new(body, MAX_BODY).collect().await.is_err() {
            return Err(Abort("trace batch body error"));
        }
        state.otlp_batches.fetch_add(1, Ordering::Relaxed);
        return Ok(body::full(StatusCode::OK, "application/x-protobuf", Bytes::new()));
    }
    let base_path = lock(&state.base_path).clone();
    // Outside the base path nothing is served, but the request is recorded:
    // tests prove a proxy never escapes its upstream's prefix.
    let in_base = path
        .strip_prefix(base_path.as_str())
        .filter(|rest| rest.starts_with('/'));
    let route = match in_base {
        Some(api_path) => route::parse(&parts.method, api_path),
        None => Route::NotFound { openai: false },
    };
    let openai = route.is_openai();
    let query = parts.uri.query();
    let key = route::api_key(&parts.headers);

    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(ApiError::payload_too_large(MAX_BODY)),
        // The client went away or sent a broken body: nobody to answer.
        Err(_) => return Err(Abort("request body error")),
    };
    if state.recording.load(Ordering::Relaxed) {
        state.requests().push(RecordedRequest {
            method: parts.method.to_string(),
            path: path.to_owned(),
            query: query.map(str::to_owned),
            api_key: key.map(str::to_owned),
            body_len: body.as_ref().map_or(MAX_BODY, Bytes::len),
        });
    }
    let body = match body {
        Ok(b) => b,
        Err(e) => return Ok(body::error(&e, openai)),
    };
    if in_base.is_none() {
        return Ok(body::error(&ApiError::not_found(), false));
    }

    if route::has_key_param(query) {
        return Ok(body::error(&ApiError::key_in_url(), openai));
    }
    let Some(key) = key else {
        return Ok(body::error(&ApiError::missing_key(), openai));
    };
    // OpenAI requests name their model in the body; parse it once, before
    // the key markers, because quota errors name the model.
    let oa_req = match route {
        Route::OpenAi(OpenAi::Chat | OpenAi::Embeddings) => {
            Some(serde_json::from_slice::<openai::Request>(&body))
        }
        _ => None,
    };
    if let Some(marker) = KeyMarker::find(key) {
        match marker {
            KeyMarker::Hang => {
                tokio::time::sleep(HANG).await;
                return Ok(body::error(&ApiError::deadline(), openai));
            }
            KeyMarker::Reset => return Err(Abort("connection reset on purpose")),
            KeyMarker::Redirect => return Ok(body::redirect(&state.redirect_target())),
            KeyMarker::Empty
                if matches!(
                    route,
                    Route::Native {
                        endpoint: Native::Generate(_),
                        ..
                    }
                ) =>
            {
                let model = model_hint(&route, oa_req.as_ref());
                return Ok(body::json(&native::empty_answer(model)));
            }
            KeyMarker::Empty
                if matches!(
                    route,
                    Route::Native {
                        endpoint: Native::Stream(_),
                        ..
                    }
                ) =>
            {
                let model = model_hint(&route, oa_req.as_ref());
                let sse = route::query_param(query, "alt") == Some("sse");
                return Ok(native::empty_stream(model, sse));
            }
            KeyMarker::Empty if matches!(&oa_req, Some(Ok(_)) if matches!(route, Route::OpenAi(OpenAi::Chat))) =>
            {
                let model = model_hint(&route, oa_req.as_ref());
                return Ok(match &oa_req {
                    Some(Ok(r)) if r.stream => openai::empty_chat_stream(model),
                    _ => body::json(&openai::empty_chat(model)),
                });
            }
            KeyMarker::OnceLimited if state.first_time(key) => {
                let model = model_hint(&route, oa_req.as_ref());
                return Ok(body::error(&ApiError::quota_for(model, "2s"), openai));
            }
            KeyMarker::OnceLimited => {}
            KeyMarker::SlowKey => tokio::time::sleep(crate::scenario::SLOW_HEADERS).await,
            KeyMarker::StallBody => {
                let model = model_hint(&route, oa_req.as_ref());
                let e = ApiError::quota(false, model);
                return Ok(body::stalled_error(&e, openai, HANG));
            }
            _ => {
                let model = model_hint(&route, oa_req.as_ref());
                if let Some(e) = marker.error(key, model) {
                    return Ok(body::error(&e, openai));
                }
            }
        }
    }
    if ModelFlags::from_model(model_hint(&route, oa_req.as_ref())).slow_headers {
        tokio::time::sleep(crate::scenario::SLOW_HEADERS).await;
    }
    let id = state.response_id();
    Ok(match route {
        Route::NotFound { openai } => body::error(&ApiError::not_found(), openai),
        Route::Native { version, endpoint } => native_endpoint(version, endpoint, query, &body, &id),
        Route::OpenAi(ep) => openai_endpoint(ep, oa_req, &id),
    })
}

fn model_hint<'a>(
    route: &Route<'a>,
    oa_req: Option<&'a Result<openai::Request, serde_json::Error>>,
) -> &'a str {
    let from_route = match route {
        Route::Native { endpoint, .. } => match *endpoint {
            Native::GetModel(m)
            | Native::Generate(m)
            | Native::Stream(m)
            | Native::CountTokens(m)
            | Native::Embed(m)
            | Native::BatchEmbed(m) => Some(m),
            Native::ListModels | Native::GetFile(_) | Native::Corpora => None,
        },
        _ => None,
    };
    from_route
        .or_else(|| oa_req?.as_ref().ok()?.model_id())
        .unwrap_or(DEFAULT_MODEL)
}

fn native_endpoint(version: &str, endpoint: Native<'_>, query: Option<&str>, body: &[u8], id: &str) -> Resp {
    let model = match endpoint {
        Native::ListModels => return native::list_models(query),
        Native::GetModel(m) => return native::get_model(m, version),
        Native::GetFile(name) => {
            return body::error(&ApiError::file_denied(&route::percent_decode(name)), false);
        }
        Native::Corpora => return body::error(&ApiError::credentials_missing(), false),
        Native::Generate(m)
        | Native::Stream(m)
        | Native::CountTokens(m)
        | Native::Embed(m)
        | Native::BatchEmbed(m) => m,
    };
    // Validates without building a tree, so large bodies stay cheap; a generate
    // request's top-level names are checked in the same pass.
    let generate = matches!(endpoint, Native::Generate(_) | Native::Stream(_));
    match generate.then(|| native::unknown_request_field(body)).flatten() {
        Some(Ok(name)) => return body::error(&ApiError::unknown_field(&name), false),
        Some(Err(())) | None => {
            if let Err(e) = serde_json::from_slice::<IgnoredAny>(body) {
                return body::error(&ApiError::invalid_json(&e.to_string()), false);
            }
        }
    }
    let flags = ModelFlags::from_model(model);
    if flags.overloaded {
        return body::error(&ApiError::overloaded(), false);
    }
    match endpoint {
        Native::Generate(_) => native::generate(model, id, flags),
        Native::Stream(_) => {
            let sse = route::query_param(query, "alt") == Some("sse");
            native::stream(model, id, flags, sse)
        }
        Native::CountTokens(_) => native::count_tokens(),
        Native::Embed(_) => native::embed(),
        Native::BatchEmbed(_) => native::batch_embed(body),
        Native::ListModels | Native::GetModel(_) | Native::GetFile(_) | Native::Corpora => {
            body::error(&ApiError::not_found(), false)
        }
    }
}

fn openai_endpoint(
    ep: OpenAi<'_>,
    req: Option<Result<openai::Request, serde_json::Error>>,
    id: &str,
) -> Resp {
    let req = match (ep, req) {
        (OpenAi::ListModels, _) => return openai::list_models(),
        (OpenAi::GetModel(m), _) => return openai::get_model(m),
        (_, Some(Ok(r))) => r,
        (_, Some(Err(e))) => return body::error(&ApiError::invalid_json(&e.to_string()), true),
        (_, None) => return body::error(&ApiError::not_found(), true),
    };
    let Some(model) = req.model_id() else {
        let e = ApiError::invalid_argument("Missing required parameter: 'model'.");
        return body::error(&e, true);
    };
    let flags = ModelFlags::from_model(model);
    if flags.overloaded {
        return body::error(&ApiError::overloaded(), true);
    }
    match ep {
        OpenAi::Chat => openai::chat(&req, model, id, flags),
        _ => openai::embeddings(&req, model),
    }
}

/// Introspection for out-of-process tests; never recorded, needs no key.
fn control(state: &State, method: &Method, path: &str) -> Resp {
    match (method, path) {
        (&Method::GET, "requests") => body::json(&*state.requests()),
        (&Method::POST, "clear") => {
            state.requests().clear();
            body::json_bytes(Bytes::from_static(b"{}"))
        }
        _ => body::full(
            StatusCode::NOT_FOUND,
            body::JSON,
            ApiError::not_found().body(false),
        ),
    }
}
