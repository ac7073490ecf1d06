//! Keys from the Worker's secrets (`GEMINI_API_KEYS`, `PROXY_KEYS`) behind the core's
//! [`KeyStore`] trait, so the request path is the same with or without a database.
//! There is nowhere to persist learned key state: it lives in the isolate's pool.

use async_trait::async_trait;
use proxy_core::keys::{ProxyKey, Secret, UpstreamKey};
use proxy_core::platform::{KeySnapshot, KeyStore, StoreError};
use proxy_core::pool::{KeyState, StateChange};

pub struct SecretsStore {
    snapshot: KeySnapshot,
}

impl SecretsStore {
    pub fn new(upstream_keys: &[(i64, Secret)], proxy_key_hashes: &[(i64, String)]) -> Self {
        let keys = upstream_keys
            .iter()
            .map(|(id, secret)| {
                let key = UpstreamKey {
                    id: *id,
                    name: format!("key-{id}"),
                    secret: secret.clone(),
                    enabled: true,
                    limits: Default::default(),
                };
                (key, KeyState::default())
            })
            .collect();
        let proxy_keys = proxy_key_hashes
            .iter()
            .map(|(id, hash)| ProxyKey {
                id: *id,
                name: format!("proxy-key-{id}"),
                secret_hash: hash.clone(),
                revoked: false,
                // Secrets carry no policy: each key may do what every key could before.
                policy: Default::default(),
            })
            .collect();
        Self {
            snapshot: KeySnapshot { keys, proxy_keys },
        }
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl KeyStore for SecretsStore {
    async fn load(&self) -> Result<KeySnapshot, StoreError> {
        Ok(self.snapshot.clone())
    }

    async fn save_state(&self, _changes: &[StateChange]) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn snapshot_keeps_ids_and_hashes() {
        let store = SecretsStore::new(
            &[(1, Secret::new("AIzaOne")), (3, Secret::new("AIzaThree"))],
            &[(2, "ab".repeat(32))],
        );
        let Some(Ok(snapshot)) = store.load().now_or_never() else {
            panic!("load is immediate");
        };
        let ids: Vec<i64> = snapshot.keys.iter().map(|(k, _)| k.id).collect();
        assert_eq!(ids, vec![1, 3]);
        assert!(
            snapshot
                .keys
                .iter()
                .all(|(k, s)| k.enabled && *s == KeyState::default())
        );
        assert_eq!(snapshot.proxy_keys[0].id, 2);
        assert_eq!(snapshot.proxy_keys[0].secret_hash, "ab".repeat(32));
        assert!(
            snapshot.proxy_keys[0].policy.passthrough,
            "a secret's key may use the pass-through routes"
        );
    }
}
