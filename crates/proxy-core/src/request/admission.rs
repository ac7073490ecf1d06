//! Admission: the steps every platform runs, in this order, before a request may go
//! upstream. Each step either hands on to the next (a different type, so no step can
//! be skipped or run twice) or refuses with a [`Refusal`]: the answer in the client's
//! dialect and the log record that says why.
//!
//! ```text
//! Admission::begin(head)      route, credential, record started     404
//!   .authorize(proxy keys)    proxy key, its policy, body size      401 403 413
//!   .with_body(body, headers) JSON, model, framing, upstream request 400
//!   → Prepared                for the engine, then `Prepared::settle`
//! ```
//!
//! Platforms do only the IO in between: read the head, load keys (the Worker's first
//! request), read the body within [`Authorized::body_limit`], call the engine.

use std::sync::Arc;

use bytes::Bytes;

use crate::attempts::Attempts;
use crate::auth::{AuthOutcome, Credential, ProxyKeyTable, extract_credential};
use crate::defaults;
use crate::engine::Job;
use crate::error::{ErrorShape, ProxyError};
use crate::governance::Governor;
use crate::log::LogRecord;
use crate::openai_usage::request_usage;
use crate::platform::{EmptyCheck, ModelIn, PreparedRequest};
use crate::policy::ProxyKeyPolicy;
use crate::resilience::cache::{CacheKey, ResponseCache};
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
    /// The client's address (the connection's peer, or what the platform trusts to
    /// report it), for the audit trail.
    pub client_ip: Option<&'a str>,
    /// `user-agent`, for the audit trail (cut to [`crate::audit::USER_AGENT_MAX`]).
    pub user_agent: Option<&'a str>,
    /// `traceparent`: the client's trace, which the request's spans continue.
    pub traceparent: Option<&'a str>,
    /// When the head arrived, on the platform's monotonic clock (for traces).
    pub arrived_us: u64,
}

/// The operator's rules for admitting requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionRules {
    pub max_body_bytes: usize,
    pub log_bodies: bool,
    /// Keep-alive comments on SSE answers after this much upstream silence; 0: none.
    pub sse_heartbeat_ms: u64,
    /// Retry an empty non-streamed answer once on another key (`--retry-empty`).
    pub retry_empty: bool,
}

