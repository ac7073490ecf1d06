//! Management operations (CLI, dashboard) that every store offers. Never on the
//! request path.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error_class::ErrorClasses;
use crate::keys::{KeyId, KeyLimits};
use crate::log::LogRecord;
use crate::platform::{MaybeSend, StoreError};
use crate::policy::{BudgetPeriod, ProxyKeyPolicy};

mod key_usage;
mod stats;
mod wording;
pub use key_usage::{
    KeyUsage, LimitLeft, PeriodUsage, day_start_ms, key_usage, key_usage_queries, month_start_ms,
    proxy_key_usage,
};
pub use stats::{LogStats, UsageRow, fold_stats, log_stats, stats_query};
pub use wording::{span_text, usd_text};

/// An upstream key as listed to an operator: masked, never the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRow {
    pub id: KeyId,
    pub name: String,
    pub masked: String,
    pub enabled: bool,
    pub invalid_reason: Option<String>,
    /// Model -> unix ms the cooldown ends.
    pub cooldowns: Vec<(String, u64)>,
    pub created_at_ms: u64,
    /// When a request last tried the key (the newest such log record's start).
    pub last_used_ms: Option<u64>,
    /// The operator's limits (rpm, tpm, rpd; for every model and per model).
    #[serde(default)]
    pub limits: KeyLimits,
    /// Models among `cooldowns` whose cooldown says the model is off for this key
    /// (Google's quota for it is 0: [`crate::pool::StateChange::ModelOff`]), sorted.
    #[serde(default)]
    pub off_models: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyKeyRow {
    pub id: i64,
    pub name: String,
    pub revoked: bool,
    pub created_at_ms: u64,
    /// The secret's first characters ([`crate::auth::secret_prefix`]); `None` for keys
    /// created before stores kept it.
    #[serde(default)]
    pub prefix: Option<String>,
    /// What the key may do; in JSON its fields sit beside the row's (`"passthrough": true`).
    #[serde(flatten)]
    pub policy: ProxyKeyPolicy,
}

/// A change to a proxy key's policy, as `proxy-keys update` and the dashboard make it:
/// each field that is `Some` is set, the others are left as they are; for the optional
/// limits `Some(None)` clears the limit. One update changes several fields at once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProxyKeyUpdate {
    /// [`ProxyKeyPolicy::passthrough`].
    pub passthrough: Option<bool>,
    /// [`ProxyKeyPolicy::models`]; `Some(vec![])` allows every model again.
    pub models: Option<Vec<String>>,
    /// [`ProxyKeyPolicy::rpm`].
    pub rpm: Option<Option<u64>>,
    /// [`ProxyKeyPolicy::tpm`].
    pub tpm: Option<Option<u64>>,
    /// [`ProxyKeyPolicy::tokens_per_day`].
    pub tokens_per_day: Option<Option<u64>>,
    /// [`ProxyKeyPolicy::budget_usd`]: finite and at least 0 (see [`ProxyKeyUpdate::validate`]).
    pub budget_usd: Option<Option<f64>>,
    /// [`ProxyKeyPolicy::budget_period`].
    pub budget_period: Option<BudgetPeriod>,
    /// [`ProxyKeyPolicy::expires_at_ms`].
    pub expires_at_ms: Option<Option<u64>>,
}

impl ProxyKeyUpdate {
    /// Changes nothing.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// The one merge rule every store and test uses: each field given replaces the
    /// policy's.
    pub fn apply(&self, policy: &mut ProxyKeyPolicy) {
        if let Some(passthrough) = self.passthrough {
            policy.passthrough = passthrough;
        }
        if let Some(models) = &self.models {
            policy.models.clone_from(models);
        }
        if let Some(rpm) = self.rpm {
            policy.rpm = rpm;
        }
        if let Some(tpm) = self.tpm {
            policy.tpm = tpm;
        }
        if let Some(tokens_per_day) = self.tokens_per_day {
            policy.tokens_per_day = tokens_per_day;
        }
        if let Some(budget_usd) = self.budget_usd {
            policy.budget_usd = budget_usd;
        }
        if let Some(budget_period) = self.budget_period {
            policy.budget_period = budget_period;
        }
        if let Some(expires_at_ms) = self.expires_at_ms {
            policy.expires_at_ms = expires_at_ms;
        }
    }

    /// Refuses what no store may keep: a budget that is not a finite number ≥ 0.
    pub fn validate(&self) -> Result<(), StoreError> {
        match self.budget_usd {
            Some(Some(budget)) => validate_budget(budget),
            _ => Ok(()),
        }
    }
}

