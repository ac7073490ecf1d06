//! A circuit breaker per model. Google's 5xx are mostly model-wide ("the model is
//! overloaded"): after `failures` consecutive upstream 5xx for a model, on any keys,
//! the breaker opens and requests for the model stop going upstream for a pause (their
//! fallback serves them, or they get 503 with `Retry-After`). When the pause ends one
//! request goes through as a probe (half-open): a success closes the breaker, a 5xx
//! opens it again for twice as long (up to `max_pause_ms`). Like Envoy's outlier
//! detection, but per model rather than per host, since a key is not what fails.

use std::collections::HashMap;

use crate::classify::Outcome;
use crate::defaults;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive upstream 5xx that open the breaker; 0 switches it off.
    pub failures: u32,
    /// The first pause once open.
    pub pause_ms: u64,
    /// The longest pause, however often it reopens.
    pub max_pause_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: defaults::BREAKER_FAILURES,
            pause_ms: defaults::BREAKER_PAUSE_SECS * 1000,
            max_pause_ms: defaults::BREAKER_MAX_PAUSE_SECS * 1000,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed {
        consecutive: u32,
    },
    Open {
        until_ms: u64,
        pause_ms: u64,
    },
    /// The pause is over; one probe may go. `probe_until_ms` is set while a probe is
    /// out: others wait until it reports or that time passes (a probe whose client
    /// left reports nothing, and must not keep the model shut).
    HalfOpen {
        pause_ms: u64,
        probe_until_ms: Option<u64>,
    },
}

/// What a request for a model may do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Closed: go.
    Pass,
    /// Half-open: this request is the probe.
    Probe,
    /// Open (or a probe is out): do not call upstream; the model may be back in
    /// `retry_after_ms`.
    Open { retry_after_ms: u64 },
}

/// A change of a breaker's state, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BreakerEvent {
    Opened { model: String, pause_ms: u64 },
    Closed { model: String },
}

/// Every model's breaker.
#[derive(Debug, Default)]
pub struct Breakers {
    config: BreakerConfig,
    models: HashMap<String, State>,
}

impl Breakers {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            models: HashMap::new(),
        }
    }

    /// Whether a request for `model` may go upstream at `now_ms`.
    pub fn admit(&mut self, model: &str, now_ms: u64) -> Admit {
        if self.config.failures == 0 {
            return Admit::Pass;
        }
        let probe_lease = self.config.pause_ms.max(1);
        let Some(state) = self.models.get_mut(model) else {
            return Admit::Pass;
        };
        match *state {
            State::Closed { .. } => Admit::Pass,
            State::Open { until_ms, .. } if now_ms < until_ms => Admit::Open {
                retry_after_ms: until_ms - now_ms,
            },
            State::Open { pause_ms, .. } => {
                *state = State::HalfOpen {
                    pause_ms,
                    probe_until_ms: Some(now_ms + probe_lease),
                };
                Admit::Probe
            }
            State::HalfOpen {
                probe_until_ms: Some(until),
                ..
            } if now_ms < until => Admit::Open {
                retry_after_ms: until - now_ms,
            },
            State::HalfOpen { pause_ms, .. } => {
                *state = State::HalfOpen {
                    pause_ms,
                    probe_until_ms: Some(now_ms + probe_lease),
                };
                Admit::Probe
            }
        }
    }

    /// Whether `model`'s breaker is open at `now_ms` (no probe may go yet).
    pub fn is_open(&self, model: &str, now_ms: u64) -> bool {
        matches!(self.models.get(model), Some(State::Open { until_ms, .. }) if now_ms < *until_ms)
    }

    /// Learns from an upstream attempt's outcome for `model`.
    pub fn record(&mut self, model: &str, outcome: &Outcome, now_ms: u64) -> Option<BreakerEvent> {
        if self.config.failures == 0 {
            return None;
        }
        let failed = matches!(outcome, Outcome::ServerError { .. });
        // The model answered: it is up, whatever it thought of the request.
        let answered = matches!(outcome, Outcome::Success | Outcome::ClientError { .. });
        if !failed && !answered {
            // A key's own trouble (quota, invalid) or the network's says nothing about
            // the model; a probe that ended so frees the way for the next one.
            if let Some(State::HalfOpen { probe_until_ms, .. }) = self.models.get_mut(model) {
                *probe_until_ms = None;
            }
            return None;
        }
        let state = self
            .models
            .get(model)
            .copied()
            .unwrap_or(State::Closed { consecutive: 0 });
        let (next, event) = match (state, failed) {
            (state, false) => {
                let event = (!matches!(state, State::Closed { .. })).then(|| BreakerEvent::Closed {
                    model: model.to_string(),
                });
                (State::Closed { consecutive: 0 }, event)
            }
            (State::Closed { consecutive }, true) if consecutive + 1 >= self.config.failures => {
                opened(model, self.config.pause_ms, now_ms)
            }
            (State::Closed { consecutive }, true) => (
                State::Closed {
                    consecutive: consecutive + 1,
                },
                None,
            ),
            (State::HalfOpen { pause_ms, .. }, true) => {
                let longer = pause_ms.saturating_mul(2).min(self.config.max_pause_ms.max(1));
                opened(model, longer, now_ms)
            }
            // A request sent before the breaker opened, failing late: already open.
            (open @ State::Open { .. }, true) => (open, None),
        };
        // Most outcomes are a success on a closed breaker: no allocation for those.
        match self.models.get_mut(model) {
            Some(state) => *state = next,
            None if next != (State::Closed { consecutive: 0 }) => {
                self.models.insert(model.to_string(), next);
            }
            None => {}
        }
        event
    }

    /// Models whose breaker is open at `now_ms`, with the ms until each may probe.
    pub fn open_models(&self, now_ms: u64) -> Vec<(String, u64)> {
        let mut open: Vec<(String, u64)> = self
            .models
            .iter()
            .filter_map(|(model, state)| match *state {
                State::Open { until_ms, .. } if now_ms < until_ms => Some((model.clone(), until_ms - now_ms)),
                _ => None,
            })
            .collect();
        open.sort();
        open
    }
}

