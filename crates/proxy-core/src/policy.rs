//! What a proxy key may do: the operator's policy for each client key, checked once by
//! the core's admission ([`crate::request::Admission::authorize`] for the route and the
//! expiry, [`crate::request::Authorized::with_body`] for the model and, through
//! [`crate::governance::Governor`], the rates and the budget), so the binary, the
//! dashboard's proxy route and the Worker refuse the same requests.

use serde::{Deserialize, Serialize};

use crate::error::ProxyError;
use crate::route::{Operation, Route};

/// One proxy key's policy. Every field defaults to what a key could do before the field
/// existed, so keys created earlier, stores that keep no policy (the Worker's secrets)
/// and key caches written by an older build all mean "as before": no limit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyKeyPolicy {
    /// May call the pass-through routes ([`Operation::Passthrough`]: `files`,
    /// `cachedContents`, `tunedModels`, `batches`, `operations`, …), which act on the
    /// resources of the pool's projects, whoever made them. Without it a key is limited
    /// to generation, token counting, embeddings and the model list.
    pub passthrough: bool,
    /// Models the key may use: exact names or globs (`gemini-2.5-*`); empty, any.
    pub models: Vec<String>,
    /// Requests per minute.
    pub rpm: Option<u64>,
    /// Tokens per minute (what answers used).
    pub tpm: Option<u64>,
    /// Tokens per day (UTC).
    pub tokens_per_day: Option<u64>,
    /// A budget in USD per [`ProxyKeyPolicy::budget_period`].
    pub budget_usd: Option<f64>,
    pub budget_period: BudgetPeriod,
    /// Unix ms after which the key is refused.
    pub expires_at_ms: Option<u64>,
}

/// A policy's budget is never NaN (every input path parses it to a finite number ≥ 0),
/// so equality is total.
impl Eq for ProxyKeyPolicy {}

/// What a budget is counted over (UTC calendar).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetPeriod {
    Day,
    #[default]
    Month,
}

impl BudgetPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "day" | "daily" => Some(Self::Day),
            "month" | "monthly" => Some(Self::Month),
            _ => None,
        }
    }
}

impl Default for ProxyKeyPolicy {
    fn default() -> Self {
        Self {
            passthrough: true,
            models: Vec::new(),
            rpm: None,
            tpm: None,
            tokens_per_day: None,
            budget_usd: None,
            budget_period: BudgetPeriod::default(),
            expires_at_ms: None,
        }
    }
}

impl ProxyKeyPolicy {
    /// Refuses a request on `route` this policy does not allow.
    pub fn check_route(&self, route: &Route) -> Result<(), ProxyError> {
        if route.operation == Operation::Passthrough && !self.passthrough {
            return Err(ProxyError::PassthroughDenied);
        }
        Ok(())
    }

    /// Refuses a key past its expiry.
    pub fn check_expiry(&self, now_ms: u64) -> Result<(), ProxyError> {
        match self.expires_at_ms {
            Some(expires_at_ms) if now_ms >= expires_at_ms => Err(ProxyError::KeyExpired { expires_at_ms }),
            _ => Ok(()),
        }
    }

    /// Refuses a model the key may not use. A request that names no model (the model
    /// list, pass-through routes) passes.
    pub fn check_model(&self, model: Option<&str>) -> Result<(), ProxyError> {
        let Some(model) = model else { return Ok(()) };
        let model = model.trim_start_matches("models/");
        if self.models.is_empty() || self.models.iter().any(|pattern| glob_matches(pattern, model)) {
            return Ok(());
        }
        Err(ProxyError::ModelNotAllowed {
            model: model.to_string(),
            allowed: self.models.join(", "),
        })
    }

    /// Whether the governor counts what this key's answers use (tokens, cost).
    pub fn meters_usage(&self) -> bool {
        self.tpm.is_some() || self.tokens_per_day.is_some() || self.budget_usd.is_some()
    }

    /// Whether any limit the governor counts is set (a key without one costs no count).
    pub fn has_limits(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some() || self.tokens_per_day.is_some() || self.budget_usd.is_some()
    }
}

