//! Google-style error bodies (`{"error":{"code","message","status","details"}}`)
//! and the failure modes selected by markers in the upstream API key.

use serde::Serialize;
use serde_json::{Value, json};

/// One Google API error. Rendered either bare (native routes) or wrapped in a
/// one-element array (OpenAI-compatible routes), as Google does.
#[derive(Debug, Serialize)]
pub struct ApiError {
    pub code: u16,
    pub message: String,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Value>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: &'a ApiError,
}

impl ApiError {
    pub fn new(code: u16, status: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            status,
            details: Vec::new(),
        }
    }

    /// Serialized body; `openai` wraps it in a JSON array like Google's
    /// OpenAI-compatible endpoints do.
    pub fn body(&self, openai: bool) -> Vec<u8> {
        let env = Envelope { error: self };
        let res = if openai {
            serde_json::to_vec(&[env])
        } else {
            serde_json::to_vec(&env)
        };
        // Serializing plain strings/numbers/Values cannot fail; keep a valid
        // fallback anyway rather than panicking.
        res.unwrap_or_else(|_| br#"{"error":{"code":500,"status":"INTERNAL"}}"#.to_vec())
    }

    pub fn not_found() -> Self {
        Self::new(404, "NOT_FOUND", "Requested entity was not found.")
    }

    pub fn model_not_found(model: &str, version: &str) -> Self {
        Self::new(
            404,
            "NOT_FOUND",
            format!(
                "models/{model} is not found for API version {version}, or is not supported for \
                 generateContent. Call ListModels to see the list of available models and their \
                 supported methods."
            ),
        )
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(400, "INVALID_ARGUMENT", message)
    }

    pub fn invalid_json(detail: &str) -> Self {
        Self::invalid_argument(format!("Invalid JSON payload received. {detail}"))
    }

    /// A top-level body field the method does not have. Google echoes the name, so a
    /// client chooses part of this message.
    pub fn unknown_field(name: &str) -> Self {
        let message = format!("Invalid JSON payload received. Unknown name \"{name}\": Cannot find field.");
        let mut e = Self::invalid_argument(message.clone());
        e.details = vec![json!({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"description": message}],
        })];
        e
    }

    /// A file this key's project cannot see (or that does not exist), its name echoed
    /// from the path as the client wrote it.
    pub fn file_denied(name: &str) -> Self {
        Self::new(
            403,
            "PERMISSION_DENIED",
            format!("You do not have permission to access the File {name} or it may not exist."),
        )
    }

    /// What an OAuth-only method (`corpora`, semantic retrieval) answers an API key.
    pub fn credentials_missing() -> Self {
        let mut e = Self::new(
            401,
            "UNAUTHENTICATED",
            "Request is missing required authentication credential. Expected OAuth 2 access \
             token, login cookie or other valid authentication credential. See \
             https://developers.google.com/identity/sign-in/web/devconsole-project.",
        );
        e.details = vec![error_info("CREDENTIALS_MISSING")];
        e
    }

    pub fn key_in_url() -> Self {
        Self::invalid_argument("API key must not be sent in the URL")
    }

    pub fn missing_key() -> Self {
        Self::new(
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without established identity). \
             Please use API Key or other form of API consumer identity to call this API.",
        )
    }

    pub fn overloaded() -> Self {
        Self::new(
            503,
            "UNAVAILABLE",
            "The model is overloaded. Please try again later.",
        )
    }

    pub fn internal() -> Self {
        Self::new(
            500,
            "INTERNAL",
            "An internal error has occurred. Please retry or report in \
             https://developers.generativeai.google/guide/troubleshooting",
        )
    }

    /// The error element Google emits inside a stream that fails midway.
    pub fn midstream() -> Self {
        Self::new(500, "INTERNAL", "Internal error encountered.")
    }

    pub fn deadline() -> Self {
        Self::new(
            504,
            "DEADLINE_EXCEEDED",
            "Deadline expired before operation could complete.",
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::invalid_argument(format!("Request payload size exceeds the limit: {limit} bytes."))
    }

    /// 429 with the three detail entries real Gemini sends (QuotaFailure,
    /// Help, RetryInfo), so the proxy's quota classification is exercised on
    /// the genuine shape.
    pub fn quota(per_day: bool, model: &str) -> Self {
        let (quota_id, limit, delay) = if per_day {
            ("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "50", "43s")
        } else {
            (
                "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                "15",
                "17s",
            )
        };
        Self::quota_of(quota_id, limit, delay, model)
    }

    /// A per-minute 429 whose RetryInfo says `delay` (e.g. `"2s"`).
    pub fn quota_for(model: &str, delay: &str) -> Self {
        Self::quota_of(
            "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            "15",
            delay,
            model,
        )
    }

    /// 429 for a model the key's project has no quota for at all (`limit: 0`, as free
    /// tiers answer for models they exclude).
    pub fn quota_off(model: &str) -> Self {
        Self::quota_of(
            "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
            "0",
            "30s",
            model,
        )
    }

    fn quota_of(quota_id: &str, limit: &str, delay: &str, model: &str) -> Self {
        let metric = "generativelanguage.googleapis.com/generate_content_free_tier_requests";
        let message = format!(
            "You exceeded your current quota, please check your plan and billing details. For \
             more information on this error, head to: \
             https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, \
             head to: https://ai.dev/usage?tab=rate-limit. \n* Quota exceeded for metric: \
             {metric}, limit: {limit}, model: {model}\nPlease retry in {delay}."
        );
        let mut e = Self::new(429, "RESOURCE_EXHAUSTED", message);
        e.details = vec![
            json!({
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{
                    "quotaMetric": metric,
                    "quotaId": quota_id,
                    "quotaDimensions": {"location": "global", "model": model},
                    "quotaValue": limit,
                }],
            }),
            json!({
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [{
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                }],
            }),
            json!({
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": delay,
            }),
        ];
        e
    }

    fn key_invalid() -> Self {
        let mut e = Self::invalid_argument("API key not valid. Please pass a valid API key.");
        e.details = vec![error_info("API_KEY_INVALID")];
        e
    }

    /// Echoes the full key on purpose, like Google: the proxy must scrub it.
    fn suspended(key: &str) -> Self {
        let mut e = Self::new(
            403,
            "PERMISSION_DENIED",
            format!("Permission denied: Consumer 'api_key:{key}' has been suspended."),
        );
        e.details = vec![error_info("CONSUMER_SUSPENDED")];
        e
    }
}

