//! What kind of failure a logged request was, in the four classes an operator acts on
//! differently: a safety block that still came back as HTTP 200 (the prompt), no key
//! free (add keys or wait), a client mistake (the app), and an upstream or proxy error
//! (Google or this server). One error rate mixing them says none of that.
//!
//! Stores count failed records per *failure key* ([`failure_key`]): the record's
//! `error_kind`, or `status_NNN` for a failed status without one. The SQL of
//! `usage_buckets` spells the same rule (`coalesce(error_kind, 'status_' || status)`);
//! which class a key falls in is decided here alone, so a new kind needs no migration.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The answer was HTTP 200 but blocked or cut short by safety (or another
    /// non-STOP finish): the prompt or the content, not the service.
    Blocked,
    /// Every key for the model was cooling down, at its limits or invalid, or the
    /// model's breaker or queue refused: the pool is too small for the load.
    NoKeyFree,
    /// The client's request or its proxy key was refused: bad body, unknown key,
    /// a limit or budget of the proxy key, a model it may not use.
    Client,
    /// Google answered 5xx, timed out or was unreachable, or the proxy failed.
    Upstream,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 4] = [Self::Blocked, Self::NoKeyFree, Self::Client, Self::Upstream];

    pub fn name(self) -> &'static str {
        match self {
            Self::Blocked => "blocked",
            Self::NoKeyFree => "no_key_free",
            Self::Client => "client",
            Self::Upstream => "upstream",
        }
    }

    /// The dashboard's words for it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Blocked => "safety blocks (HTTP 200)",
            Self::NoKeyFree => "no key free",
            Self::Client => "client mistakes",
            Self::Upstream => "upstream errors",
        }
    }

    /// The class of a failure key (see the module's note).
    pub fn of(failure_key: &str) -> ErrorClass {
        match failure_key {
            "blocked" | "incomplete_answer" => Self::Blocked,
            "all_keys_cooling"
            | "rate_limited"
            | "upstream_key_limits"
            | "no_upstream_key"
            | "breaker_open"
            | "queue_full"
            | "key_invalid" => Self::NoKeyFree,
            "missing_api_key"
            | "invalid_api_key"
            | "invalid_metrics_token"
            | "revoked_api_key"
            | "passthrough_denied"
            | "bad_request"
            | "body_too_large"
            | "body_too_slow"
            | "not_found"
            | "client_error"
            | "client_disconnected" => Self::Client,
            kind if kind.starts_with("limit_") => Self::Client,
            kind => match kind.strip_prefix("status_").and_then(|s| s.parse::<u16>().ok()) {
                // A 429 is always a quota, never the client's mistake.
                Some(429) => Self::NoKeyFree,
                Some(status) if (400..500).contains(&status) => Self::Client,
                _ => Self::Upstream,
            },
        }
    }
}

/// The key a failed record is counted under, `None` for a record that did not fail
/// (status below 400 and no error kind).
pub fn failure_key(status: u16, error_kind: Option<&str>) -> Option<Cow<'_, str>> {
    match error_kind {
        Some(kind) => Some(Cow::Borrowed(kind)),
        None if status >= 400 => Some(Cow::Owned(format!("status_{status}"))),
        None => None,
    }
}

/// Failed records per class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ErrorClasses {
    pub blocked: u64,
    pub no_key_free: u64,
    pub client: u64,
    pub upstream: u64,
}

impl ErrorClasses {
    /// Folds counts per failure key into classes.
    pub fn of(counts: &BTreeMap<String, u64>) -> ErrorClasses {
        let mut classes = ErrorClasses::default();
        for (key, n) in counts {
            *classes.slot(ErrorClass::of(key)) += n;
        }
        classes
    }

    pub fn get(&self, class: ErrorClass) -> u64 {
        match class {
            ErrorClass::Blocked => self.blocked,
            ErrorClass::NoKeyFree => self.no_key_free,
            ErrorClass::Client => self.client,
            ErrorClass::Upstream => self.upstream,
        }
    }

    fn slot(&mut self, class: ErrorClass) -> &mut u64 {
        match class {
            ErrorClass::Blocked => &mut self.blocked,
            ErrorClass::NoKeyFree => &mut self.no_key_free,
            ErrorClass::Client => &mut self.client,
            ErrorClass::Upstream => &mut self.upstream,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ClientLimit, ProxyError};

    #[test]
    fn failure_key_is_the_kind_or_the_status() {
        assert_eq!(failure_key(200, None), None);
        assert_eq!(failure_key(200, Some("blocked")).as_deref(), Some("blocked"));
        assert_eq!(failure_key(404, None).as_deref(), Some("status_404"));
        assert_eq!(
            failure_key(503, Some("upstream_unavailable")).as_deref(),
            Some("upstream_unavailable")
        );
    }

    #[test]
    fn the_proxys_own_refusals_fall_where_an_operator_acts_on_them() {
        let cases = [
            (ProxyError::MissingKey, ErrorClass::Client),
            (ProxyError::UnknownKey, ErrorClass::Client),
            (ProxyError::RevokedKey, ErrorClass::Client),
            (ProxyError::PassthroughDenied, ErrorClass::Client),
            (ProxyError::BadRequest("x".into()), ErrorClass::Client),
            (ProxyError::NotFound("x".into()), ErrorClass::Client),
            (
                ProxyError::OverLimit {
                    which: ClientLimit::Rpm,
                    limit: 1,
                    retry_after_secs: 1,
                },
                ErrorClass::Client,
            ),
            (
                ProxyError::AllKeysCooling {
                    model: "m".into(),
                    retry_after_secs: 1,
                },
                ErrorClass::NoKeyFree,
            ),
            (ProxyError::NoKeys("x".into()), ErrorClass::NoKeyFree),
            (ProxyError::UpstreamTimeout, ErrorClass::Upstream),
            (ProxyError::UpstreamUnreachable, ErrorClass::Upstream),
            (ProxyError::Internal, ErrorClass::Upstream),
        ];
        for (error, class) in cases {
            assert_eq!(ErrorClass::of(error.kind()), class, "{}", error.kind());
        }
    }

    #[test]
    fn answers_and_statuses_are_classed() {
        assert_eq!(ErrorClass::of("blocked"), ErrorClass::Blocked);
        assert_eq!(ErrorClass::of("incomplete_answer"), ErrorClass::Blocked);
        assert_eq!(ErrorClass::of("upstream_stream_error"), ErrorClass::Upstream);
        assert_eq!(
            ErrorClass::of("upstream_stream_interrupted"),
            ErrorClass::Upstream
        );
        assert_eq!(ErrorClass::of("client_disconnected"), ErrorClass::Client);
        assert_eq!(ErrorClass::of("status_400"), ErrorClass::Client);
        assert_eq!(ErrorClass::of("status_429"), ErrorClass::NoKeyFree);
        assert_eq!(ErrorClass::of("status_502"), ErrorClass::Upstream);
        assert_eq!(ErrorClass::of("something_new"), ErrorClass::Upstream);
    }

    #[test]
    fn counts_fold_into_classes() {
        let counts = BTreeMap::from([
            ("blocked".to_string(), 2),
            ("all_keys_cooling".to_string(), 3),
            ("limit_rpm".to_string(), 1),
            ("status_404".to_string(), 4),
            ("upstream_timeout".to_string(), 5),
        ]);
        let classes = ErrorClasses::of(&counts);
        assert_eq!(
            classes,
            ErrorClasses {
                blocked: 2,
                no_key_free: 3,
                client: 5,
                upstream: 5
            }
        );
        assert_eq!(classes.get(ErrorClass::Client), 5);
    }
}
