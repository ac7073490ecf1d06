//! The proxy's own errors and the two JSON shapes clients expect them in.

use serde_json::json;

/// Which error JSON the client understands: Gemini's `{"error":{code,message,status}}`
/// or OpenAI's `{"error":{message,type,code,param}}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorShape {
    Gemini,
    OpenAi,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error(
        "Missing API key. Send your proxy key as the x-goog-api-key header, the key query parameter, or Authorization: Bearer."
    )]
    MissingKey,
    #[error("API key not valid for this proxy. Use a proxy key issued by `gemini-proxy proxy-keys create`.")]
    UnknownKey,
    #[error("This proxy key has been revoked.")]
    RevokedKey,
    /// `GET /metrics` without the operator's metrics token (`--metrics-token`).
    #[error("GET /metrics needs Authorization: Bearer <the metrics token>.")]
    MetricsToken,
    /// The key's policy keeps it off the pass-through routes (`policy::ProxyKeyPolicy`).
    #[error(
        "This proxy key may not use the pass-through routes (files, cachedContents, tunedModels, batches, operations, …); it is limited to generation, embeddings and models."
    )]
    PassthroughDenied,
    /// Past the key's `expires_at` (`policy::ProxyKeyPolicy`).
    #[error("This proxy key has expired (expired at {}).", crate::civil::format_utc(*expires_at_ms))]
    KeyExpired { expires_at_ms: u64 },
    /// The key's policy lists models and this is not one of them.
    #[error("This proxy key may not use model {model} (model: it may use {allowed}).")]
    ModelNotAllowed { model: String, allowed: String },
    /// A rate limit of the key (`rpm`, `tpm`, `tokens-per-day`) is reached until its
    /// window ends.
    #[error("This proxy key is over its {} limit ({limit} {}); retry after {retry_after_secs} s.", which.name(), which.unit())]
    OverLimit {
        which: ClientLimit,
        limit: u64,
        retry_after_secs: u64,
    },
    /// The key's budget for the period is spent.
    #[error("This proxy key has spent its budget (budget: {} per {}, UTC).", crate::governance::prices::format_usd(*budget_nanos), period.as_str())]
    BudgetSpent {
        budget_nanos: u64,
        period: crate::policy::BudgetPeriod,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("Request body exceeds the proxy's limit of {limit_bytes} bytes.")]
    BodyTooLarge { limit_bytes: usize },
    /// The request bodies being read at once already fill the server's memory budget
    /// for them; a moment later there is room again.
    #[error("The proxy is reading too many request bodies at once; retry after {retry_after_secs} s.")]
    Busy { retry_after_secs: u64 },
    /// The body arrived slower than the server's minimum rate (a stalled client).
    #[error(
        "The request body arrived too slowly (under {min_bytes_per_sec} bytes/s after the first {grace_secs} s)."
    )]
    BodyTooSlow { min_bytes_per_sec: u64, grace_secs: u64 },
    #[error("No route for {0}. The proxy serves /v1beta/... and /v1/... like the Gemini API.")]
    NotFound(String),
    #[error("Every upstream key is cooling down for model {model}; retry after {retry_after_secs} s.")]
    AllKeysCooling { model: String, retry_after_secs: u64 },
    /// The attempt cap (or deadline) was reached and every key tried was rate limited.
    #[error("Every upstream key tried was rate limited for model {model}; retry after {retry_after_secs} s.")]
    RateLimited { model: String, retry_after_secs: u64 },
    /// Every usable key is at an operator's limit (rpm, tpm, rpd) for the model.
    #[error(
        "Every upstream key is at its configured limit (rpm, tpm or rpd) for model {model}; retry after {retry_after_secs} s."
    )]
    KeysAtLimit { model: String, retry_after_secs: u64 },
    /// The model's circuit breaker is open: its recent upstream calls kept failing
    /// with 5xx, so the proxy does not call it until the pause ends.
    #[error(
        "Model {model} is unavailable: its recent upstream calls kept failing, so the proxy is pausing it; retry after {retry_after_secs} s."
    )]
    ModelUnavailable { model: String, retry_after_secs: u64 },
    /// No key has room for the model and the queue for one is full.
    #[error(
        "No upstream key has room for model {model} and the proxy's queue for one is full; retry after {retry_after_secs} s."
    )]
    QueueFull { model: String, retry_after_secs: u64 },
    #[error("No usable upstream key: {0}")]
    NoKeys(String),
    #[error("Upstream did not answer in time.")]
    UpstreamTimeout,
    #[error("Could not reach the upstream Gemini API.")]
    UpstreamUnreachable,
    /// Gemini never redirects; a 3xx means a misconfigured base URL or something in
    /// between, and following it would hand the key to wherever it points.
    #[error("Upstream answered with a redirect ({status}), which the proxy does not follow.")]
    UpstreamRedirect { status: u16 },
    #[error("Internal proxy error.")]
    Internal,
}

