//! Whether to try again after a failed attempt, and after how long.

use crate::classify::Outcome;
use crate::defaults;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per client request, the first included.
    pub max_attempts: u32,
    /// Total time budget for one request's attempts, until upstream headers arrive.
    pub deadline_ms: u64,
    /// First backoff after a 5xx or transport error; doubles per attempt.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: defaults::MAX_ATTEMPTS,
            deadline_ms: defaults::DEADLINE_SECS * 1000,
            backoff_base_ms: defaults::BACKOFF_BASE_MS,
            backoff_max_ms: defaults::BACKOFF_MAX_MS,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Try the next key at once (the failure was this key's own).
    RetryNow,
    /// Wait, then try the next key (the failure was model-wide or the network's).
    RetryAfter {
        delay_ms: u64,
    },
    Stop,
}

impl RetryPolicy {
    /// Decides after attempt number `attempts_done` (1-based) failed with `outcome`.
    /// `random` is any random number; it spreads backoffs so clients that failed
    /// together do not come back together.
    pub fn decide(&self, outcome: &Outcome, attempts_done: u32, elapsed_ms: u64, random: u64) -> Decision {
        if attempts_done >= self.max_attempts || elapsed_ms >= self.deadline_ms {
            return Decision::Stop;
        }
        match outcome {
            Outcome::Success | Outcome::ClientError { .. } => Decision::Stop,
            Outcome::RateLimited { .. } | Outcome::KeyInvalid { .. } => Decision::RetryNow,
            Outcome::ServerError { .. } | Outcome::Transport { .. } => {
                let delay_ms = self.backoff_ms(attempts_done, random);
                if elapsed_ms + delay_ms >= self.deadline_ms {
                    Decision::Stop
                } else {
                    Decision::RetryAfter { delay_ms }
                }
            }
        }
    }

    /// Exponential backoff with "equal jitter": half fixed, half random, so the wait
    /// never collapses to zero yet retries still spread out.
    fn backoff_ms(&self, attempts_done: u32, random: u64) -> u64 {
        let exponent = attempts_done.saturating_sub(1).min(20);
        let full = self
            .backoff_base_ms
            .saturating_mul(1 << exponent)
            .min(self.backoff_max_ms);
        let half = full / 2;
        half + random % (full - half + 1)
    }
}

/// A tiny xorshift generator: jitter needs spread, not cryptographic strength, and
/// the core may not reach for an OS random source (wasm32 has none by default).
#[derive(Clone, Debug)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 4,
        deadline_ms: 10_000,
        backoff_base_ms: 100,
        backoff_max_ms: 1_000,
    };

    #[test]
    fn key_failures_retry_now_model_failures_back_off() {
        let limited = Outcome::RateLimited {
            until_ms: 0,
            per_day: false,
            model_off: false,
        };
        assert_eq!(POLICY.decide(&limited, 1, 0, 0), Decision::RetryNow);
        let invalid = Outcome::KeyInvalid { reason: "x".into() };
        assert_eq!(POLICY.decide(&invalid, 1, 0, 0), Decision::RetryNow);
        let busy = Outcome::ServerError { status: 503 };
        assert_eq!(
            POLICY.decide(&busy, 1, 0, 0),
            Decision::RetryAfter { delay_ms: 50 }
        );
        assert_eq!(
            POLICY.decide(&busy, 2, 0, 0),
            Decision::RetryAfter { delay_ms: 100 }
        );
        assert_eq!(
            POLICY.decide(&busy, 3, 0, 200),
            Decision::RetryAfter { delay_ms: 400 }
        );
        let timeout = Outcome::Transport { timeout: true };
        assert!(matches!(
            POLICY.decide(&timeout, 1, 0, 7),
            Decision::RetryAfter { .. }
        ));
    }

    #[test]
    fn stops_on_client_errors_attempt_limit_and_deadline() {
        assert_eq!(
            POLICY.decide(&Outcome::ClientError { status: 400 }, 1, 0, 0),
            Decision::Stop
        );
        assert_eq!(
            POLICY.decide(&Outcome::ServerError { status: 500 }, 4, 0, 0),
            Decision::Stop
        );
        assert_eq!(
            POLICY.decide(&Outcome::ServerError { status: 500 }, 1, 9_990, 0),
            Decision::Stop
        );
        assert_eq!(
            POLICY.decide(&Outcome::Transport { timeout: false }, 1, 10_000, 0),
            Decision::Stop
        );
    }

    #[test]
    fn backoff_stays_within_bounds() {
        let mut jitter = Jitter::new(42);
        for attempt in 1..30 {
            let delay = POLICY.backoff_ms(attempt, jitter.next_u64());
            assert!(delay <= POLICY.backoff_max_ms, "attempt {attempt}: {delay}");
            assert!(delay >= 50, "attempt {attempt}: {delay}");
        }
    }
}
