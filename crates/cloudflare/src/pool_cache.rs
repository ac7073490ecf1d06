//! The isolate's copy of the keys: the engine's pool and the proxy-key table, loaded
//! from the [`KeyStore`] on the isolate's first request and refreshed lazily: a request
//! that finds the copy older than the refresh interval starts a reload in the
//! background (`ctx.wait_until`) and is served from the copy it has. No store round
//! trip on the request path, except the very first load of a fresh isolate.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use proxy_core::auth::ProxyKeyTable;
use proxy_core::platform::{KeySnapshot, KeyStore, StoreError};
use proxy_core::pool::KeyPool;

use crate::diag;

pub struct KeyCache {
    store: Rc<dyn KeyStore>,
    pool: Arc<Mutex<KeyPool>>,
    proxy_keys: RefCell<Rc<ProxyKeyTable>>,
    /// When the copy was last loaded (or a reload last failed), unix ms.
    checked_at_ms: Cell<Option<u64>>,
    refreshing: Cell<bool>,
    /// `None`: the store never changes (keys from secrets), never reload.
    refresh_ms: Option<u64>,
    failing: Cell<bool>,
}

impl KeyCache {
    pub fn new(store: Rc<dyn KeyStore>, pool: Arc<Mutex<KeyPool>>, refresh_ms: Option<u64>) -> Self {
        Self {
            store,
            pool,
            proxy_keys: RefCell::new(Rc::new(ProxyKeyTable::default())),
            checked_at_ms: Cell::new(None),
            refreshing: Cell::new(false),
            refresh_ms,
            failing: Cell::new(false),
        }
    }

    pub fn store(&self) -> &Rc<dyn KeyStore> {
        &self.store
    }

    pub fn is_loaded(&self) -> bool {
        self.checked_at_ms.get().is_some()
    }

    /// The last reload failed; the isolate serves the keys it has.
    pub fn is_failing(&self) -> bool {
        self.failing.get()
    }

    pub fn proxy_keys(&self) -> Rc<ProxyKeyTable> {
        self.proxy_keys.borrow().clone()
    }

    /// The first load of an isolate: the request waits for it, as it has nothing else.
    pub async fn load(&self, now_ms: u64) -> Result<(), StoreError> {
        let loaded = self.store.load().await;
        self.failing.set(loaded.is_err());
        self.apply(loaded?, now_ms);
        Ok(())
    }

    /// True when a background reload is due now; marks it as started. The caller then
    /// runs [`KeyCache::refresh`] (in `ctx.wait_until`).
    pub fn begin_refresh(&self, now_ms: u64) -> bool {
        let (Some(interval), Some(checked)) = (self.refresh_ms, self.checked_at_ms.get()) else {
            return false;
        };
        if self.refreshing.get() || now_ms.saturating_sub(checked) < interval {
            return false;
        }
        self.refreshing.set(true);
        true
    }

    /// Reloads from the store. A store that cannot be read is reported once and the
    /// last known keys keep serving; the next try is one interval later.
    pub async fn refresh(self: Rc<Self>, now_ms: u64) {
        let result = self.store.load().await;
        self.refreshing.set(false);
        match result {
            Ok(snapshot) => {
                if self.failing.replace(false) {
                    diag::warn("key store readable again; keys refreshed");
                }
                self.apply(snapshot, now_ms);
            }
            Err(error) => {
                if !self.failing.replace(true) {
                    diag::warn(&format!(
                        "cannot refresh keys from the store, serving the last known keys: {error}"
                    ));
                }
                self.checked_at_ms.set(Some(now_ms));
            }
        }
    }

    fn apply(&self, snapshot: KeySnapshot, now_ms: u64) {
        *self.proxy_keys.borrow_mut() = Rc::new(ProxyKeyTable::new(snapshot.proxy_keys));
        self.pool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .sync(snapshot.keys);
        self.checked_at_ms.set(Some(now_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets_store::SecretsStore;
    use futures_util::FutureExt;
    use proxy_core::auth::{AuthOutcome, Credential, hash_proxy_key};
    use proxy_core::keys::Secret;
    use proxy_core::policy::ProxyKeyPolicy;

    #[test]
    fn loads_once_then_refreshes_on_the_interval() {
        let store: Rc<dyn KeyStore> = Rc::new(SecretsStore::new(
            &[(1, Secret::new("AIzaOne"))],
            &[(7, hash_proxy_key("gp-x"))],
        ));
        let pool = Arc::new(Mutex::new(KeyPool::default()));
        let cache = Rc::new(KeyCache::new(store, pool.clone(), Some(10_000)));
        assert!(!cache.is_loaded());
        assert!(
            !cache.begin_refresh(0),
            "nothing to refresh before the first load"
        );
        assert!(matches!(cache.load(1_000).now_or_never(), Some(Ok(()))));
        assert_eq!(pool.lock().map(|p| p.len()).unwrap_or(0), 1);
        let credential = Credential {
            value: "gp-x".into(),
            bearer: false,
        };
        assert_eq!(
            cache.proxy_keys().check(Some(&credential)),
            AuthOutcome::Allowed {
                proxy_key_id: 7,
                policy: &std::sync::Arc::new(ProxyKeyPolicy::default()),
            }
        );
        assert!(!cache.begin_refresh(5_000));
        assert!(cache.begin_refresh(11_000));
        assert!(!cache.begin_refresh(11_001), "one refresh at a time");
        assert!(cache.clone().refresh(11_002).now_or_never().is_some());
        assert!(!cache.begin_refresh(12_000));
        assert!(cache.begin_refresh(21_002));
    }

    #[test]
    fn secrets_never_refresh() {
        let store: Rc<dyn KeyStore> = Rc::new(SecretsStore::new(&[], &[]));
        let cache = KeyCache::new(store, Arc::new(Mutex::new(KeyPool::default())), None);
        assert!(matches!(cache.load(0).now_or_never(), Some(Ok(()))));
        assert!(!cache.begin_refresh(u64::MAX));
    }
}