impl Default for AdmissionRules {
    fn default() -> Self {
        Self {
            max_body_bytes: defaults::mib_to_bytes(defaults::MAX_BODY_MB),
            log_bodies: defaults::LOG_BODIES,
            sse_heartbeat_ms: defaults::SSE_HEARTBEAT_SECS * 1000,
            retry_empty: defaults::RETRY_EMPTY,
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
pub struct Authorized {
    admission: Admission,
    proxy_key_id: i64,
    policy: Arc<ProxyKeyPolicy>,
}

/// A request ready for the engine, and what settling its answer needs.
#[derive(Debug)]
pub struct Prepared {
    pub request: PreparedRequest,
    pub(super) record: LogRecord,
    pub(super) shape: ErrorShape,
    pub(super) format: BodyFormat,
    /// The proxy asked upstream for usage the client did not: remove it again.
    pub(super) strip_usage: bool,
    /// Keep-alive comments after this much upstream silence (SSE answers; 0: none).
    pub(super) keep_alive_ms: u64,
    model: String,
    /// What the engine did so far; filled in while it runs.
    pub(super) attempts: Attempts,
    /// Prices the answer and counts what it used, when its body ends.
    pub(super) governor: Arc<Governor>,
    /// The proxy key's policy counts tokens or cost.
    pub(super) metered: bool,
    /// What the key may use: a fallback model must be allowed too.
    pub(super) policy: Arc<ProxyKeyPolicy>,
    /// What the response cache needs: the operation, whether it streams, and whether
    /// the client asked past the cache (`Cache-Control: no-cache`).
    pub(super) operation: Operation,
    pub(super) no_cache: bool,
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
            client_ip: head.client_ip.map(str::to_string),
            user_agent: head.user_agent.map(crate::audit::user_agent),
            trace_parent: head.traceparent.and_then(crate::trace::TraceParent::parse),
            arrived_us: head.arrived_us,
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

    /// Checks the proxy key, its expiry and what its policy allows on this route, then
    /// a declared body size, so an oversized body is refused before a byte of it is read.
    pub fn authorize(mut self, proxy_keys: &ProxyKeyTable) -> Result<Authorized, Refusal> {
        let now_ms = self.record.started_at_ms;
        let (allowed, error) = match proxy_keys.check(self.credential.as_ref()) {
            AuthOutcome::Allowed { proxy_key_id, policy } => {
                self.record.proxy_key_id = Some(proxy_key_id);
                let checked = policy
                    .check_expiry(now_ms)
                    .and_then(|()| policy.check_route(&self.route));
                (Some((proxy_key_id, Arc::clone(policy))), checked.err())
            }
            AuthOutcome::Missing => (None, Some(ProxyError::MissingKey)),
            AuthOutcome::Unknown => (None, Some(ProxyError::UnknownKey)),
            AuthOutcome::Revoked { proxy_key_id } => {
                self.record.proxy_key_id = Some(proxy_key_id);
                (None, Some(ProxyError::RevokedKey))
            }
        };
        let limit = self.rules.max_body_bytes;
        let error = error.or_else(|| {
            self.content_length
                .is_some_and(|length| length > limit as u64)
                .then_some(ProxyError::BodyTooLarge { limit_bytes: limit })
        });
        match (error, allowed) {
            (None, Some((proxy_key_id, policy))) => {
                self.credential = None;
                Ok(Authorized {
                    admission: self,
                    proxy_key_id,
                    policy,
                })
            }
            (error, _) => Err(self.refuse(error.unwrap_or(ProxyError::Internal))),
        }
    }
}

impl Authorized {
    /// The most body bytes the platform may read; past it, refuse with
    /// [`ProxyError::BodyTooLarge`].
    pub fn body_limit(&self) -> usize {
        self.admission.rules.max_body_bytes
    }

    /// Refuses for a reason found while reading the body (too large, unreadable).
    pub fn refuse(self, error: ProxyError) -> Refusal {
        self.admission.refuse(error)
    }

    /// Checks the body, reads the model and framing from it, checks the key may use
    /// that model and is under its rates and budget (`governor`, which takes one
    /// request of its count), and builds the request that goes upstream. `headers`
    /// are all the client's headers; only the core's allow-list travels.
    pub fn with_body<'h>(
        self,
        mut body: Bytes,
        headers: impl IntoIterator<Item = (&'h str, &'h str)>,
        governor: &Arc<Governor>,
    ) -> Result<Prepared, Refusal> {
        let Authorized {
            admission,
            proxy_key_id,
            policy,
        } = self;
        let Admission {
            mut record,
            shape,
            mut route,
            method,
            query,
            rules,
            ..
        } = admission;
        let has_body = method != "GET";
        let framing = match inspect_body(&mut route, has_body, &body, &query) {
            Ok(framing) => framing,
            Err(error) => return Err(Refusal::new(record, shape, &error)),
        };
        record.model = route.model.clone();
        record.stream = framing.stream;
        record.prompt_sha256 = crate::audit::prompt_sha256(&body);
        let governed = policy
            .check_model(route.model.as_deref())
            .and_then(|()| governor.admit(proxy_key_id, &policy, record.started_at_ms));
        if let Err(error) = governed {
            return Err(Refusal::new(record, shape, &error));
        }
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
        let mut no_cache = false;
        let headers = headers
            .into_iter()
            .inspect(|(name, value)| {
                if name.eq_ignore_ascii_case("cache-control") {
                    let value = value.to_ascii_lowercase();
                    no_cache |= value.contains("no-cache") || value.contains("no-store");
                }
            })
            .filter(|(name, _)| forwards_header(name))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.to_string()))
            .collect();
        let model_in = match (route.api, &route.model) {
            (_, None) => ModelIn::Nowhere,
            (Api::Gemini, Some(_)) => ModelIn::Path,
            (Api::OpenAi, Some(_)) => ModelIn::Body,
        };
        let empty_check = match (
            route.operation,
            framing.stream,
            framing.format == BodyFormat::Sse,
            rules.retry_empty,
        ) {
            (_, _, _, false) => EmptyCheck::Off,
            (Operation::GenerateContent, false, _, true) => EmptyCheck::Gemini,
            (Operation::ChatCompletions, false, _, true) => EmptyCheck::OpenAi,
            (Operation::StreamGenerateContent, true, true, true) => EmptyCheck::GeminiStream,
            (Operation::ChatCompletions, true, true, true) => EmptyCheck::OpenAiStream,
            _ => EmptyCheck::Off,
        };
        let empty_hold_ms = rules.sse_heartbeat_ms;
        let request = PreparedRequest {
            method,
            path_and_query: upstream_target(&route, &query),
            headers,
            body,
            model_in,
            empty_check,
            empty_hold_ms,
            stream: framing.stream,
        };
        Ok(Prepared {
            request,
            record,
            shape,
            format: framing.format,
            strip_usage,
            keep_alive_ms: match framing.format {
                BodyFormat::Sse => rules.sse_heartbeat_ms,
                BodyFormat::Json => 0,
            },
            model: route.model_or_any().to_string(),
            attempts: Attempts::default(),
            governor: Arc::clone(governor),
            metered: policy.meters_usage(),
            policy,
            operation: route.operation,
            no_cache,
        })
    }
}

