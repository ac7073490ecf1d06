//! Admission: the steps every platform runs, in this order, before a request may go
//! upstream. Each step either hands on to the next (a different type, so no step can
//! be skipped or run twice) or refuses with a [`Refusal`]: the answer in the client's
//! dialect and the log record that says why.
//!
//! ```text
//! Admission::begin(head)      route, credential, record started     404
//!   .authorize(proxy keys)    the proxy key; a declared body size   401 403 413
//!   .with_body(body, headers) JSON, model, framing, upstream request 400
//!   → Prepared                for the engine, then `Prepared::settle`
//! ```
//!
//! Platforms do only the IO in between: read the head, load keys (the Worker's first
//! request), read the body within [`Authorized::body_limit`], call the engine.

use bytes::Bytes;

use crate::attempts::Attempts;
use crate::auth::{AuthOutcome, Credential, ProxyKeyTable, extract_credential};
use crate::defaults;
use crate::error::{ErrorShape, ProxyError};
use crate::log::LogRecord;
use crate::openai_usage::request_usage;
use crate::platform::PreparedRequest;
use crate::route::{Api, BodyFormat, Operation, Route, parse_route, take_key_param};

use super::reply::{Refusal, Reply};
use super::{forwards_header, inspect_body, upstream_target};

/// What the pipeline reads off a request before its body.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The raw query string, without `?`; may hold the client's `key`.
    pub query: &'a str,
    /// `x-goog-api-key`.
    pub api_key: Option<&'a str>,
    /// `authorization`.
    pub authorization: Option<&'a str>,
    /// `content-length`, when the client declared one.
    pub content_length: Option<u64>,
}

/// The operator's rules for admitting requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionRules {
    pub max_body_bytes: usize,
    pub log_bodies: bool,
}

impl Default for AdmissionRules {
    fn default() -> Self {
        Self {
            max_body_bytes: defaults::mib_to_bytes(defaults::MAX_BODY_MB),
            log_bodies: defaults::LOG_BODIES,
        }
    }
}

/// A request whose route is known; next: [`Admission::authorize`].
#[derive(Debug)]
pub struct Admission {
    record: LogRecord,
    shape: ErrorShape,
    route: Route,
    method: String,
    /// The query without the client's credential.
    query: String,
    credential: Option<Credential>,
    content_length: Option<u64>,
    rules: AdmissionRules,
}

/// A request from a known, live proxy key; next: read the body, then
/// [`Authorized::with_body`].
#[derive(Debug)]
pub struct Authorized(Admission);

/// A request ready for the engine, and what settling its answer needs.
#[derive(Debug)]
pub struct Prepared {
    pub request: PreparedRequest,
    pub(super) record: LogRecord,
    pub(super) shape: ErrorShape,
    pub(super) format: BodyFormat,
    /// The proxy asked upstream for usage the client did not: remove it again.
    pub(super) strip_usage: bool,
    model: String,
    /// What the engine did so far; filled in while it runs.
    pub(super) attempts: Attempts,
}

impl Admission {
    /// Starts the request's record and finds its route. `id` is the request id
    /// ([`super::RequestIds`]), `now_ms` when the request arrived.
    pub fn begin(
        id: String,
        now_ms: u64,
        head: &RequestHead<'_>,
        rules: AdmissionRules,
    ) -> Result<Self, Refusal> {
        let record = LogRecord {
            id,
            started_at_ms: now_ms,
            route: "unknown".into(),
            ..LogRecord::default()
        };
        let (query_key, query) = take_key_param(head.query);
        let credential = extract_credential(head.api_key, head.authorization, query_key.as_deref());
        let bearer = credential.as_ref().is_some_and(|c| c.bearer);
        // No route yet, so no dialect: a path that is not the API's (404) or could
        // climb out of it (400) is answered in Gemini's shape.
        let route = match parse_route(head.path, bearer) {
            Ok(route) => route,
            Err(error) => return Err(Refusal::new(record, ErrorShape::Gemini, &error)),
        };
        let mut record = record;
        record.apply_route(&route);
        Ok(Self {
            record,
            shape: route.api.error_shape(),
            route,
            method: head.method.to_string(),
            query,
            credential,
            content_length: head.content_length,
            rules,
        })
    }

    /// Refuses the request for a reason the platform found (e.g. the key store
    /// cannot be read on a Worker's first request).
    pub fn refuse(self, error: ProxyError) -> Refusal {
        Refusal::new(self.record, self.shape, &error)
    }