/// A budget is a finite number of USD, at least 0 (a NaN would make policies unequal
/// to themselves, and an infinite one is no budget).
pub fn validate_budget(budget_usd: f64) -> Result<(), StoreError> {
    if budget_usd.is_finite() && budget_usd >= 0.0 {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "budget must be a finite number of USD, at least 0 (got {budget_usd})"
        )))
    }
}

/// Refuses a policy no store may keep ([`validate_budget`]).
pub fn validate_policy(policy: &ProxyKeyPolicy) -> Result<(), StoreError> {
    policy.budget_usd.map_or(Ok(()), validate_budget)
}

/// Filters for listing logs, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogQuery {
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
    pub upstream_key_id: Option<KeyId>,
    pub proxy_key_id: Option<i64>,
    pub model: Option<String>,
    pub status: Option<u16>,
    pub stream: Option<bool>,
    /// Records of this prompt (hex, as [`crate::audit::prompt_sha256`] gives it).
    pub prompt_sha256: Option<String>,
    /// The record with this request id (the `x-request-id` the client got).
    pub request_id: Option<String>,
    /// Records whose model contains this text, in any case (`flash` finds
    /// `gemini-2.5-flash-lite`); `model` is the exact match.
    pub model_contains: Option<String>,
    /// Records whose status is in this hundred: 2 (2xx), 4 (4xx), 5 (5xx).
    pub status_class: Option<u16>,
    pub limit: u32,
    pub offset: u32,
}

/// How [`AdminStore::usage`] groups request logs: by time bucket and, optionally, by
/// model, answering upstream key and proxy key. Records started in `[since_ms, until_ms)`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageQuery {
    pub since_ms: u64,
    pub until_ms: Option<u64>,
    /// Bucket width in ms, buckets aligned to the Unix epoch (86 400 000 gives UTC
    /// days); 0 puts the whole range in one bucket starting at `since_ms`.
    pub bucket_ms: u64,
    pub by_model: bool,
    pub by_upstream_key: bool,
    pub by_proxy_key: bool,
}

/// Totals of one group. A dimension the query did not group by is `None`, as is "no
/// model" or "no key" in one it did. Latency percentiles are nearest-rank: the
/// smallest latency at or above which lie p% of the group's requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageCell {
    pub bucket_start_ms: u64,
    pub model: Option<String>,
    pub upstream_key_id: Option<KeyId>,
    pub proxy_key_id: Option<i64>,
    pub requests: u64,
    pub errors: u64,
    pub prompt_tokens: u64,
    pub candidates_tokens: u64,
    pub thoughts_tokens: u64,
    pub cached_tokens: u64,
    pub total_tokens: u64,
    pub latency_sum_ms: u64,
    pub latency_p50_ms: u64,
    pub latency_p95_ms: u64,
    /// Sum of the records' `cost_usd` (a record without one counts 0).
    #[serde(default)]
    pub cost_usd: f64,
    /// Failed records per failure key ([`crate::error_class::failure_key`]); they add
    /// up to `errors`. [`UsageCell::error_classes`] folds them into classes.
    #[serde(default)]
    pub error_kinds: BTreeMap<String, u64>,
    /// Nearest-rank median time to the answer's first byte, over the records that
    /// have one (0 when none does).
    #[serde(default)]
    pub ttfb_p50_ms: u64,
    /// Nearest-rank median of the proxy's own time (`LogRecord::overhead_us`), over
    /// the records that have one (0 when none does).
    #[serde(default)]
    pub overhead_p50_us: u64,
}

/// Costs are sums of finite prices (stores keep no NaN), so equality is total.
impl Eq for UsageCell {}

impl UsageCell {
    pub fn avg_latency_ms(&self) -> u64 {
        self.latency_sum_ms.checked_div(self.requests).unwrap_or(0)
    }

    pub fn error_rate_percent(&self) -> f64 {
        percent_of(self.errors, self.requests)
    }

    pub fn error_classes(&self) -> ErrorClasses {
        ErrorClasses::of(&self.error_kinds)
    }