impl Prepared {
    /// The model the engine serves the request for (`*` when none applies).
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The request's key in `cache`, when its answer may be cached.
    pub fn cache_key(&self, cache: &ResponseCache) -> Option<CacheKey> {
        let proxy_key_id = self.record.proxy_key_id.unwrap_or(0);
        let request = &self.request;
        cache.key_for(
            self.operation,
            self.record.stream,
            proxy_key_id,
            &request.method,
            &request.path_and_query,
            &request.body,
        )
    }

    /// The client asked past the cache (`Cache-Control: no-cache`).
    pub fn bypasses_cache(&self) -> bool {
        self.no_cache
    }

    /// The request id, for a platform that answers before settling.
    pub fn request_id(&self) -> &str {
        &self.record.id
    }

    /// What `Engine::serve` takes: the request, its model and the key's policy, and
    /// where the attempts go.
    pub fn engine_input(&mut self) -> (Job<'_>, &mut Attempts) {
        let job = Job {
            request: &self.request,
            model: &self.model,
            policy: Some(&self.policy),
        };
        (job, &mut self.attempts)
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

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::auth::hash_proxy_key;
    use crate::keys::ProxyKey;
    use crate::request::RefusalSampler;

    const OPEN: &str = "gp-admission-open";
    const LIMITED: &str = "gp-admission-limited";
    const LIMITED_REVOKED: &str = "gp-admission-limited-revoked";

    /// Key 1 may use everything, key 2 may not use pass-through, key 3 is like key 2
    /// but revoked.
    fn keys() -> ProxyKeyTable {
        let key = |id, secret: &str, revoked, passthrough| ProxyKey {
            id,
            name: format!("k{id}"),
            secret_hash: hash_proxy_key(secret),
            revoked,
            policy: Arc::new(ProxyKeyPolicy {
                passthrough,
                ..ProxyKeyPolicy::default()
            }),
        };
        ProxyKeyTable::new(vec![
            key(1, OPEN, false, true),
            key(2, LIMITED, false, false),
            key(3, LIMITED_REVOKED, true, false),
        ])
    }

    fn authorize(method: &str, path: &str, secret: &str, bearer: bool) -> Result<Authorized, Refusal> {
        let authorization = format!("Bearer {secret}");
        let head = RequestHead {
            method,
            path,
            api_key: (!bearer).then_some(secret),
            authorization: bearer.then_some(authorization.as_str()),
            content_length: Some(2),
            client_ip: None,
            user_agent: None,
            ..RequestHead::default()
        };
        Admission::begin("r1".into(), 0, &head, AdmissionRules::default())?.authorize(&keys())
    }

    fn refused(result: Result<Authorized, Refusal>) -> (Refusal, Value) {
        let refusal = result.err().unwrap_or_else(|| panic!("admitted"));
        let body = serde_json::from_slice(&refusal.reply.body).unwrap_or(Value::Null);
        (refusal, body)
    }

    #[test]
    fn a_key_without_passthrough_is_refused_there_in_the_clients_shape_and_logged() {
        let sampler = RefusalSampler::default();
        for (method, path) in [
            ("GET", "/v1beta/files"),
            ("DELETE", "/v1beta/files/abc"),
            ("GET", "/v1/cachedContents"),
            ("POST", "/v1beta/tunedModels"),
            ("POST", "/v1beta/batches/b1:cancel"),
        ] {
            let (refusal, body) = refused(authorize(method, path, LIMITED, false));
            let error = &body["error"];
            assert_eq!(refusal.reply.status, 403, "{path}");
            assert_eq!(error["code"], 403, "{path}");
            assert_eq!(error["status"], "PERMISSION_DENIED", "{path}");
            let message = error["message"].as_str().unwrap_or_default();
            assert!(message.contains("pass-through routes"), "{message}");
            let record = &refusal.record;
            assert_eq!(record.proxy_key_id, Some(2), "logged with the key's id");
            assert_eq!(record.status, 403);
            assert_eq!(record.error_kind.as_deref(), Some("passthrough_denied"));
            assert_eq!(record.route, "passthrough");
        }
        // From a live key: every one is logged, none is only sampled.
        let (refusal, _) = refused(authorize("GET", "/v1beta/files", LIMITED, false));
        for _ in 0..20 {
            assert!(sampler.keep(&refusal, Some("192.0.2.1"), 0));
        }
        assert_eq!(sampler.counts().not_logged, 0);

        // An OpenAI client gets OpenAI's shape.
        let (refusal, body) = refused(authorize("GET", "/v1beta/openai/files", LIMITED, true));
        assert_eq!(refusal.reply.status, 403);
        assert_eq!(body["error"]["type"], "permission_error");
        assert_eq!(body["error"]["code"], "passthrough_denied");
    }

    #[test]
    fn a_key_without_passthrough_still_generates_embeds_and_lists_models() {
        for (method, path, bearer) in [
            ("POST", "/v1beta/models/gemini-2.5-flash:generateContent", false),
            (
                "POST",
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                false,
            ),
            ("POST", "/v1beta/models/gemini-2.5-flash:countTokens", false),
            ("POST", "/v1beta/models/text-embedding-004:embedContent", false),
            ("GET", "/v1beta/models", false),
            ("GET", "/v1/models/gemini-2.5-flash", false),
            ("POST", "/v1beta/openai/chat/completions", true),
            ("POST", "/v1/embeddings", true),
        ] {
            assert!(authorize(method, path, LIMITED, bearer).is_ok(), "{path}");
        }
        // And a key with it reaches the pass-through routes as before.
        assert!(authorize("GET", "/v1beta/files", OPEN, false).is_ok());
        assert!(authorize("DELETE", "/v1beta/cachedContents/c1", OPEN, false).is_ok());
    }

    #[test]
    fn revocation_is_said_first_and_the_policy_before_a_body_size() {
        let (refusal, _) = refused(authorize("GET", "/v1beta/files", LIMITED_REVOKED, false));
        assert_eq!(refusal.record.error_kind.as_deref(), Some("revoked_api_key"));
        let head = RequestHead {
            method: "POST",
            path: "/v1beta/files",
            api_key: Some(LIMITED),
            content_length: Some(u64::MAX),
            client_ip: None,
            user_agent: None,
            ..RequestHead::default()
        };
        let refusal = Admission::begin("r2".into(), 0, &head, AdmissionRules::default())
            .and_then(|admission| admission.authorize(&keys()))
            .err()
            .unwrap_or_else(|| panic!("admitted"));
        assert_eq!(refusal.record.error_kind.as_deref(), Some("passthrough_denied"));
    }
}
