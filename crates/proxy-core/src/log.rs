//! The request log: one record per client request, filled in as the request goes.

use serde::{Deserialize, Serialize};

use crate::attempts::Attempts;
use crate::error::ProxyError;
use crate::key_state::StateChange;
use crate::keys::KeyId;
use crate::route::Route;
use crate::stream_meta::ResponseMeta;

/// One client request, as stored. Times are unix milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    pub id: String,
    pub started_at_ms: u64,
    pub proxy_key_id: Option<i64>,
    /// Upstream keys tried, in order; the last one that answered is `answered_key_id`.
    pub upstream_key_ids: Vec<KeyId>,
    pub answered_key_id: Option<KeyId>,
    /// The model requested (by path or body).
    pub model: Option<String>,
    /// The model that served it, when a fallback did.
    #[serde(default)]
    pub served_model: Option<String>,
    pub route: String,
    pub api: String,
    pub stream: bool,
    pub status: u16,
    pub attempts: u32,
    pub latency_ms: u64,
    pub ttfb_ms: Option<u64>,
    pub prompt_tokens: Option<u64>,
    pub candidates_tokens: Option<u64>,
    pub thoughts_tokens: Option<u64>,
    pub cached_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
    /// What the answer cost in USD by the price table; `None` without usage, or for a
    /// model the table does not know (counted as 0).
    #[serde(default)]
    pub cost_usd: Option<f64>,
    pub finish_reason: Option<String>,
    pub block_reason: Option<String>,
    pub error_kind: Option<String>,
    /// Already scrubbed of keys.
    pub error_message: Option<String>,
    /// Only when body logging is switched on.
    pub request_body: Option<String>,
    /// Whether the response cache answered: `hit`, `miss`, `bypass`; `None` when it is
    /// off or does not apply.
    #[serde(default)]
    pub cache: Option<String>,
    /// What the resilience rules did for this request (a fallback, a breaker that
    /// opened, a retry the budget refused), in order.
    #[serde(default)]
    pub notes: Vec<String>,
    /// Hex SHA-256 of the request's prompt in canonical form ([`crate::audit`]): the
    /// same prompt hashes the same, any change to it differently.
    #[serde(default)]
    pub prompt_sha256: Option<String>,
    /// The client's address.
    #[serde(default)]
    pub client_ip: Option<String>,
    /// The client's `user-agent`, cut to 256 characters.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// The log writer's hash chain ([`crate::log_chain`]): which chain, the place in
    /// it, and the link (hex SHA-256); `None` until a writer linked the record.
    #[serde(default)]
    pub chain_id: Option<String>,
    #[serde(default)]
    pub chain_seq: Option<u64>,
    #[serde(default)]
    pub chain_sha256: Option<String>,
    /// Each upstream attempt as stored: the key tried, the model, the outcome and how
    /// long it took, so the log explains a failover. Left out of the serde form when
    /// empty, so records written before it existed hash in the log chain as they were
    /// linked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempt_details: Vec<AttemptDetail>,
    /// Each attempt's model, key, outcome and times, for metrics and traces (not
    /// stored).
    #[serde(skip)]
    pub attempt_spans: Vec<crate::trace::AttemptSpan>,
    /// When the request's head arrived, on the platform's monotonic clock
    /// ([`crate::platform::Clock::monotonic_us`]), for traces (not stored).
    #[serde(skip)]
    pub arrived_us: u64,
    /// The client's `traceparent`, continued by the request's trace (not stored).
    #[serde(skip)]
    pub trace_parent: Option<crate::trace::TraceParent>,
    /// Microseconds the request waited on upstream and on deliberate waits (backoff,
    /// the queue), for metrics (not stored).
    #[serde(skip)]
    pub waiting_us: u64,
    /// The proxy's own time until the answer's headers went out: the time since the
    /// request's head arrived less `waiting_us`, when the platform measures it. Left
    /// out of the serde form when unknown, like `attempt_details`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead_us: Option<u64>,
    /// What the operator should hear of (a budget crossed, every key cooling), for
    /// the platform's alerts (not stored).
    #[serde(skip)]
    pub alerts: Vec<crate::alerts::AlertEvent>,
}

/// One upstream attempt of a request, as the log keeps it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptDetail {
    pub key_id: KeyId,
    pub model: String,
    /// `ok`, `rate_limited`, `invalid_key`, `server_error`, `client_error`, `timeout`,
    /// `connect_error` or `empty` (an empty answer retried), as the metrics say it.
    pub outcome: String,
    /// Upstream's status, when it answered.
    #[serde(default)]
    pub status: Option<u16>,
    /// From sending the attempt to its answer's head (or its failure), in ms.
    pub ms: u64,
}

impl AttemptDetail {
    fn of(span: &crate::trace::AttemptSpan) -> Self {
        AttemptDetail {
            key_id: span.key_id,
            model: span.model.clone(),
            outcome: span.outcome.to_string(),
            status: span.status,
            ms: span.ended_us.saturating_sub(span.began_us) / 1000,
        }
    }
}