    /// Adds `other`'s counters, tokens, latency sum, cost and failures to this cell's.
    /// Percentiles do not add up: they are left as they are.
    pub fn add(&mut self, other: &UsageCell) {
        self.requests = self.requests.saturating_add(other.requests);
        self.errors = self.errors.saturating_add(other.errors);
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.candidates_tokens = self.candidates_tokens.saturating_add(other.candidates_tokens);
        self.thoughts_tokens = self.thoughts_tokens.saturating_add(other.thoughts_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(other.cached_tokens);
        self.total_tokens = self.total_tokens.saturating_add(other.total_tokens);
        self.latency_sum_ms = self.latency_sum_ms.saturating_add(other.latency_sum_ms);
        self.cost_usd += other.cost_usd;
        for (key, n) in &other.error_kinds {
            let sum = self.error_kinds.entry(key.clone()).or_default();
            *sum = sum.saturating_add(*n);
        }
    }

    /// Counts a failed record under its failure key.
    pub fn count_failure(&mut self, key: &str) {
        self.errors += 1;
        match self.error_kinds.get_mut(key) {
            Some(n) => *n += 1,
            None => {
                self.error_kinds.insert(key.to_string(), 1);
            }
        }
    }
}

/// `part` as a percentage of `whole`, 0 for an empty whole.
pub fn percent_of(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// The one order every store returns cells in: by bucket, then model, upstream key
/// and proxy key ("none" first), so pages and tests never depend on a database's.
pub fn sort_usage(cells: &mut [UsageCell]) {
    cells.sort_by(|a, b| {
        (a.bucket_start_ms, &a.model, a.upstream_key_id, a.proxy_key_id).cmp(&(
            b.bucket_start_ms,
            &b.model,
            b.upstream_key_id,
            b.proxy_key_id,
        ))
    });
}

/// Where a record of `started_at_ms` falls for `query`: the start of its bucket.
pub fn bucket_start(query: &UsageQuery, started_at_ms: u64) -> u64 {
    match query.bucket_ms {
        0 => query.since_ms,
        width => started_at_ms / width * width,
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
pub trait AdminStore: MaybeSend {
    /// An upstream key without limits.
    async fn add_key(&self, secret: &str, name: &str) -> Result<KeyId, StoreError> {
        self.add_key_with_limits(secret, name, &KeyLimits::default())
            .await
    }
    /// An upstream key with the operator's limits, in one write.
    async fn add_key_with_limits(
        &self,
        secret: &str,
        name: &str,
        limits: &KeyLimits,
    ) -> Result<KeyId, StoreError>;
    /// Replaces a key's limits whole; returns whether the key exists. A running proxy
    /// applies them at its next refresh.
    async fn set_key_limits(&self, id: KeyId, limits: &KeyLimits) -> Result<bool, StoreError>;
    async fn list_keys(&self) -> Result<Vec<KeyRow>, StoreError>;
    async fn remove_key(&self, id: KeyId) -> Result<bool, StoreError>;
    /// Enabling also clears an invalid mark and cooldowns: the operator says "try it again".
    async fn set_key_enabled(&self, id: KeyId, enabled: bool) -> Result<bool, StoreError>;
    /// A proxy key with the default policy (it may do everything).
    async fn create_proxy_key(&self, name: &str, secret_hash: &str) -> Result<i64, StoreError> {
        self.create_proxy_key_with_policy(name, secret_hash, None, &ProxyKeyPolicy::default())
            .await
    }
    /// A proxy key with `policy`, in one write: a restricted key is never live without
    /// its restriction. `prefix` is [`crate::auth::secret_prefix`] of the secret, kept
    /// to show the key by.
    async fn create_proxy_key_with_policy(
        &self,
        name: &str,
        secret_hash: &str,
        prefix: Option<&str>,
        policy: &ProxyKeyPolicy,
    ) -> Result<i64, StoreError>;
    async fn list_proxy_keys(&self) -> Result<Vec<ProxyKeyRow>, StoreError>;
    async fn revoke_proxy_key(&self, id: i64) -> Result<bool, StoreError>;
    /// Sets what `update` holds of a proxy key's policy, in one write; returns whether
    /// the key exists (an empty update only checks that). A running proxy applies it
    /// at its next refresh, at once where the store notifies.
    async fn update_proxy_key(&self, id: i64, update: &ProxyKeyUpdate) -> Result<bool, StoreError>;
    /// Renames a proxy key; returns whether it exists.
    async fn rename_proxy_key(&self, id: i64, name: &str) -> Result<bool, StoreError>;
    /// Deletes a proxy key's row (its secret stops working at the next refresh); its
    /// log records stay and keep its id. Returns whether it existed.
    async fn delete_proxy_key(&self, id: i64) -> Result<bool, StoreError>;
    async fn list_logs(&self, query: &LogQuery) -> Result<Vec<LogRecord>, StoreError>;
    /// Totals per time bucket and group, aggregated by the store (no rows are shipped),
    /// in [`sort_usage`] order. The one aggregate a store implements: the dashboard's
    /// charts and tables and the CLI's [`log_stats`] are folded from it.
    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageCell>, StoreError>;
    /// Deletes records that started before `before_ms`; returns how many.
    async fn prune_logs(&self, before_ms: u64) -> Result<u64, StoreError>;
}
