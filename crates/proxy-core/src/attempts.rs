//! What one request's attempt loop did, for the log record and the stores.

use crate::key_state::StateChange;
use crate::keys::KeyId;
use crate::trace::AttemptSpan;

/// What happened across a request's attempts, for the log and for the stores.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attempts {
    pub tried: Vec<KeyId>,
    pub answered: Option<KeyId>,
    pub state_changes: Vec<StateChange>,
    /// Error kind and scrubbed message of the last failed attempt.
    pub last_error_kind: Option<&'static str>,
    pub last_error_message: Option<String>,
    /// The model that answered, when a fallback served the request.
    pub served_model: Option<String>,
    /// What the resilience rules did (a fallback, a breaker opened, a retry the
    /// budget refused), for the log record and the platform's log.
    pub notes: Vec<String>,
    /// Each attempt's model, key, outcome and times, for the platform's metrics and
    /// traces.
    pub spans: Vec<AttemptSpan>,
    /// Microseconds spent waiting on something other than the proxy itself: upstream's
    /// answers and the deliberate waits (backoff, the queue). The proxy's own time is
    /// the rest ([`crate::log::LogRecord::overhead_us`]).
    pub waiting_us: u64,
}
