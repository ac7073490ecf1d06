//! The `/healthz` answer, the same on every platform: how many keys can serve, and
//! whether anything needs an operator.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::engine::Engine;
use crate::platform::{Clock, Upstream};
use crate::pool::{KeyPool, KeyStatus};
use crate::request::RefusalCounts;

/// Facts a platform gathers for `/healthz`.
#[derive(Clone, Debug, Default)]
pub struct HealthInput {
    pub keys: Vec<KeyStatus>,
    pub proxy_keys: usize,
    pub dropped_log_records: u64,
    /// The last read of the key store failed (the pool serves from memory meanwhile).
    pub store_unreachable: bool,
    /// A problem the pool reports itself (e.g. invalid marks suspended).
    pub pool_problem: Option<String>,
    /// Requests refused without a live proxy key, counted (only a sample is logged).
    pub refusals: RefusalCounts,
    pub limits: LimitSharing,
    /// Models answered that the price table has no price for (their cost counts as 0).
    pub unpriced_models: Vec<String>,
    /// Models whose circuit breaker is open, with the ms until one probe may go.
    pub open_breakers: Vec<(String, u64)>,
    /// Requests waiting for a key.
    pub queued: usize,
}

/// Where the governance counts live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LimitSharing {
    /// Per instance (no shared store configured).
    #[default]
    Local,
    /// Shared with the other instances through the shared store (Redis).
    Shared,
    /// A shared store is configured but unreachable: per instance until it is back.
    Unreachable,
}

impl LimitSharing {
    fn as_str(self) -> &'static str {
        match self {
            Self::Local => "per-instance",
            Self::Shared => "shared",
            Self::Unreachable => "per-instance (shared store unreachable)",
        }
    }
}

/// What a platform counts itself, beside the pool.
#[derive(Clone, Debug, Default)]
pub struct PlatformCounts {
    pub proxy_keys: usize,
    pub dropped_log_records: u64,
    pub store_unreachable: bool,
    pub refusals: RefusalCounts,
    pub limits: LimitSharing,
    pub unpriced_models: Vec<String>,
}

impl HealthInput {
    /// The whole input: the pool's part, read under its lock (released before the
    /// answer is built), and the platform's counts.
    /// The engine's resilience state (open breakers, the queue) comes along.
    pub fn gather<U: Upstream, C: Clock>(engine: &Engine<U, C>, counts: PlatformCounts, now_ms: u64) -> Self {
        let from_pool = {
            let pool = engine.pool().lock().unwrap_or_else(|p| p.into_inner());
            Self::from_pool(&pool, now_ms)
        };
        let resilience = engine.resilience();
        Self {
            open_breakers: resilience.breakers().open_models(now_ms),
            queued: resilience.queue().len(),
            proxy_keys: counts.proxy_keys,
            dropped_log_records: counts.dropped_log_records,
            store_unreachable: counts.store_unreachable,
            refusals: counts.refusals,
            limits: counts.limits,
            unpriced_models: counts.unpriced_models,
            ..from_pool
        }
    }

