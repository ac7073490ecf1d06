//! Refusals of requests without a live proxy key (missing, unknown or revoked key, a
//! path that is not the API's) are counted, and only a sample is logged: anyone can
//! send them, so one row each would let a stranger flood the request log (184k rows,
//! 56 MiB in 10 s, measured). Requests from a live proxy key are always logged.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::reply::Refusal;

/// Counting restarts each window.
pub const SAMPLE_WINDOW_MS: u64 = 60_000;
/// Refusals logged per client address and reason in each window; the rest are counted.
pub const SAMPLED_PER_SOURCE: u32 = 5;
/// Distinct (address, reason) pairs tracked per window; past it, only counts grow.
const MAX_SOURCES: usize = 10_000;

#[derive(Debug, Default)]
struct Window {
    started_ms: u64,
    per_source: HashMap<(String, &'static str), u32>,
}

#[derive(Debug, Default)]
struct Counts {
    window: Window,
    /// Unauthenticated refusals per reason since start, logged or not.
    by_reason: BTreeMap<&'static str, u64>,
    not_logged: u64,
}

/// Decides which unauthenticated refusals are logged; shared by all requests.
#[derive(Debug, Default)]
pub struct RefusalSampler {
    counts: Mutex<Counts>,
}

/// What `/healthz` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefusalCounts {
    pub by_reason: BTreeMap<String, u64>,
    pub not_logged: u64,
}

impl RefusalSampler {
    /// Whether to log `refusal`, from `client` (its address, when the platform knows
    /// it), at `now_ms`.
    pub fn keep(&self, refusal: &Refusal, client: Option<&str>, now_ms: u64) -> bool {
        let Some(reason) = unauthenticated_reason(refusal) else {
            return true;
        };
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts.by_reason.entry(reason).or_default() += 1;
        let window = &mut counts.window;
        if now_ms.saturating_sub(window.started_ms) >= SAMPLE_WINDOW_MS {
            *window = Window {
                started_ms: now_ms,
                per_source: HashMap::new(),
            };
        }
        let source = (client.unwrap_or("unknown").to_string(), reason);
        let full = window.per_source.len() >= MAX_SOURCES;
        let seen = match window.per_source.get_mut(&source) {
            Some(seen) => seen,
            None if full => {
                counts.not_logged += 1;
                return false;
            }
            None => window.per_source.entry(source).or_default(),
        };
        *seen += 1;
        let keep = *seen <= SAMPLED_PER_SOURCE;
        if !keep {
            counts.not_logged += 1;
        }
        keep
    }

    pub fn counts(&self) -> RefusalCounts {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        RefusalCounts {
            by_reason: counts
                .by_reason
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            not_logged: counts.not_logged,
        }
    }
}

/// The error kind of a refusal that no live proxy key stands behind.
fn unauthenticated_reason(refusal: &Refusal) -> Option<&'static str> {
    const KINDS: [&str; 5] = [
        "missing_api_key",
        "invalid_api_key",
        "revoked_api_key",
        "not_found",
        "bad_request",
    ];
    let record = &refusal.record;
    let kind = record.error_kind.as_deref()?;
    let live_key = record.proxy_key_id.is_some() && kind != "revoked_api_key";
    if live_key {
        return None;
    }
    KINDS.into_iter().find(|k| *k == kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorShape, ProxyError};
    use crate::log::LogRecord;

    fn refusal(error: ProxyError, proxy_key_id: Option<i64>) -> Refusal {
        let record = LogRecord {
            proxy_key_id,
            ..LogRecord::default()
        };
        Refusal::new(record, ErrorShape::Gemini, &error)
    }

    #[test]
    fn a_sample_per_source_and_reason_per_window_and_every_one_counted() {
        let sampler = RefusalSampler::default();
        let unknown = refusal(ProxyError::UnknownKey, None);
        let kept = (0..100)
            .filter(|_| sampler.keep(&unknown, Some("10.0.0.1"), 1_000))
            .count();
        assert_eq!(kept, SAMPLED_PER_SOURCE as usize);
        assert!(sampler.keep(&unknown, Some("10.0.0.2"), 1_000), "another source");
        assert!(sampler.keep(&refusal(ProxyError::MissingKey, None), Some("10.0.0.1"), 1_000));
        assert!(
            sampler.keep(&unknown, Some("10.0.0.1"), 1_000 + SAMPLE_WINDOW_MS),
            "next window"
        );
        let counts = sampler.counts();
        assert_eq!(counts.by_reason.get("invalid_api_key"), Some(&102));
        assert_eq!(counts.by_reason.get("missing_api_key"), Some(&1));
        assert_eq!(counts.not_logged, 95);
    }

    #[test]
    fn a_live_proxy_key_is_always_logged() {
        let sampler = RefusalSampler::default();
        let own = refusal(ProxyError::BadRequest("x".into()), Some(7));
        assert!((0..100).all(|_| sampler.keep(&own, None, 0)));
        let upstream = refusal(ProxyError::UpstreamTimeout, None);
        assert!((0..100).all(|_| sampler.keep(&upstream, None, 0)));
        let revoked = refusal(ProxyError::RevokedKey, Some(7));
        let kept = (0..100).filter(|_| sampler.keep(&revoked, None, 0)).count();
        assert_eq!(
            kept, SAMPLED_PER_SOURCE as usize,
            "a revoked key is a stranger now"
        );
        assert_eq!(sampler.counts().by_reason.len(), 1);
    }
}