fn error_info(reason: &str) -> Value {
    json!({
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    })
}

/// What a marker inside the upstream key asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyMarker {
    QuotaMinute,
    QuotaDay,
    /// The model's quota is 0 for this key (`-r429off-`).
    QuotaOff,
    Invalid,
    Suspended,
    Unavailable,
    Internal,
    Deadline,
    /// Never answer (timeout tests).
    Hang,
    /// Close the connection without a response.
    Reset,
    /// Answer 302 to the fake's redirect target (an upstream must never follow it).
    Redirect,
    /// Send a 429's headers and half its body, then stall (deadline tests).
    StallBody,
    /// Answer a non-streamed generate or chat request with 200 and nothing in it (no
    /// parts, finish STOP), as Gemini sometimes does (`-empty-`).
    Empty,
    /// The key's first request gets a per-minute 429 retrying after 2 s; later ones
    /// are answered (`-once429-`, queue tests).
    OnceLimited,
    /// Every answer comes after `SLOW_HEADERS` (`-slowkey-`, hedging tests).
    SlowKey,
}

impl KeyMarker {
    /// Cheap on the hot path: one `contains` on the key unless it has a '-'
    /// followed by a marker, which success keys in a benchmark usually lack.
    pub fn find(key: &str) -> Option<KeyMarker> {
        const MARKERS: [(&str, KeyMarker); 15] = [
            ("-r429m-", KeyMarker::QuotaMinute),
            ("-r429d-", KeyMarker::QuotaDay),
            ("-r429off-", KeyMarker::QuotaOff),
            ("-invalid-", KeyMarker::Invalid),
            ("-suspended-", KeyMarker::Suspended),
            ("-r503-", KeyMarker::Unavailable),
            ("-r500-", KeyMarker::Internal),
            ("-r504-", KeyMarker::Deadline),
            ("-hang-", KeyMarker::Hang),
            ("-reset-", KeyMarker::Reset),
            ("-r302-", KeyMarker::Redirect),
            ("-stallbody-", KeyMarker::StallBody),
            ("-empty-", KeyMarker::Empty),
            ("-once429-", KeyMarker::OnceLimited),
            ("-slowkey-", KeyMarker::SlowKey),
        ];
        if !key.contains('-') {
            return None;
        }
        MARKERS.iter().find(|(m, _)| key.contains(m)).map(|&(_, k)| k)
    }

    /// The error to answer with; `None` for the markers that do not answer
    /// with a whole error body in one go (hang, reset, redirect, stall).
    pub fn error(self, key: &str, model: &str) -> Option<ApiError> {
        Some(match self {
            KeyMarker::QuotaMinute => ApiError::quota(false, model),
            KeyMarker::QuotaDay => ApiError::quota(true, model),
            KeyMarker::QuotaOff => ApiError::quota_off(model),
            KeyMarker::Invalid => ApiError::key_invalid(),
            KeyMarker::Suspended => ApiError::suspended(key),
            KeyMarker::Unavailable => ApiError::overloaded(),
            KeyMarker::Internal => ApiError::internal(),
            KeyMarker::Deadline => ApiError::deadline(),
            KeyMarker::Hang
            | KeyMarker::Reset
            | KeyMarker::Redirect
            | KeyMarker::StallBody
            | KeyMarker::Empty
            | KeyMarker::OnceLimited
            | KeyMarker::SlowKey => return None,
        })
    }
}
