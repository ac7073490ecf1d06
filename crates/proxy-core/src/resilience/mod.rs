//! What the engine does when Google fails model-wide rather than per key: serve the
//! request with another model (`fallback`), stop calling a model that keeps failing
//! for a while (`breaker`), and keep retries from multiplying an outage
//! (`retry_budget`). Pure decisions over an injected clock, shared by every platform
//! through the engine.

pub mod breaker;
pub mod cache;
pub mod cache_share;
pub mod empty;
pub mod fallback;
pub mod queue;
pub mod retry_budget;

use std::sync::{Arc, Mutex, MutexGuard};

use cache::{CacheConfig, ResponseCache};

pub use breaker::{Admit, BreakerConfig, BreakerEvent, Breakers};
pub use fallback::Fallbacks;
pub use queue::{Place, WaitQueue};
pub use retry_budget::{RetryBudget, RetryBudgetConfig};

/// The operator's resilience settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResilienceConfig {
    pub fallbacks: Fallbacks,
    pub breaker: BreakerConfig,
    pub retry_budget: RetryBudgetConfig,
    pub queue: QueueConfig,
    pub cache: CacheConfig,
    /// A non-streamed request still without upstream headers after this long goes to
    /// a second key too (`--hedge-after-ms`); 0: never.
    pub hedge_after_ms: u64,
}

/// Waiting for a key when none has room (`--queue-wait-secs`, `--queue-max`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// The longest a request waits, from its arrival; 0 answers at once.
    pub wait_ms: u64,
    /// Requests waiting at once, across models; beyond it, 429 at once.
    pub max: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            wait_ms: crate::defaults::QUEUE_WAIT_SECS * 1000,
            max: crate::defaults::QUEUE_MAX,
        }
    }
}

/// The settings as an operator gives them (flags, Worker vars), each in its unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResilienceSettings<'a> {
    /// `FROM=TO` pairs, or comma-separated lists of them.
    pub fallbacks: Vec<&'a str>,
    pub breaker_failures: u32,
    pub breaker_pause_secs: u64,
    pub breaker_max_pause_secs: u64,
    pub retry_budget_percent: u32,
    pub retry_budget_floor: u32,
    pub queue_wait_secs: u64,
    pub queue_max: usize,
    pub cache_ttl_secs: u64,
    pub cache_max_mb: u64,
    pub cache_shared: bool,
    pub hedge_after_ms: u64,
}

impl Default for ResilienceSettings<'_> {
    fn default() -> Self {
        Self {
            fallbacks: Vec::new(),
            breaker_failures: crate::defaults::BREAKER_FAILURES,
            breaker_pause_secs: crate::defaults::BREAKER_PAUSE_SECS,
            breaker_max_pause_secs: crate::defaults::BREAKER_MAX_PAUSE_SECS,
            retry_budget_percent: crate::defaults::RETRY_BUDGET_PERCENT,
            retry_budget_floor: crate::defaults::RETRY_BUDGET_FLOOR,
            queue_wait_secs: crate::defaults::QUEUE_WAIT_SECS,
            queue_max: crate::defaults::QUEUE_MAX,
            cache_ttl_secs: crate::defaults::CACHE_TTL_SECS,
            cache_max_mb: crate::defaults::CACHE_MAX_MB,
            cache_shared: crate::defaults::CACHE_SHARED,
            hedge_after_ms: crate::defaults::HEDGE_AFTER_MS,
        }
    }
}

impl ResilienceConfig {
    /// The typed configuration; fails on a malformed or looping fallback. A pause of 0
    /// is raised to 1 s and the max is at least the first pause.
    pub fn from_settings(settings: &ResilienceSettings<'_>) -> Result<Self, String> {
        let pause_ms = settings.breaker_pause_secs.max(1).saturating_mul(1000);
        Ok(Self {
            fallbacks: Fallbacks::parse(settings.fallbacks.iter().copied())?,
            breaker: BreakerConfig {
                failures: settings.breaker_failures,
                pause_ms,
                max_pause_ms: settings.breaker_max_pause_secs.saturating_mul(1000).max(pause_ms),
            },
            retry_budget: RetryBudgetConfig {
                percent: settings.retry_budget_percent,
                floor: settings.retry_budget_floor,
            },
            queue: QueueConfig {
                wait_ms: settings.queue_wait_secs.saturating_mul(1000),
                max: settings.queue_max,
            },
            cache: CacheConfig {
                ttl_ms: settings.cache_ttl_secs.saturating_mul(1000),
                max_bytes: crate::defaults::mib_to_bytes(settings.cache_max_mb),
                shared: settings.cache_shared,
            },
            hedge_after_ms: settings.hedge_after_ms,
        })
    }
}

/// The process's resilience state: the breakers, the retry budget, the queue, the
/// cache. The settings that are only read (fallbacks, the queue's wait, hedging) stay
/// in the engine's [`ResilienceConfig`].
#[derive(Debug, Default)]
pub struct Resilience {
    breakers: Mutex<Breakers>,
    budget: RetryBudget,
    queue: WaitQueue,
    cache: Arc<ResponseCache>,
}

impl Resilience {
    pub fn new(config: &ResilienceConfig) -> Self {
        Self {
            breakers: Mutex::new(Breakers::new(config.breaker.clone())),
            budget: RetryBudget::new(config.retry_budget.clone()),
            queue: WaitQueue::new(config.queue.max),
            cache: Arc::new(ResponseCache::new(config.cache.clone())),
        }
    }

    /// The response cache (off unless `--cache-ttl-secs`).
    pub fn cache(&self) -> &Arc<ResponseCache> {
        &self.cache
    }

    /// The requests waiting for a key.
    pub fn queue(&self) -> &WaitQueue {
        &self.queue
    }

    /// A poisoned lock only means a panic elsewhere mid-update; every update is one
    /// assignment, so the state is whole.
    pub fn breakers(&self) -> MutexGuard<'_, Breakers> {
        self.breakers.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn budget(&self) -> &RetryBudget {
        &self.budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_become_the_config_and_the_defaults_agree() {
        let config = ResilienceConfig::from_settings(&ResilienceSettings::default());
        assert_eq!(config, Ok(ResilienceConfig::default()));
        let settings = ResilienceSettings {
            fallbacks: vec!["a=b,b=c"],
            breaker_pause_secs: 0,
            breaker_max_pause_secs: 0,
            ..ResilienceSettings::default()
        };
        let config = ResilienceConfig::from_settings(&settings).unwrap_or_default();
        assert_eq!(config.fallbacks.chain("a"), vec!["b", "c"]);
        assert_eq!(
            (config.breaker.pause_ms, config.breaker.max_pause_ms),
            (1000, 1000)
        );
        let looping = ResilienceSettings {
            fallbacks: vec!["a=b", "b=a"],
            ..ResilienceSettings::default()
        };
        assert!(ResilienceConfig::from_settings(&looping).is_err_and(|e| e.contains("loop")));
    }
}
