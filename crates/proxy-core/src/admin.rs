//! Management operations (CLI, dashboard) that every store offers. Never on the
//! request path.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::keys::KeyId;
use crate::log::LogRecord;
use crate::platform::{MaybeSend, StoreError};
use crate::policy::ProxyKeyPolicy;

mod stats;
pub use stats::{LogStats, UsageRow, fold_stats, log_stats, stats_query};

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
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyKeyRow {
    pub id: i64,
    pub name: String,
    pub revoked: bool,
    pub created_at_ms: u64,
    /// What the key may do; in JSON its fields sit beside the row's (`"passthrough": true`).
    #[serde(flatten)]
    pub policy: ProxyKeyPolicy,
}

/// A change to a proxy key's policy, as `proxy-keys update` and the dashboard make it:
/// each field that is `Some` is set, the others are left as they are. The governance
/// limits join it as fields, so one update changes several at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyKeyUpdate {
    /// [`ProxyKeyPolicy::passthrough`].
    pub passthrough: Option<bool>,
}

impl ProxyKeyUpdate {
    /// Changes nothing.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl UsageCell {
    pub fn avg_latency_ms(&self) -> u64 {
        self.latency_sum_ms.checked_div(self.requests).unwrap_or(0)
    }

    pub fn error_rate_percent(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 * 100.0 / self.requests as f64
        }
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
    async fn add_key(&self, secret: &str, name: &str) -> Result<KeyId, StoreError>;
    async fn list_keys(&self) -> Result<Vec<KeyRow>, StoreError>;
    async fn remove_key(&self, id: KeyId) -> Result<bool, StoreError>;
    /// Enabling also clears an invalid mark and cooldowns: the operator says "try it again".
    async fn set_key_enabled(&self, id: KeyId, enabled: bool) -> Result<bool, StoreError>;
    /// A proxy key with the default policy (it may do everything).
    async fn create_proxy_key(&self, name: &str, secret_hash: &str) -> Result<i64, StoreError> {
        self.create_proxy_key_with_policy(name, secret_hash, &ProxyKeyPolicy::default())
            .await
    }
    /// A proxy key with `policy`, in one write: a restricted key is never live without
    /// its restriction.
    async fn create_proxy_key_with_policy(
        &self,
        name: &str,
        secret_hash: &str,
        policy: &ProxyKeyPolicy,
    ) -> Result<i64, StoreError>;
    async fn list_proxy_keys(&self) -> Result<Vec<ProxyKeyRow>, StoreError>;
    async fn revoke_proxy_key(&self, id: i64) -> Result<bool, StoreError>;
    /// Sets what `update` holds of a proxy key's policy, in one write; returns whether
    /// the key exists (an empty update only checks that). A running proxy applies it
    /// at its next refresh, at once where the store notifies.
    async fn update_proxy_key(&self, id: i64, update: &ProxyKeyUpdate) -> Result<bool, StoreError>;
    async fn list_logs(&self, query: &LogQuery) -> Result<Vec<LogRecord>, StoreError>;
    /// Totals per time bucket and group, aggregated by the store (no rows are shipped),
    /// in [`sort_usage`] order. The one aggregate a store implements: the dashboard's
    /// charts and tables and the CLI's [`log_stats`] are folded from it.
    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageCell>, StoreError>;
    /// Deletes records that started before `before_ms`; returns how many.
    async fn prune_logs(&self, before_ms: u64) -> Result<u64, StoreError>;
}