/// Finish reasons that mean the model did not give a complete answer.
const FAILED_FINISH: [&str; 8] = [
    "SAFETY",
    "RECITATION",
    "PROHIBITED_CONTENT",
    "BLOCKLIST",
    "SPII",
    "MALFORMED_FUNCTION_CALL",
    "OTHER",
    "LANGUAGE",
];

/// A finish reason as Gemini spells it, whichever API answered: OpenAI's `stop`,
/// `length`, `content_filter` and `tool_calls` read `STOP`, `MAX_TOKENS`, `SAFETY` and
/// `STOP` (Gemini stops with its function call), so the log, its filters and the traces
/// say one thing for one outcome.
pub fn gemini_finish_reason(reason: &str) -> String {
    match reason {
        "stop" | "tool_calls" | "function_call" => "STOP".into(),
        "length" => "MAX_TOKENS".into(),
        "content_filter" => "SAFETY".into(),
        other => other.to_ascii_uppercase(),
    }
}

impl LogRecord {
    /// Records what the path said: operation, API and (if the path names one) model.
    pub fn apply_route(&mut self, route: &Route) {
        self.route = route.operation.log_name().to_string();
        self.api = route.api.log_name().to_string();
        self.model = route.model.clone();
    }

    /// Records what the attempt loop did (keys tried, the one that answered, the last
    /// failure) and hands back the key-state changes the store should keep.
    pub fn apply_attempts(&mut self, attempts: Attempts) -> Vec<StateChange> {
        self.attempts = attempts.tried.len() as u32;
        self.upstream_key_ids = attempts.tried;
        self.answered_key_id = attempts.answered;
        self.error_kind = attempts.last_error_kind.map(str::to_string);
        self.error_message = attempts.last_error_message;
        self.served_model = attempts.served_model;
        self.notes.extend(attempts.notes);
        self.attempt_details = attempts.spans.iter().map(AttemptDetail::of).collect();
        self.attempt_spans = attempts.spans;
        self.waiting_us = attempts.waiting_us;
        attempts.state_changes
    }

    /// A key answered with `status` (a 2xx): earlier attempts' failures are history.
    pub fn answered(&mut self, status: u16) {
        self.error_kind = None;
        self.error_message = None;
        self.status = status;
    }

    /// Records the proxy's own refusal: its status, and its kind and message unless an
    /// earlier failure (e.g. the last upstream attempt) already named the cause.
    pub fn reject(&mut self, error: &ProxyError) {
        if let ProxyError::AllKeysCooling {
            model,
            retry_after_secs,
        } = error
        {
            self.alerts.push(crate::alerts::AlertEvent::AllCooling {
                model: model.clone(),
                retry_after_secs: *retry_after_secs,
            });
        }
        if self.error_kind.is_none() {
            self.error_kind = Some(error.kind().to_string());
            self.error_message = Some(error.to_string());
        }
        self.status = error.status_code();
    }

    /// The model that served the request: the fallback, or the one requested.
    pub fn serving_model(&self) -> Option<&str> {
        self.served_model.as_deref().or(self.model.as_deref())
    }

    /// Sets the request's latency as it is handed to the log at `now_ms` (on the
    /// clock `started_at_ms` was read from).
    pub fn close(&mut self, now_ms: u64) {
        self.latency_ms = now_ms.saturating_sub(self.started_at_ms);
    }

    /// Completes a streamed answer's record when its body ends: what the body said about
    /// itself, then, if it did not end normally, how it ended (kind, message).
    pub fn end_body(&mut self, meta: Option<ResponseMeta>, failure: Option<(&str, &str)>) {
        if let Some(meta) = meta {
            self.apply_meta(&meta);
        }
        if let Some((kind, message)) = failure {
            self.error_kind = Some(kind.to_string());
            self.error_message = Some(message.to_string());
        }
    }