/// `*` matches any run of characters (none included); everything else itself.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern = pattern.trim_start_matches("models/");
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::parse_route;

    fn check(policy: &ProxyKeyPolicy, path: &str, bearer: bool) -> Result<(), ProxyError> {
        let route = parse_route(path, bearer).unwrap_or_else(|e| panic!("{path}: {e}"));
        policy.check_route(&route)
    }

    #[test]
    fn the_default_allows_everything_a_key_could_do_before() {
        let policy = ProxyKeyPolicy::default();
        assert!(policy.passthrough);
        for path in ["/v1beta/files", "/v1beta/cachedContents/c1", "/v1/tunedModels"] {
            assert_eq!(check(&policy, path, false), Ok(()), "{path}");
        }
        // An older key cache (or a store row) without the field reads as the default.
        let old: ProxyKeyPolicy = serde_json::from_str("{}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(old, policy);
    }

    #[test]
    fn without_passthrough_only_generation_embeddings_and_models_pass() {
        let policy = ProxyKeyPolicy {
            passthrough: false,
            ..ProxyKeyPolicy::default()
        };
        for path in [
            "/v1beta/files",
            "/v1beta/files/abc",
            "/v1beta/cachedContents",
            "/v1beta/tunedModels/t1",
            "/v1beta/batches/b1:cancel",
            "/v1beta/operations",
            "/v1/files",
            "/v1beta/models/gemini-2.5-flash:batchGenerateContent",
            "/v1beta/openai/files",
            "/v1beta/openai/batches",
        ] {
            assert_eq!(
                check(&policy, path, false),
                Err(ProxyError::PassthroughDenied),
                "{path}"
            );
        }
        for (path, bearer) in [
            ("/v1beta/models/gemini-2.5-flash:generateContent", false),
            ("/v1beta/models/gemini-2.5-flash:streamGenerateContent", false),
            ("/v1/models/gemini-2.5-flash:countTokens", false),
            ("/v1beta/models/text-embedding-004:embedContent", false),
            ("/v1beta/models/text-embedding-004:batchEmbedContents", false),
            ("/v1beta/models", false),
            ("/v1beta/models/gemini-2.5-flash", false),
            ("/v1beta/openai/chat/completions", true),
            ("/v1/embeddings", true),
            ("/v1/models", true),
        ] {
            assert_eq!(check(&policy, path, bearer), Ok(()), "{path}");
        }
    }

    #[test]
    fn model_globs_match_whole_names() {
        for (pattern, model, matches) in [
            ("gemini-2.5-flash", "gemini-2.5-flash", true),
            ("gemini-2.5-flash", "gemini-2.5-flash-lite", false),
            ("gemini-2.5-*", "gemini-2.5-flash-lite", true),
            ("gemini-2.5-*", "gemini-2.0-flash", false),
            ("*-lite", "gemini-2.5-flash-lite", true),
            ("*-lite", "gemini-2.5-flash", false),
            ("gemini-*-flash", "gemini-2.5-flash", true),
            ("gemini-*-flash", "gemini-2.5-flash-lite", false),
            ("*", "anything", true),
            ("a*a", "a", false),
            ("models/gemini-2.5-*", "gemini-2.5-pro", true),
        ] {
            assert_eq!(glob_matches(pattern, model), matches, "{pattern} ~ {model}");
        }
    }

    #[test]
    fn a_model_list_admits_its_models_and_names_the_limit_otherwise() {
        let policy = ProxyKeyPolicy {
            models: vec!["gemini-2.5-flash".into(), "gemini-2.0-*".into()],
            ..ProxyKeyPolicy::default()
        };
        assert_eq!(policy.check_model(Some("gemini-2.5-flash")), Ok(()));
        assert_eq!(policy.check_model(Some("models/gemini-2.0-flash-lite")), Ok(()));
        assert_eq!(
            policy.check_model(None),
            Ok(()),
            "no model named: nothing to refuse"
        );
        let error = policy.check_model(Some("gemini-2.5-pro")).err();
        let message = error.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(
            message.contains("(model: it may use gemini-2.5-flash, gemini-2.0-*)")
                && message.contains("gemini-2.5-pro"),
            "{message}"
        );
        assert_eq!(error.map(|e| e.status_code()), Some(403));
        assert_eq!(ProxyKeyPolicy::default().check_model(Some("x")), Ok(()));
    }

    #[test]
    fn a_key_expires_at_its_instant() {
        let policy = ProxyKeyPolicy {
            expires_at_ms: Some(1_000),
            ..ProxyKeyPolicy::default()
        };
        assert_eq!(policy.check_expiry(999), Ok(()));
        let error = policy.check_expiry(1_000).err();
        assert_eq!(error.as_ref().map(ProxyError::status_code), Some(403));
        let message = error.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("(expired at 1970-01-01T00:00:01Z)"), "{message}");
        assert_eq!(ProxyKeyPolicy::default().check_expiry(u64::MAX), Ok(()));
    }
}
