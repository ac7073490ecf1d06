//! Which store a Gemini Proxy process uses, chosen by configuration: PostgreSQL/Supabase
//! over a direct connection (`DATABASE_URL`), Supabase's REST API (`SUPABASE_URL` +
//! `SUPABASE_SERVICE_ROLE_KEY`), or the embedded SQLite file (the default). Both
//! binaries (`gemini-proxy`, `gemini-proxy-web`) flatten [`StoreArgs`] into their flags,
//! so one environment configures either.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use proxy_core::admin::AdminStore;
use proxy_core::platform::{KeyStore, LogSink};
use store_postgres::{ConnectOptions, PostgresStore};
use store_sqlite::SqliteStore;
use store_supabase::SupabaseStore;
use tokio::sync::Notify;

mod key_cache;
pub use key_cache::CachedKeyStore;

/// The store flags, each also an environment variable.
#[derive(Clone, Debug, clap::Args)]
pub struct StoreArgs {
    /// SQLite file holding keys, key state and request logs (when no database is set).
    #[arg(
        long,
        env = "GEMINI_PROXY_DB",
        default_value = "gemini-proxy.db",
        global = true
    )]
    pub db: PathBuf,
    /// PostgreSQL connection string (e.g. a Supabase project's); overrides --db.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// PEM file with the CA that signs the database's certificate (Supabase's root CA
    /// for `sslmode=require`).
    #[arg(long, env = "DATABASE_CA_FILE", global = true)]
    pub database_ca_file: Option<PathBuf>,
    /// Supabase project URL, to use its REST API (with the service role key).
    #[arg(long, env = "SUPABASE_URL", global = true)]
    pub supabase_url: Option<String>,
    /// Supabase service role key (a secret: prefer the environment variable).
    #[arg(
        long,
        env = "SUPABASE_SERVICE_ROLE_KEY",
        global = true,
        hide_env_values = true
    )]
    pub supabase_service_role_key: Option<String>,
}

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
    pub async fn open(cli: &StoreArgs) -> anyhow::Result<Backend> {
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