/// A proxy key's rate limits, as their refusals name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientLimit {
    Rpm,
    Tpm,
    TokensPerDay,
}

impl ClientLimit {
    /// The limit's name, as the CLI's flag and the refusal's message spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rpm => "rpm",
            Self::Tpm => "tpm",
            Self::TokensPerDay => "tokens-per-day",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Self::Rpm => "requests per minute",
            Self::Tpm => "tokens per minute",
            Self::TokensPerDay => "tokens per day, UTC",
        }
    }

    /// The log's error kind.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Rpm => "limit_rpm",
            Self::Tpm => "limit_tpm",
            Self::TokensPerDay => "limit_tokens_per_day",
        }
    }
}

/// A store could not do what was asked: it is unreachable, or the input was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Invalid(String),
}

impl ProxyError {
    pub fn status_code(&self) -> u16 {
        match self {
            Self::MissingKey | Self::UnknownKey | Self::MetricsToken => 401,
            Self::RevokedKey
            | Self::PassthroughDenied
            | Self::KeyExpired { .. }
            | Self::ModelNotAllowed { .. }
            | Self::BudgetSpent { .. } => 403,
            Self::OverLimit { .. } | Self::KeysAtLimit { .. } | Self::QueueFull { .. } => 429,
            Self::BadRequest(_) => 400,
            Self::BodyTooLarge { .. } => 413,
            Self::BodyTooSlow { .. } => 408,
            Self::Busy { .. } => 503,
            Self::NotFound(_) => 404,
            Self::AllKeysCooling { .. } | Self::RateLimited { .. } => 429,
            Self::NoKeys(_) | Self::ModelUnavailable { .. } => 503,
            Self::UpstreamTimeout => 504,
            Self::UpstreamUnreachable | Self::UpstreamRedirect { .. } => 502,
            Self::Internal => 500,
        }
    }

