//! The Supabase store: upstream keys, proxy-key hashes, learned key state and request
//! logs in a Supabase project's PostgreSQL, reached through its REST API (PostgREST)
//! with the project's service role key. The schema is `supabase/migrations/`.
//!
//! Plain HTTP and no tokio, so the same store serves the native binary and the
//! Cloudflare Worker (wasm32, where `Send` is not required: see
//! `proxy_core::platform::MaybeSend`). Every request uses PostgREST's documented forms:
//! table reads with `select`/filters/`order`/`limit`/`offset`, writes with
//! `Prefer: return=representation`, and `POST /rpc/<function>` with named arguments.
//! Work that must be atomic (a log batch with its key counters, a batch of key state,
//! pruning, usage totals) is one SQL function, so one request and one transaction.

mod convert;
mod error;
mod keys;
mod logs;
mod proxy_keys;
mod rest;
mod time;
mod usage;

use async_trait::async_trait;
use futures_util::future::try_join;
use proxy_core::admin::{AdminStore, KeyRow, LogQuery, ProxyKeyRow, ProxyKeyUpdate, UsageCell, UsageQuery};
use proxy_core::keys::{KeyId, KeyLimits};
use proxy_core::log::LogRecord;
use proxy_core::platform::{KeySnapshot, KeyStore, LogSink, StoreError};
use proxy_core::policy::ProxyKeyPolicy;
use proxy_core::pool::StateChange;

use crate::rest::Rest;

/// A handle on one Supabase project. Cloning is cheap and shares the HTTP client, so
/// one handle can serve as key store, log sink and admin store at once.
#[derive(Clone)]
pub struct SupabaseStore {
    rest: Rest,
}

/// Shows where the store points, never the service role key.
impl std::fmt::Debug for SupabaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupabaseStore")
            .field("rest_url", &self.rest.rest_url())
            .field("service_role_key", &"<hidden>")
            .finish()
    }
}

impl SupabaseStore {
    /// A store for the project at `supabase_url` (`https://<ref>.supabase.co`), whose
    /// REST API is `{supabase_url}/rest/v1`. Nothing is sent until the first call.
    pub fn new(supabase_url: &str, service_role_key: &str) -> Result<SupabaseStore, StoreError> {
        let base = supabase_url.trim_end_matches('/');
        SupabaseStore::with_rest_url(&format!("{base}/rest/v1"), service_role_key)
    }

    /// A store on a PostgREST base URL given whole (tests, self-hosted PostgREST).
    pub fn with_rest_url(rest_url: &str, service_role_key: &str) -> Result<SupabaseStore, StoreError> {
        Ok(SupabaseStore {
            rest: Rest::new(rest_url, service_role_key)?,
        })
    }

    /// The PostgREST base URL requests go to.
    pub fn rest_url(&self) -> &str {
        self.rest.rest_url()
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl KeyStore for SupabaseStore {
    async fn load(&self) -> Result<KeySnapshot, StoreError> {
        let (keys, proxy_keys) = try_join(
            keys::load(&self.rest, time::now_ms()),
            proxy_keys::load(&self.rest),
        )
        .await?;
        Ok(KeySnapshot { keys, proxy_keys })
    }

    async fn save_state(&self, changes: &[StateChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        Ok(keys::save_state(&self.rest, changes).await?)
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl LogSink for SupabaseStore {
    async fn write_logs(&self, records: &[LogRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        logs::write(&self.rest, records).await
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl AdminStore for SupabaseStore {
    async fn add_key_with_limits(
        &self,
        secret: &str,
        name: &str,
        limits: &KeyLimits,
    ) -> Result<KeyId, StoreError> {
        keys::add(&self.rest, secret, name, limits).await
    }

    async fn set_key_limits(&self, id: KeyId, limits: &KeyLimits) -> Result<bool, StoreError> {
        Ok(keys::set_limits(&self.rest, id, limits).await?)
    }

    async fn list_keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        Ok(keys::list(&self.rest, time::now_ms()).await?)
    }

    async fn remove_key(&self, id: KeyId) -> Result<bool, StoreError> {
        Ok(keys::remove(&self.rest, id).await?)
    }

    async fn set_key_enabled(&self, id: KeyId, enabled: bool) -> Result<bool, StoreError> {
        Ok(keys::set_enabled(&self.rest, id, enabled).await?)
    }

    async fn create_proxy_key_with_policy(
        &self,
        name: &str,
        secret_hash: &str,
        prefix: Option<&str>,
        policy: &ProxyKeyPolicy,
    ) -> Result<i64, StoreError> {
        proxy_keys::create(&self.rest, (name, secret_hash, prefix), policy).await
    }

    async fn list_proxy_keys(&self) -> Result<Vec<ProxyKeyRow>, StoreError> {
        Ok(proxy_keys::list(&self.rest).await?)
    }

    async fn revoke_proxy_key(&self, id: i64) -> Result<bool, StoreError> {
        Ok(proxy_keys::revoke(&self.rest, id).await?)
    }

    async fn update_proxy_key(&self, id: i64, update: &ProxyKeyUpdate) -> Result<bool, StoreError> {
        proxy_keys::update(&self.rest, id, update).await
    }

    async fn rename_proxy_key(&self, id: i64, name: &str) -> Result<bool, StoreError> {
        Ok(proxy_keys::rename(&self.rest, id, name).await?)
    }

    async fn delete_proxy_key(&self, id: i64) -> Result<bool, StoreError> {
        Ok(proxy_keys::delete(&self.rest, id).await?)
    }

    async fn list_logs(&self, query: &LogQuery) -> Result<Vec<LogRecord>, StoreError> {
        Ok(logs::list(&self.rest, query).await?)
    }

    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageCell>, StoreError> {
        Ok(usage::usage(&self.rest, query).await?)
    }

    async fn prune_logs(&self, before_ms: u64) -> Result<u64, StoreError> {
        Ok(logs::prune(&self.rest, before_ms).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "eyJhbGciOiJIUzI1NiJ9.service-role-claims.signature-part";

    #[test]
    fn debug_never_shows_the_key() {
        let store = SupabaseStore::new("https://abc.supabase.co/", KEY).expect("valid");
        let shown = format!("{store:?}");
        assert!(shown.contains("https://abc.supabase.co/rest/v1"), "{shown}");
        assert!(!shown.contains("signature") && !shown.contains("eyJ"), "{shown}");
    }

    #[test]
    fn bad_settings_are_rejected_without_echo() {
        for bad in ["", "has space", "line\nbreak"] {
            match SupabaseStore::new("https://abc.supabase.co", bad) {
                Err(StoreError::Invalid(msg)) => assert!(bad.is_empty() || !msg.contains(bad), "{msg}"),
                other => panic!("expected Invalid, got {other:?}"),
            }
        }
        assert!(matches!(
            SupabaseStore::new("abc.supabase.co", KEY),
            Err(StoreError::Invalid(_))
        ));
    }
}