fn opened(model: &str, pause_ms: u64, now_ms: u64) -> (State, Option<BreakerEvent>) {
    let state = State::Open {
        until_ms: now_ms.saturating_add(pause_ms),
        pause_ms,
    };
    let event = BreakerEvent::Opened {
        model: model.to_string(),
        pause_ms,
    };
    (state, Some(event))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUSY: Outcome = Outcome::ServerError { status: 503 };
    const OK: Outcome = Outcome::Success;

    fn breakers() -> Breakers {
        Breakers::new(BreakerConfig {
            failures: 3,
            pause_ms: 1_000,
            max_pause_ms: 3_000,
        })
    }

    #[test]
    fn opens_after_consecutive_5xx_fails_fast_then_half_opens_and_closes() {
        let mut b = breakers();
        assert_eq!(b.record("m", &BUSY, 0), None);
        assert_eq!(b.record("m", &BUSY, 0), None);
        assert_eq!(b.admit("m", 0), Admit::Pass, "two are not enough");
        let opened = b.record("m", &BUSY, 10);
        assert_eq!(
            opened,
            Some(BreakerEvent::Opened {
                model: "m".into(),
                pause_ms: 1_000
            })
        );
        assert!(b.is_open("m", 10) && !b.is_open("other", 10));
        assert_eq!(
            b.admit("m", 10),
            Admit::Open {
                retry_after_ms: 1_000
            }
        );
        assert_eq!(b.admit("m", 1_009), Admit::Open { retry_after_ms: 1 });
        assert_eq!(b.admit("other", 500), Admit::Pass, "per model");
        assert_eq!(b.open_models(500), vec![("m".to_string(), 510)]);
        // The pause is over: one probe, the others wait for it.
        assert_eq!(b.admit("m", 1_010), Admit::Probe);
        assert!(matches!(b.admit("m", 1_011), Admit::Open { .. }));
        assert_eq!(
            b.record("m", &OK, 1_200),
            Some(BreakerEvent::Closed { model: "m".into() })
        );
        assert_eq!(b.admit("m", 1_201), Admit::Pass);
        assert!(b.open_models(1_201).is_empty());
    }

    #[test]
    fn a_failed_probe_reopens_for_longer_up_to_the_max() {
        let mut b = breakers();
        for _ in 0..3 {
            b.record("m", &BUSY, 0);
        }
        let mut now = 0;
        for expected in [2_000, 3_000, 3_000] {
            now += 5_000;
            assert_eq!(b.admit("m", now), Admit::Probe);
            assert_eq!(
                b.record("m", &BUSY, now),
                Some(BreakerEvent::Opened {
                    model: "m".into(),
                    pause_ms: expected
                })
            );
            assert_eq!(
                b.admit("m", now),
                Admit::Open {
                    retry_after_ms: expected
                }
            );
        }
    }

    #[test]
    fn only_5xx_count_and_an_answer_resets_the_count() {
        let mut b = breakers();
        let quota = Outcome::RateLimited {
            until_ms: 0,
            per_day: false,
            model_off: false,
        };
        for outcome in [
            BUSY,
            BUSY,
            quota.clone(),
            Outcome::Transport { timeout: true },
            Outcome::ClientError { status: 400 },
            BUSY,
            BUSY,
        ] {
            assert_eq!(b.record("m", &outcome, 0), None);
        }
        assert_eq!(b.admit("m", 0), Admit::Pass);
        // A probe that ends on a key's own trouble lets the next request probe.
        b.record("m", &BUSY, 0);
        assert_eq!(b.admit("m", 1_000), Admit::Probe);
        b.record("m", &quota, 1_000);
        assert_eq!(b.admit("m", 1_001), Admit::Probe);
        // A probe that never reports (its client left) frees the way after a pause.
        assert!(matches!(b.admit("m", 1_002), Admit::Open { .. }));
        assert_eq!(b.admit("m", 2_001), Admit::Probe);
    }

    #[test]
    fn zero_failures_switches_it_off() {
        let mut b = Breakers::new(BreakerConfig {
            failures: 0,
            ..BreakerConfig::default()
        });
        for _ in 0..100 {
            assert_eq!(b.record("m", &BUSY, 0), None);
        }
        assert_eq!(b.admit("m", 0), Admit::Pass);
    }
}
