//! A last-known key set on disk, so the proxy can start while its database is down.
//!
//! Wraps any [`KeyStore`]: every successful load is written to a file (owner-only
//! permissions: it holds upstream keys, like the database does), and a load that fails
//! falls back to that file. Without a file, the error says why the proxy cannot start.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use proxy_core::keys::{ProxyKey, Secret, UpstreamKey};
use proxy_core::platform::{KeySnapshot, KeyStore, StoreError};
use proxy_core::policy::ProxyKeyPolicy;
use proxy_core::pool::{KeyState, StateChange};
use serde::{Deserialize, Serialize};

pub struct CachedKeyStore {
    inner: Arc<dyn KeyStore>,
    path: PathBuf,
    /// What the file holds now, so a refresh that changed nothing writes nothing.
    written: Mutex<Option<Vec<u8>>>,
}

#[derive(Serialize, Deserialize)]
struct CachedKey {
    id: i64,
    name: String,
    secret: String,
    enabled: bool,
    invalid_reason: Option<String>,
    /// A cache written before key limits existed has none.
    #[serde(default)]
    limits: proxy_core::keys::KeyLimits,
}

#[derive(Serialize, Deserialize)]
struct CachedProxyKey {
    id: i64,
    name: String,
    secret_hash: String,
    revoked: bool,
    /// Absent from files an older build wrote, so those load with the default policy
    /// (everything allowed, what those keys could do); a field missing from the policy
    /// takes its own default.
    #[serde(default)]
    policy: ProxyKeyPolicy,
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    keys: Vec<CachedKey>,
    proxy_keys: Vec<CachedProxyKey>,
}

impl CachedKeyStore {
    pub fn new(inner: Arc<dyn KeyStore>, path: impl Into<PathBuf>) -> Self {
        Self {
            inner,
            path: path.into(),
            written: Mutex::new(None),
        }
    }

    async fn write_cache(&self, snapshot: &KeySnapshot) {
        let Ok(json) = serde_json::to_vec(&to_file(snapshot)) else {
            return;
        };
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if written.as_ref() == Some(&json) {
            return;
        }
        match write_private(&self.path, &json) {
            Ok(()) => *written = Some(json),
            Err(error) => tracing::warn!(path = %self.path.display(), %error, "cannot write the key cache"),
        }
    }

    async fn read_cache(&self) -> Result<KeySnapshot, StoreError> {
        let path = self.path.clone();
        let text = tokio::task::spawn_blocking(move || std::fs::read_to_string(&path))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
            .map_err(|e| {
                StoreError::Unavailable(format!("no cached key set at {}: {e}", self.path.display()))
            })?;
        let file: CacheFile = serde_json::from_str(&text).map_err(|e| {
            StoreError::Invalid(format!(
                "cached key set {} is unreadable: {e}",
                self.path.display()
            ))
        })?;
        Ok(from_file(file))
    }
}

#[async_trait]
impl KeyStore for CachedKeyStore {
    async fn load(&self) -> Result<KeySnapshot, StoreError> {
        match self.inner.load().await {
            Ok(snapshot) => {
                self.write_cache(&snapshot).await;
                Ok(snapshot)
            }
            Err(error) => match self.read_cache().await {
                Ok(snapshot) => {
                    tracing::warn!(%error, path = %self.path.display(), "store unreachable; using the cached key set");
                    Ok(snapshot)
                }
                Err(cache_error) => Err(StoreError::Unavailable(format!("{error}; and {cache_error}"))),
            },
        }
    }

    async fn save_state(&self, changes: &[StateChange]) -> Result<(), StoreError> {
        self.inner.save_state(changes).await
    }
}

fn to_file(snapshot: &KeySnapshot) -> CacheFile {
    let keys = snapshot
        .keys
        .iter()
        .map(|(key, state)| CachedKey {
            id: key.id,
            name: key.name.clone(),
            secret: key.secret.expose().to_string(),
            enabled: key.enabled,
            invalid_reason: state.invalid_reason.clone(),
            limits: key.limits.clone(),
        })
        .collect();
    let proxy_keys = snapshot
        .proxy_keys
        .iter()
        .map(|k| CachedProxyKey {
            id: k.id,
            name: k.name.clone(),
            secret_hash: k.secret_hash.clone(),
            revoked: k.revoked,
            policy: (*k.policy).clone(),
        })
        .collect();
    CacheFile { keys, proxy_keys }
}

