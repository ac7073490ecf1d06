//! "Re-check now" for one upstream key: the cheapest call that proves a key works
//! (list one model, which spends no generation quota), classified the way the request
//! path classifies answers.

use bytes::Bytes;

use crate::classify::{Outcome, classify};
use crate::engine::Engine;
use crate::keys::KeyId;
use crate::platform::{Clock, ModelIn, PreparedRequest, TransportError, Upstream};
use crate::pool::StateChange;

/// Lists a single model: a valid key gets 200, a broken one the same 400/403 reasons a
/// generation call would.
pub const KEY_CHECK_PATH: &str = "/v1beta/models?pageSize=1";

/// A key check waits at most this long for upstream's headers.
const CHECK_TIMEOUT_MS: u64 = 15_000;

/// What one check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyCheck {
    pub outcome: Outcome,
    /// An invalid mark the pool took and the store should keep. A 429 here is about the
    /// key as a whole, not a model, so it cools nothing down.
    pub change: Option<StateChange>,
}

impl KeyCheck {
    /// One word for the outcome, for messages and logs.
    pub fn verdict(&self) -> &'static str {
        match self.outcome {
            Outcome::Success => "valid",
            Outcome::KeyInvalid { .. } => "invalid",
            Outcome::RateLimited { .. } => "rate_limited",
            Outcome::ServerError { .. } | Outcome::Transport { .. } => "unreachable",
            Outcome::ClientError { .. } => "refused",
        }
    }
}

impl<U: Upstream, C: Clock> Engine<U, C> {
    /// Checks the key with `key_id` against upstream; `None` when the pool has no such key.
    pub async fn check_key(&self, key_id: KeyId) -> Option<KeyCheck> {
        let secret = self.lock_pool().secret_of(key_id)?;
        let request = PreparedRequest {
            method: "GET".into(),
            path_and_query: KEY_CHECK_PATH.into(),
            headers: Vec::new(),
            body: Bytes::new(),
            model_in: ModelIn::Nowhere,
            empty_check: Default::default(),
            empty_hold_ms: 0,
            stream: false,
        };
        let started = self.clock().now_ms();
        let answer = match self.upstream().send(&request, &secret, CHECK_TIMEOUT_MS).await {
            Ok(response) if (200..300).contains(&response.status) => Ok(None),
            Ok(response) => {
                let left = CHECK_TIMEOUT_MS.saturating_sub(self.clock().now_ms().saturating_sub(started));
                let body = self
                    .upstream()
                    .read_body(response.inner, 64 * 1024, left.max(1))
                    .await;
                body.map(|body| Some((response.status, body)))
            }
            Err(error) => Err(error),
        };
        let outcome = match answer {
            Ok(None) => Outcome::Success,
            Ok(Some((status, body))) => classify(status, &body, self.clock().now_ms()),
            Err(error) => Outcome::Transport {
                timeout: error == TransportError::Timeout,
            },
        };
        // The operator asked: the burst guard is for marks requests cause.
        let change = match &outcome {
            Outcome::KeyInvalid { reason } => self.lock_pool().mark_invalid(key_id, reason),
            _ => None,
        };
        Some(KeyCheck { outcome, change })
    }
}
