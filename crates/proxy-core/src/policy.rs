//! What a proxy key may do: the operator's policy for each client key, checked once by
//! the core's admission ([`crate::request::Admission::authorize`]), so the binary, the
//! dashboard's proxy route and the Worker refuse the same requests.
//!
//! Today it says whether a key may use the pass-through routes. The governance limits
//! (allowed models, request and token rates, budgets, expiry) are meant to join it as
//! fields here, each with a check the pipeline runs where its input is known.

use serde::{Deserialize, Serialize};

use crate::error::ProxyError;
use crate::route::{Operation, Route};

/// One proxy key's policy. Every field defaults to what a key could do before the field
/// existed, so keys created earlier, stores that keep no policy (the Worker's secrets)
/// and key caches written by an older build all mean "as before".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyKeyPolicy {
    /// May call the pass-through routes ([`Operation::Passthrough`]: `files`,
    /// `cachedContents`, `tunedModels`, `batches`, `operations`, …), which act on the
    /// resources of the pool's projects, whoever made them. Without it a key is limited
    /// to generation, token counting, embeddings and the model list.
    pub passthrough: bool,
}

impl Default for ProxyKeyPolicy {
    fn default() -> Self {
        Self { passthrough: true }
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
        let policy = ProxyKeyPolicy { passthrough: false };
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
}