fn from_file(file: CacheFile) -> KeySnapshot {
    let keys = file
        .keys
        .into_iter()
        .map(|k| {
            let key = UpstreamKey {
                id: k.id,
                name: k.name,
                secret: Secret::new(k.secret),
                enabled: k.enabled,
                limits: k.limits,
            };
            (
                key,
                KeyState {
                    invalid_reason: k.invalid_reason,
                    ..KeyState::default()
                },
            )
        })
        .collect();
    let proxy_keys = file
        .proxy_keys
        .into_iter()
        .map(|k| ProxyKey {
            id: k.id,
            name: k.name,
            secret_hash: k.secret_hash,
            revoked: k.revoked,
            policy: std::sync::Arc::new(k.policy),
        })
        .collect();
    KeySnapshot { keys, proxy_keys }
}

/// Writes via a temporary file and a rename, so a crash never leaves half a cache.
/// (A few KiB, written only when the key set changed: fine to do inline.)
fn write_private(path: &Path, json: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(&tmp)?, json)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Flaky {
        up: AtomicBool,
    }

    #[async_trait]
    impl KeyStore for Flaky {
        async fn load(&self) -> Result<KeySnapshot, StoreError> {
            if !self.up.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("connection refused".into()));
            }
            let key = UpstreamKey {
                id: 7,
                name: "k".into(),
                secret: Secret::new("AIzaCached"),
                enabled: true,
                limits: Default::default(),
            };
            let proxy = ProxyKey {
                id: 1,
                name: "p".into(),
                secret_hash: "ab".into(),
                revoked: false,
                policy: Arc::new(ProxyKeyPolicy {
                    passthrough: false,
                    ..ProxyKeyPolicy::default()
                }),
            };
            Ok(KeySnapshot {
                keys: vec![(key, KeyState::default())],
                proxy_keys: vec![proxy],
            })
        }
        async fn save_state(&self, _: &[StateChange]) -> Result<(), StoreError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn serves_the_last_known_set_when_the_store_is_down() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cache/keys.json");
        let inner = Arc::new(Flaky {
            up: AtomicBool::new(false),
        });
        let cached = CachedKeyStore::new(inner.clone(), &path);
        let error = cached
            .load()
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("connection refused") && error.contains("no cached key set"),
            "{error}"
        );
        inner.up.store(true, Ordering::SeqCst);
        assert_eq!(cached.load().await.map(|s| s.keys.len()).ok(), Some(1));
        inner.up.store(false, Ordering::SeqCst);
        let snapshot = cached.load().await.expect("falls back to the cache");
        assert_eq!(snapshot.keys[0].0.secret.expose(), "AIzaCached");
        assert_eq!(snapshot.proxy_keys[0].secret_hash, "ab");
        assert!(
            !snapshot.proxy_keys[0].policy.passthrough,
            "a restricted key stays restricted while the store is down"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            assert_eq!(mode, 0o600);
        }
    }

    /// A cache file written before proxy keys had a policy still loads, and its keys may
    /// do what they could.
    #[tokio::test]
    async fn an_older_cache_file_loads_with_the_default_policy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys.json");
        let old = r#"{"keys":[{"id":7,"name":"k","secret":"AIzaCached","enabled":true,"invalid_reason":null}],
            "proxy_keys":[{"id":1,"name":"p","secret_hash":"ab","revoked":false}]}"#;
        std::fs::write(&path, old).expect("write an old cache");
        let inner = Arc::new(Flaky {
            up: AtomicBool::new(false),
        });
        let snapshot = CachedKeyStore::new(inner, &path)
            .load()
            .await
            .expect("the old file loads");
        assert_eq!(snapshot.proxy_keys.len(), 1);
        assert_eq!(*snapshot.proxy_keys[0].policy, ProxyKeyPolicy::default());
        assert!(snapshot.proxy_keys[0].policy.passthrough);
    }
}