    /// Copies what the response said about itself into the record, and names a
    /// failure hidden in an HTTP 200 (blocked prompt, safety stop, mid-stream error).
    pub fn apply_meta(&mut self, meta: &ResponseMeta) {
        self.prompt_tokens = meta.usage.prompt_tokens;
        self.candidates_tokens = meta.usage.candidates_tokens;
        self.thoughts_tokens = meta.usage.thoughts_tokens;
        self.cached_tokens = meta.usage.cached_tokens;
        self.total_tokens = meta.usage.total_tokens;
        self.finish_reason = meta.finish_reason.as_deref().map(gemini_finish_reason);
        self.block_reason = meta.block_reason.clone();
        if self.error_kind.is_some() {
            return;
        }
        if meta.error_status.is_some() || meta.error_message.is_some() {
            self.error_kind = Some("upstream_stream_error".into());
            self.error_message = meta.error_message.clone().or_else(|| meta.error_status.clone());
        } else if meta.block_reason.is_some() {
            self.error_kind = Some("blocked".into());
        } else if self
            .finish_reason
            .as_deref()
            .is_some_and(|r| FAILED_FINISH.contains(&r))
        {
            self.error_kind = Some("incomplete_answer".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream_meta::Usage;

    #[test]
    fn attempts_fill_the_record_and_an_answer_clears_earlier_failures() {
        let change = StateChange::Invalid {
            key_id: 1,
            reason: "API_KEY_INVALID".into(),
        };
        let attempts = Attempts {
            tried: vec![1, 2],
            answered: Some(2),
            state_changes: vec![change.clone()],
            last_error_kind: Some("key_invalid"),
            last_error_message: Some("API key not valid".into()),
            spans: vec![
                crate::trace::AttemptSpan {
                    model: "flash".into(),
                    key_id: 1,
                    outcome: "invalid_key",
                    status: Some(400),
                    began_us: 1_000,
                    ended_us: 31_500,
                },
                crate::trace::AttemptSpan {
                    model: "flash".into(),
                    key_id: 2,
                    outcome: "ok",
                    status: Some(200),
                    began_us: 32_000,
                    ended_us: 52_000,
                },
            ],
            ..Attempts::default()
        };
        let mut record = LogRecord::default();
        assert_eq!(record.apply_attempts(attempts), vec![change]);
        let details: Vec<(KeyId, &str, Option<u16>, u64)> = record
            .attempt_details
            .iter()
            .map(|a| (a.key_id, a.outcome.as_str(), a.status, a.ms))
            .collect();
        assert_eq!(
            details,
            vec![(1, "invalid_key", Some(400), 30), (2, "ok", Some(200), 20)],
            "every attempt is kept, with how long it took"
        );
        assert_eq!(
            (record.attempts, record.upstream_key_ids.clone()),
            (2, vec![1, 2])
        );
        assert_eq!(record.answered_key_id, Some(2));
        assert_eq!(record.error_kind.as_deref(), Some("key_invalid"));
        record.answered(200);
        assert_eq!(
            (record.status, record.error_kind, record.error_message),
            (200, None, None)
        );
    }

    fn meta(finish: Option<&str>, block: Option<&str>, error: Option<&str>) -> ResponseMeta {
        ResponseMeta {
            usage: Usage {
                prompt_tokens: Some(3),
                total_tokens: Some(5),
                ..Usage::default()
            },
            finish_reason: finish.map(String::from),
            block_reason: block.map(String::from),
            error_status: error.map(String::from),
            error_message: None,
            bytes: 10,
        }
    }

    fn kind_after(m: ResponseMeta) -> Option<String> {
        let mut record = LogRecord::default();
        record.apply_meta(&m);
        assert_eq!(record.prompt_tokens, Some(3));
        record.error_kind
    }

    #[test]
    fn finish_reasons_are_spelled_as_gemini_spells_them() {
        let finish = |reason: &str| {
            let mut record = LogRecord::default();
            record.apply_meta(&meta(Some(reason), None, None));
            (record.finish_reason.unwrap_or_default(), record.error_kind)
        };
        assert_eq!(finish("stop"), ("STOP".into(), None));
        assert_eq!(finish("STOP"), ("STOP".into(), None));
        assert_eq!(finish("length"), ("MAX_TOKENS".into(), None));
        assert_eq!(finish("tool_calls"), ("STOP".into(), None));
        assert_eq!(
            finish("content_filter"),
            ("SAFETY".into(), Some("incomplete_answer".into()))
        );
        assert_eq!(finish("RECITATION").0, "RECITATION");
    }

    #[test]
    fn failures_inside_200_are_named() {
        assert_eq!(kind_after(meta(Some("STOP"), None, None)), None);
        assert_eq!(kind_after(meta(Some("MAX_TOKENS"), None, None)), None);
        assert_eq!(
            kind_after(meta(Some("SAFETY"), None, None)).as_deref(),
            Some("incomplete_answer")
        );
        assert_eq!(
            kind_after(meta(None, Some("SAFETY"), None)).as_deref(),
            Some("blocked")
        );
        assert_eq!(
            kind_after(meta(Some("STOP"), None, Some("INTERNAL"))).as_deref(),
            Some("upstream_stream_error")
        );
    }

    #[test]
    fn rejection_keeps_an_earlier_cause_and_a_cut_body_overrides() {
        let mut record = LogRecord {
            error_kind: Some("rate_limited".into()),
            ..LogRecord::default()
        };
        record.reject(&ProxyError::NoKeys("x".into()));
        assert_eq!(
            (record.status, record.error_kind.as_deref()),
            (503, Some("rate_limited"))
        );
        let mut fresh = LogRecord::default();
        fresh.reject(&ProxyError::MissingKey);
        assert_eq!(
            (fresh.status, fresh.error_kind.as_deref()),
            (401, Some("missing_api_key"))
        );
        let mut streamed = LogRecord::default();
        streamed.end_body(
            Some(meta(Some("STOP"), None, None)),
            Some(("client_disconnected", "gone")),
        );
        assert_eq!(streamed.prompt_tokens, Some(3));
        assert_eq!(streamed.error_kind.as_deref(), Some("client_disconnected"));
    }
}
