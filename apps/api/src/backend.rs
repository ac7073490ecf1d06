//! Which store this process uses, chosen by configuration: PostgreSQL/Supabase over a
//! direct connection (`DATABASE_URL`), Supabase's REST API (`SUPABASE_URL` +
//! `SUPABASE_SERVICE_ROLE_KEY`), or the embedded SQLite file (the default).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use proxy_axum::CachedKeyStore;
use proxy_core::admin::AdminStore;
use proxy_core::platform::{KeyStore, LogSink};
use store_postgres::{ConnectOptions, PostgresStore};
use store_sqlite::SqliteStore;
use store_supabase::SupabaseStore;
use tokio::sync::Notify;

use crate::cli::Cli;

/// The store behind every role, plus how it announces changes.
pub struct Backend {
    pub admin: Arc<dyn AdminStore>,
    pub keys: Arc<dyn KeyStore>,
    pub logs: Arc<dyn LogSink>,
    pub kind: &'static str,
    postgres: Option<PostgresStore>,
    remote: bool,
}

impl Backend {
    pub async fn open(cli: &Cli) -> anyhow::Result<Backend> {
        if let Some(url) = cli.database_url.as_deref().filter(|u| !u.is_empty()) {
            // Lazy: `serve` must start from its key cache while the database is down;
            // the CLI's first query reports an unreachable database clearly.
            let mut options = ConnectOptions::default();
            if let Some(path) = &cli.database_ca_file {
                let pem = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read DATABASE_CA_FILE {}", path.display()))?;
                options.ca_certificates_pem = Some(pem);
            }
            let store = PostgresStore::connect_lazy(url, options).context("invalid DATABASE_URL")?;
            return Ok(Self::remote(Arc::new(store.clone()), "postgres", Some(store)));
        }
        if let (Some(url), Some(key)) = (
            cli.supabase_url.as_deref(),
            cli.supabase_service_role_key.as_deref(),
        ) {
            let store = SupabaseStore::new(url, key).context("invalid SUPABASE_URL")?;
            return Ok(Self::remote(Arc::new(store), "supabase", None));
        }
        anyhow::ensure!(
            cli.supabase_url.is_none() && cli.supabase_service_role_key.is_none(),
            "SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY must be set together"
        );
        let store = SqliteStore::open(&cli.db)
            .map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", cli.db.display()))?;
        let store = Arc::new(store);
        Ok(Backend {
            admin: store.clone(),
            keys: store.clone(),
            logs: store,
            kind: "sqlite",
            postgres: None,
            remote: false,
        })
    }

    fn remote<S>(store: Arc<S>, kind: &'static str, postgres: Option<PostgresStore>) -> Backend
    where
        S: AdminStore + KeyStore + LogSink + 'static,
    {
        Backend {
            admin: store.clone(),
            keys: store.clone(),
            logs: store,
            kind,
            postgres,
            remote: true,
        }
    }

    /// For `serve`: a remote store's keys are cached on disk so the proxy can start
    /// while the database is away.
    pub fn serving_keys(&self, cache: PathBuf) -> Arc<dyn KeyStore> {
        if self.remote {
            Arc::new(CachedKeyStore::new(self.keys.clone(), cache))
        } else {
            self.keys.clone()
        }
    }

    /// Forwards the database's change notifications to `refresh` (PostgreSQL LISTEN);
    /// other stores rely on the periodic refresh alone.
    pub async fn forward_changes(&self, refresh: Arc<Notify>) {
        let Some(store) = self.postgres.clone() else {
            return;
        };
        tokio::spawn(async move {
            loop {
                match store.listen_for_changes().await {
                    Ok(listener) => loop {
                        listener.changed().await;
                        refresh.notify_one();
                    },
                    Err(error) => {
                        tracing::warn!(%error, "cannot LISTEN for key changes yet; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    }
                }
            }
        });
    }
}