    /// Google's canonical status name for the Gemini error shape.
    pub fn grpc_status(&self) -> &'static str {
        match self {
            Self::MissingKey | Self::UnknownKey | Self::MetricsToken => "UNAUTHENTICATED",
            Self::RevokedKey
            | Self::PassthroughDenied
            | Self::KeyExpired { .. }
            | Self::ModelNotAllowed { .. }
            | Self::BudgetSpent { .. } => "PERMISSION_DENIED",
            Self::OverLimit { .. } | Self::KeysAtLimit { .. } | Self::QueueFull { .. } => {
                "RESOURCE_EXHAUSTED"
            }
            Self::BadRequest(_) | Self::BodyTooLarge { .. } => "INVALID_ARGUMENT",
            Self::BodyTooSlow { .. } => "DEADLINE_EXCEEDED",
            Self::Busy { .. } => "UNAVAILABLE",
            Self::NotFound(_) => "NOT_FOUND",
            Self::AllKeysCooling { .. } | Self::RateLimited { .. } => "RESOURCE_EXHAUSTED",
            Self::NoKeys(_)
            | Self::ModelUnavailable { .. }
            | Self::UpstreamUnreachable
            | Self::UpstreamRedirect { .. } => "UNAVAILABLE",
            Self::UpstreamTimeout => "DEADLINE_EXCEEDED",
            Self::Internal => "INTERNAL",
        }
    }

    /// Short machine-readable kind, used as the log's error kind and OpenAI's `code`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MissingKey => "missing_api_key",
            Self::UnknownKey => "invalid_api_key",
            Self::MetricsToken => "invalid_metrics_token",
            Self::RevokedKey => "revoked_api_key",
            Self::PassthroughDenied => "passthrough_denied",
            Self::KeyExpired { .. } => "limit_expired",
            Self::ModelNotAllowed { .. } => "limit_model",
            Self::OverLimit { which, .. } => which.kind(),
            Self::BudgetSpent { .. } => "limit_budget",
            Self::KeysAtLimit { .. } => "upstream_key_limits",
            Self::BadRequest(_) => "bad_request",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::BodyTooSlow { .. } => "body_too_slow",
            Self::Busy { .. } => "body_memory_full",
            Self::NotFound(_) => "not_found",
            Self::AllKeysCooling { .. } => "all_keys_cooling",
            Self::RateLimited { .. } => "rate_limited",
            Self::NoKeys(_) => "no_upstream_key",
            Self::ModelUnavailable { .. } => "breaker_open",
            Self::QueueFull { .. } => "queue_full",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::UpstreamUnreachable => "upstream_connect",
            Self::UpstreamRedirect { .. } => "upstream_redirect",
            Self::Internal => "internal",
        }
    }

    /// Seconds for a `Retry-After` header, when waiting is the remedy.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::AllKeysCooling { retry_after_secs, .. }
            | Self::RateLimited { retry_after_secs, .. }
            | Self::OverLimit { retry_after_secs, .. }
            | Self::KeysAtLimit { retry_after_secs, .. }
            | Self::ModelUnavailable { retry_after_secs, .. }
            | Self::QueueFull { retry_after_secs, .. }
            | Self::Busy { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }

    fn openai_type(&self) -> &'static str {
        match self.status_code() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            400 | 408 | 413 => "invalid_request_error",
            _ => "api_error",
        }
    }

    /// The JSON body for this error in the client's dialect.
    pub fn to_json(&self, shape: ErrorShape) -> String {
        let message = self.to_string();
        let body = match shape {
            ErrorShape::Gemini => json!({"error": {
                "code": self.status_code(),
                "message": message,
                "status": self.grpc_status(),
            }}),
            ErrorShape::OpenAi => json!({"error": {
                "message": message,
                "type": self.openai_type(),
                "code": self.kind(),
                "param": null,
            }}),
        };
        body.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn check(error: ProxyError, status: u16, grpc: &str, openai_type: &str) {
        assert_eq!(error.status_code(), status);
        let gemini: Value = serde_json::from_str(&error.to_json(ErrorShape::Gemini)).unwrap_or_default();
        assert_eq!(gemini["error"]["code"], status);
        assert_eq!(gemini["error"]["status"], grpc);
        assert!(gemini["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        let openai: Value = serde_json::from_str(&error.to_json(ErrorShape::OpenAi)).unwrap_or_default();
        assert_eq!(openai["error"]["type"], openai_type);
        assert_eq!(openai["error"]["code"], error.kind());
    }

    #[test]
    fn shapes_per_error() {
        check(
            ProxyError::MissingKey,
            401,
            "UNAUTHENTICATED",
            "authentication_error",
        );
        check(
            ProxyError::UnknownKey,
            401,
            "UNAUTHENTICATED",
            "authentication_error",
        );
        check(
            ProxyError::MetricsToken,
            401,
            "UNAUTHENTICATED",
            "authentication_error",
        );
        check(
            ProxyError::RevokedKey,
            403,
            "PERMISSION_DENIED",
            "permission_error",
        );
        check(
            ProxyError::PassthroughDenied,
            403,
            "PERMISSION_DENIED",
            "permission_error",
        );
        assert_eq!(ProxyError::PassthroughDenied.kind(), "passthrough_denied");
        check(
            ProxyError::BadRequest("x".into()),
            400,
            "INVALID_ARGUMENT",
            "invalid_request_error",
        );
        let cooling = ProxyError::AllKeysCooling {
            model: "m".into(),
            retry_after_secs: 7,
        };
        assert_eq!(cooling.retry_after_secs(), Some(7));
        check(cooling, 429, "RESOURCE_EXHAUSTED", "rate_limit_error");
        let limited = ProxyError::RateLimited {
            model: "m".into(),
            retry_after_secs: 3,
        };
        assert_eq!(limited.retry_after_secs(), Some(3));
        check(limited, 429, "RESOURCE_EXHAUSTED", "rate_limit_error");
        check(ProxyError::NoKeys("none".into()), 503, "UNAVAILABLE", "api_error");
        let paused = ProxyError::ModelUnavailable {
            model: "m".into(),
            retry_after_secs: 10,
        };
        assert_eq!(paused.retry_after_secs(), Some(10));
        assert_eq!(paused.kind(), "breaker_open");
        check(paused, 503, "UNAVAILABLE", "api_error");
        let full = ProxyError::QueueFull {
            model: "m".into(),
            retry_after_secs: 4,
        };
        assert_eq!((full.retry_after_secs(), full.kind()), (Some(4), "queue_full"));
        check(full, 429, "RESOURCE_EXHAUSTED", "rate_limit_error");
        check(ProxyError::UpstreamTimeout, 504, "DEADLINE_EXCEEDED", "api_error");
        check(
            ProxyError::UpstreamRedirect { status: 302 },
            502,
            "UNAVAILABLE",
            "api_error",
        );
    }
}
