//! Which store serves keys and takes logs and key state, by configuration: the
//! Worker's secrets and its console, or a Supabase project.

use std::rc::Rc;

use proxy_core::platform::{KeyStore, LogSink, StoreError};
use store_supabase::SupabaseStore;

use crate::config::{KeySource, WorkerConfig};
use crate::logs::ConsoleSink;
use crate::secrets_store::SecretsStore;

pub struct Stores {
    pub keys: Rc<dyn KeyStore>,
    pub logs: Rc<dyn LogSink>,
    /// How often to re-read keys; `None` when they cannot change (secrets).
    pub refresh_ms: Option<u64>,
}

pub fn stores(config: &WorkerConfig) -> Result<Stores, StoreError> {
    match &config.source {
        KeySource::Secrets {
            upstream_keys,
            proxy_key_hashes,
        } => Ok(Stores {
            keys: Rc::new(SecretsStore::new(upstream_keys, proxy_key_hashes)),
            logs: Rc::new(ConsoleSink),
            refresh_ms: None,
        }),
        KeySource::Supabase {
            url,
            service_role_key,
        } => {
            let store = Rc::new(SupabaseStore::new(url, service_role_key.expose())?);
            Ok(Stores {
                keys: store.clone(),
                logs: store,
                refresh_ms: Some(config.refresh_ms),
            })
        }
    }
}
