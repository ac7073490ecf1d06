//! Management operations (CLI, dashboard) that every store offers. Never on the
//! request path.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::keys::KeyId;
use crate::log::LogRecord;
use crate::platform::{MaybeSend, StoreError};

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
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyKeyRow {
    pub id: i64,
    pub name: String,
    pub revoked: bool,
    pub created_at_ms: u64,
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

/// Totals for one group of requests (all, one model, one key).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    pub group: String,
    pub requests: u64,
    pub errors: u64,
    pub prompt_tokens: u64,
    pub candidates_tokens: u64,
    pub thoughts_tokens: u64,
    pub cached_tokens: u64,
    pub total_tokens: u64,
    pub avg_latency_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogStats {
    pub total: UsageRow,
    pub by_model: Vec<UsageRow>,
    pub by_key: Vec<UsageRow>,
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
pub trait AdminStore: MaybeSend {
    async fn add_key(&self, secret: &str, name: &str) -> Result<KeyId, StoreError>;
    async fn list_keys(&self) -> Result<Vec<KeyRow>, StoreError>;
    async fn remove_key(&self, id: KeyId) -> Result<bool, StoreError>;
    /// Enabling also clears an invalid mark and cooldowns: the operator says "try it again".
    async fn set_key_enabled(&self, id: KeyId, enabled: bool) -> Result<bool, StoreError>;
    async fn create_proxy_key(&self, name: &str, secret_hash: &str) -> Result<i64, StoreError>;
    async fn list_proxy_keys(&self) -> Result<Vec<ProxyKeyRow>, StoreError>;
    async fn revoke_proxy_key(&self, id: i64) -> Result<bool, StoreError>;
    async fn list_logs(&self, query: &LogQuery) -> Result<Vec<LogRecord>, StoreError>;
    async fn log_stats(&self, since_ms: u64) -> Result<LogStats, StoreError>;
    /// Deletes records that started before `before_ms`; returns how many.
    async fn prune_logs(&self, before_ms: u64) -> Result<u64, StoreError>;
}