    /// The pool's part: its keys, and a suspension of invalid marks if one holds.
    pub fn from_pool(pool: &KeyPool, now_ms: u64) -> Self {
        Self {
            keys: pool.statuses(),
            pool_problem: pool.marking_suspended(now_ms).map(|s| s.reason),
            ..Self::default()
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    pub upstream_keys: usize,
    /// Keys that can serve at least one model now (see [`Health::of`]).
    pub upstream_keys_available: usize,
    /// Per model, where its count differs from `upstream_keys_available`.
    pub available_by_model: BTreeMap<String, usize>,
    pub proxy_keys: usize,
    pub dropped_log_records: u64,
    /// Why the proxy is degraded; empty when it is `ok`.
    pub problems: Vec<String>,
    pub refusals: RefusalCounts,
    pub limits: LimitSharing,
    pub unpriced_models: Vec<String>,
    /// Models whose breaker is open, with the seconds until one probe may go.
    pub open_breakers: BTreeMap<String, u64>,
    /// Requests waiting for a key.
    pub queued: usize,
    /// Nothing can be served: load balancers should route elsewhere (503).
    pub unable_to_serve: bool,
}

impl Health {
    /// A key is available when it is enabled, not marked invalid, and not cooling down
    /// for every model the pool has cooldowns for (requests without a model, `*`,
    /// don't count as a model). So a key rate limited on the one model clients use is
    /// not counted as available.
    pub fn of(input: HealthInput, now_ms: u64) -> Self {
        let usable: Vec<&KeyStatus> = input
            .keys
            .iter()
            .filter(|k| k.enabled && k.state.invalid_reason.is_none())
            .collect();
        let cooling =
            |key: &KeyStatus, model: &str| key.state.cooldowns.get(model).is_some_and(|u| *u > now_ms);
        let models: BTreeSet<&str> = usable
            .iter()
            .flat_map(|k| k.state.cooldowns.iter())
            .filter(|(model, until)| model.as_str() != "*" && **until > now_ms)
            .map(|(model, _)| model.as_str())
            .collect();
        let available = usable
            .iter()
            .filter(|k| models.is_empty() || models.iter().any(|m| !cooling(k, m)))
            .count();
        let available_by_model = models
            .iter()
            .map(|m| (m.to_string(), usable.iter().filter(|k| !cooling(k, m)).count()))
            .filter(|(_, count)| *count != available)
            .collect();
        let mut problems = Vec::new();
        if input.keys.is_empty() {
            problems.push("no upstream key is configured".to_string());
        } else if usable.is_empty() {
            problems.push("every upstream key is disabled or invalid".to_string());
        } else if available == 0 {
            problems.push("every upstream key is cooling down".to_string());
        }
        if input.store_unreachable {
            problems.push("the key store cannot be read; serving the last known keys".to_string());
        }
        problems.extend(input.pool_problem);
        for (model, ms) in &input.open_breakers {
            problems.push(format!(
                "model {model} is paused: its circuit breaker is open for {} s more",
                ms.div_ceil(1000)
            ));
        }
        if input.limits == LimitSharing::Unreachable {
            problems.push(
                "the shared limit store (Redis) is unreachable; limits are counted per instance until it is back"
                    .to_string(),
            );
        }
        Self {
            upstream_keys: input.keys.len(),
            upstream_keys_available: available,
            available_by_model,
            proxy_keys: input.proxy_keys,
            dropped_log_records: input.dropped_log_records,
            problems,
            refusals: input.refusals,
            limits: input.limits,
            unpriced_models: input.unpriced_models,
            open_breakers: input
                .open_breakers
                .into_iter()
                .map(|(model, ms)| (model, ms.div_ceil(1000)))
                .collect(),
            queued: input.queued,
            unable_to_serve: available == 0,
        }
    }

    /// 200 while the proxy can serve (even degraded: a store outage is survivable,
    /// and taking every instance out of a balancer for it would be the outage), 503
    /// when no key can serve.
    pub fn status_code(&self) -> u16 {
        if self.unable_to_serve { 503 } else { 200 }
    }

    pub fn to_json(&self) -> String {
        let mut body = json!({
            "status": if self.problems.is_empty() { "ok" } else { "degraded" },
            "upstream_keys": self.upstream_keys,
            "upstream_keys_available": self.upstream_keys_available,
            "proxy_keys": self.proxy_keys,
            "dropped_log_records": self.dropped_log_records,
            "limits": self.limits.as_str(),
        });
        if !self.unpriced_models.is_empty() {
            body["unpriced_models"] = json!(self.unpriced_models);
        }
        if !self.problems.is_empty() {
            body["problems"] = json!(self.problems);
        }
        if !self.refusals.by_reason.is_empty() {
            body["refused_without_proxy_key"] = json!(self.refusals.by_reason);
            body["refusals_not_logged"] = json!(self.refusals.not_logged);
        }
        if !self.available_by_model.is_empty() {
            body["upstream_keys_available_by_model"] = json!(self.available_by_model);
        }
        if !self.open_breakers.is_empty() {
            body["open_breakers"] = json!(self.open_breakers);
        }
        if self.queued > 0 {
            body["queued_for_a_key"] = json!(self.queued);
        }
        body.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_state::KeyState;

    fn key(id: i64, cooldowns: &[(&str, u64)], invalid: bool) -> KeyStatus {
        KeyStatus {
            id,
            name: format!("k{id}"),
            masked: "…****".into(),
            enabled: true,
            state: KeyState {
                off_models: Default::default(),
                invalid_reason: invalid.then(|| "API_KEY_INVALID".to_string()),
                cooldowns: cooldowns.iter().map(|(m, u)| (m.to_string(), *u)).collect(),
                last_used_ms: None,
            },
        }
    }

    fn health(keys: Vec<KeyStatus>) -> Health {
        let input = HealthInput {
            keys,
            proxy_keys: 1,
            ..HealthInput::default()
        };
        Health::of(input, 1_000)
    }

    #[test]
    fn a_key_cooling_for_every_model_it_was_used_with_is_not_available() {
        let h = health(vec![key(1, &[("flash", 5_000)], false), key(2, &[], false)]);
        assert_eq!(h.upstream_keys_available, 1);
        assert!(h.available_by_model.is_empty(), "flash: 1, as overall");
        let h = health(vec![key(1, &[("flash", 5_000)], false)]);
        assert_eq!((h.upstream_keys_available, h.status_code()), (0, 503));
        assert_eq!(h.problems, vec!["every upstream key is cooling down".to_string()]);
    }

    #[test]
    fn per_model_counts_where_they_differ() {
        let h = health(vec![
            key(1, &[("flash", 5_000)], false),
            key(2, &[("pro", 5_000)], false),
            key(3, &[("*", 5_000), ("lite", 500)], false),
        ]);
        assert_eq!(h.upstream_keys_available, 3, "each key serves some model");
        let expected: BTreeMap<String, usize> = [("flash".into(), 2), ("pro".into(), 2)].into();
        assert_eq!(
            h.available_by_model, expected,
            "expired and model-less cooldowns don't count"
        );
        assert!(
            h.to_json()
                .contains(r#""upstream_keys_available_by_model":{"flash":2,"pro":2}"#)
        );
        assert!(h.to_json().contains(r#""status":"ok""#));
    }

    #[test]
    fn degraded_reasons_and_status_codes() {
        let h = health(vec![key(1, &[], true)]);
        assert_eq!(h.status_code(), 503);
        assert!(h.to_json().contains("every upstream key is disabled or invalid"));
        assert_eq!(
            health(Vec::new()).problems,
            vec!["no upstream key is configured".to_string()]
        );
        let input = HealthInput {
            keys: vec![key(1, &[], false)],
            store_unreachable: true,
            ..HealthInput::default()
        };
        let h = Health::of(input, 0);
        assert_eq!(h.status_code(), 200, "serving from memory");
        assert!(h.to_json().contains(r#""status":"degraded""#));
    }

    #[test]
    fn where_limits_are_counted_and_unpriced_models_are_said() {
        let input = |limits| HealthInput {
            keys: vec![key(1, &[], false)],
            limits,
            unpriced_models: vec!["my-tuned-model".into()],
            ..HealthInput::default()
        };
        let local = Health::of(input(LimitSharing::Local), 0).to_json();
        assert!(local.contains(r#""limits":"per-instance""#), "{local}");
        assert!(
            local.contains(r#""status":"ok""#) && local.contains(r#""unpriced_models":["my-tuned-model"]"#)
        );
        let shared = Health::of(input(LimitSharing::Shared), 0).to_json();
        assert!(shared.contains(r#""limits":"shared""#), "{shared}");
        let down = Health::of(input(LimitSharing::Unreachable), 0);
        assert_eq!(down.status_code(), 200, "limits keep working per instance");
        let json = down.to_json();
        assert!(
            json.contains(r#""status":"degraded""#) && json.contains("(Redis) is unreachable"),
            "{json}"
        );
    }

    #[test]
    fn open_breakers_and_waiting_requests_are_said_but_still_serve() {
        let input = HealthInput {
            keys: vec![key(1, &[], false)],
            open_breakers: vec![("gemini-2.5-pro".into(), 9_500)],
            queued: 3,
            ..HealthInput::default()
        };
        let health = Health::of(input, 0);
        assert_eq!(health.status_code(), 200, "other models still serve");
        let json = health.to_json();
        assert!(
            json.contains(r#""open_breakers":{"gemini-2.5-pro":10}"#),
            "{json}"
        );
        assert!(json.contains(r#""queued_for_a_key":3"#), "{json}");
        assert!(json.contains("model gemini-2.5-pro is paused"), "{json}");
        let calm = health_json(vec![key(1, &[], false)]);
        assert!(
            !calm.contains("open_breakers") && !calm.contains("queued"),
            "{calm}"
        );
    }

    fn health_json(keys: Vec<KeyStatus>) -> String {
        health(keys).to_json()
    }
}