    /// Checks the proxy key, then a declared body size, so an oversized body is
    /// refused before a byte of it is read.
    pub fn authorize(mut self, proxy_keys: &ProxyKeyTable) -> Result<Authorized, Refusal> {
        let error = match proxy_keys.check(self.credential.as_ref()) {
            AuthOutcome::Allowed { proxy_key_id } => {
                self.record.proxy_key_id = Some(proxy_key_id);
                None
            }
            AuthOutcome::Missing => Some(ProxyError::MissingKey),
            AuthOutcome::Unknown => Some(ProxyError::UnknownKey),
            AuthOutcome::Revoked { proxy_key_id } => {
                self.record.proxy_key_id = Some(proxy_key_id);
                Some(ProxyError::RevokedKey)
            }
        };
        let limit = self.rules.max_body_bytes;
        let error = error.or_else(|| {
            self.content_length
                .is_some_and(|length| length > limit as u64)
                .then_some(ProxyError::BodyTooLarge { limit_bytes: limit })
        });
        match error {
            Some(error) => Err(self.refuse(error)),
            None => {
                self.credential = None;
                Ok(Authorized(self))
            }
        }
    }
}

impl Authorized {
    /// The most body bytes the platform may read; past it, refuse with
    /// [`ProxyError::BodyTooLarge`].
    pub fn body_limit(&self) -> usize {
        self.0.rules.max_body_bytes
    }

    /// Refuses for a reason found while reading the body (too large, unreadable).
    pub fn refuse(self, error: ProxyError) -> Refusal {
        self.0.refuse(error)
    }

    /// Checks the body, reads the model and framing from it, and builds the request
    /// that goes upstream. `headers` are all the client's headers; only the core's
    /// allow-list travels.
    pub fn with_body<'h>(
        self,
        mut body: Bytes,
        headers: impl IntoIterator<Item = (&'h str, &'h str)>,
    ) -> Result<Prepared, Refusal> {
        let Admission {
            mut record,
            shape,
            mut route,
            method,
            query,
            rules,
            ..
        } = self.0;
        let has_body = method != "GET";
        let framing = match inspect_body(&mut route, has_body, &body, &query) {
            Ok(framing) => framing,
            Err(error) => return Err(Refusal::new(record, shape, &error)),
        };
        record.model = route.model.clone();
        record.stream = framing.stream;
        if rules.log_bodies && !body.is_empty() {
            let logged = &body[..body.len().min(defaults::LOGGED_BODY_LIMIT)];
            record.request_body = Some(String::from_utf8_lossy(logged).into_owned());
        }
        // An OpenAI stream is logged with its tokens even when its client did not ask
        // for usage: ask upstream, and strip the usage chunk from this client's stream.
        let openai_stream =
            route.api == Api::OpenAi && route.operation == Operation::ChatCompletions && framing.stream;
        let asked_for_usage = openai_stream.then(|| request_usage(&body)).flatten();
        let strip_usage = asked_for_usage.is_some();
        if let Some(rewritten) = asked_for_usage {
            body = rewritten;
        }
        let headers = headers
            .into_iter()
            .filter(|(name, _)| forwards_header(name))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.to_string()))
            .collect();
        let request = PreparedRequest {
            method,
            path_and_query: upstream_target(&route, &query),
            headers,
            body,
        };
        Ok(Prepared {
            request,
            record,
            shape,
            format: framing.format,
            strip_usage,
            model: route.model_or_any().to_string(),
            attempts: Attempts::default(),
        })
    }
}

impl Prepared {
    /// The model the engine serves the request for (`*` when none applies).
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The request id, for a platform that answers before settling.
    pub fn request_id(&self) -> &str {
        &self.record.id
    }

    /// What `Engine::serve` takes: the request, its model, and where the attempts go.
    pub fn engine_input(&mut self) -> (&PreparedRequest, &str, &mut Attempts) {
        (&self.request, &self.model, &mut self.attempts)
    }

    /// The record of a request dropped before upstream answered: its client left, or
    /// the server's shutdown grace ran out. Every key called so far is in it, so no
    /// quota use goes unlogged. Also the key-state changes learned meanwhile.
    pub fn abandon(self, why: Abandoned) -> (Vec<crate::key_state::StateChange>, LogRecord) {
        let mut record = self.record;
        let changes = record.apply_attempts(self.attempts);
        let (status, kind, message) = match why {
            Abandoned::ClientLeft => (
                CLIENT_CLOSED_REQUEST,
                "client_disconnected",
                "client closed the connection before upstream answered",
            ),
            Abandoned::Shutdown => (
                503,
                super::observe::CUT_AT_SHUTDOWN,
                "the server shut down before upstream answered (its grace period ran out)",
            ),
        };
        record.status = status;
        record.error_kind = Some(kind.into());
        record.error_message = Some(message.into());
        (changes, record)
    }
}

/// Why a platform dropped a request before upstream answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abandoned {
    /// The client closed its connection (logged as nginx's 499).
    ClientLeft,
    /// The server stopped and its grace period ran out (logged as 503).
    Shutdown,
}

/// The status logged for a request its client abandoned (nginx's 499).
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

impl Refusal {
    pub(super) fn new(mut record: LogRecord, shape: ErrorShape, error: &ProxyError) -> Self {
        record.reject(error);
        let reply = Reply::error(error, shape, &record.id);
        Self {
            reply,
            record: Box::new(record),
        }
    }
}
