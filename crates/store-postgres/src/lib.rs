//! The PostgreSQL store: the same keys, key state, proxy keys and request logs as the
//! embedded SQLite store, in a database several proxy instances share: a Supabase
//! project (schema in `supabase/`) or any PostgreSQL 15+.
//!
//! The semantics are store-sqlite's; what differs is where the work happens. Each
//! operation is one statement (batches go to the schema's functions as one JSON
//! parameter), "now" is the database's clock, and counters are added in SQL under row
//! locks, so any number of instances can write at once.
//!
//! Connections come from a small pool and are replaced when the server drops them. A
//! call that meets a connection the server ended is repeated once on a fresh one where
//! repeating is harmless (reads, idempotent writes) and otherwise fails with
//! `StoreError::Unavailable`; while the database is down every call fails that way, within
//! seconds, and works again once it is back. [`PostgresStore::listen_for_changes`] keeps
//! one more connection for LISTEN, so key changes reach every instance at once.

mod connect;
mod convert;
mod error;
mod keys;
mod listen;
mod logs;
mod migrate;
mod params;
mod proxy_keys;
#[cfg(feature = "testing")]
pub mod testing;
mod tls;
mod usage;

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use proxy_core::admin::{AdminStore, KeyRow, LogQuery, ProxyKeyRow, ProxyKeyUpdate, UsageCell, UsageQuery};
use proxy_core::keys::{KeyId, KeyLimits};
use proxy_core::log::LogRecord;
use proxy_core::platform::{KeySnapshot, KeyStore, LogSink, StoreError};
use proxy_core::policy::ProxyKeyPolicy;
use proxy_core::pool::StateChange;

pub use crate::connect::ConnectOptions;
use crate::connect::Connector;
use crate::error::DbResult;
pub use crate::listen::{CHANGES_CHANNEL, ChangeListener};
pub use crate::migrate::{BOOTSTRAP_ROLES, MIGRATIONS, Migration, apply_migrations, apply_migrations_with};

/// Runs `$body` (an expression using the pooled connection `$client`); if it failed because
/// that connection turned out to be dead (the server restarted, or a pooler or an operator
/// ended it while it sat idle in the pool), runs it once more on a fresh connection. Only
/// for operations whose repetition cannot change the answer: reads, and writes that are
/// idempotent (log inserts skip known ids, cooldowns keep the later end, enabling twice
/// is enabling once). A database that is really gone still fails, once, as `Unavailable`.
macro_rules! retry_on_dead_connection {
    ($store:expr, |$client:ident| $body:expr) => {{
        let $client = $store.client().await?;
        match $body.await {
            Err(StoreError::Unavailable(_)) if $client.is_closed() => {
                drop($client);
                let $client = $store.client().await?;
                $body.await
            }
            other => other,
        }
    }};
}

/// A handle on one PostgreSQL database. Cloning is cheap and shares the pool, so one
/// handle can serve as key store, log sink and admin store at once.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    connector: Connector,
}

impl std::fmt::Debug for PostgresStore {
    // The connection settings hold the password; nothing of them is printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects with default options (plaintext unless the URL says `sslmode=require`)
    /// and checks that the schema is there.
    pub async fn connect(database_url: &str) -> Result<Self, StoreError> {
        Self::connect_with(database_url, ConnectOptions::default()).await
    }

    /// Connects, and fails at once with a clear message when the database cannot be
    /// reached or lacks the schema (apply `supabase/migrations` or call
    /// [`apply_migrations`] first).
    pub async fn connect_with(database_url: &str, options: ConnectOptions) -> Result<Self, StoreError> {
        let connector = Connector::new(database_url, &options)?;
        let pool = connector.pool(options.max_connections)?;
        let store = Self {
            inner: Arc::new(Inner { pool, connector }),
        };
        store.check_schema().await?;
        Ok(store)
    }

    /// Builds the pool without touching the database: for a server that must start
    /// from its cached key set while the database is away. Calls fail with
    /// `Unavailable` until it is reachable.
    pub fn connect_lazy(database_url: &str, options: ConnectOptions) -> Result<Self, StoreError> {
        let connector = Connector::new(database_url, &options)?;
        let pool = connector.pool(options.max_connections)?;
        Ok(Self {
            inner: Arc::new(Inner { pool, connector }),
        })
    }

    /// The schema is there, and as new as this build: a database that missed a later
    /// migration is refused here with what to do, not by every load with a missing column.
    async fn check_schema(&self) -> Result<(), StoreError> {
        /// A column of each later migration, newest last.
        const LATER_COLUMNS: &[(&str, &str)] = &[
            ("proxy_keys", "passthrough"),
            ("proxy_keys", "budget_usd"),
            ("upstream_keys", "limits"),
            ("key_cooldowns", "model_off"),
            ("request_logs", "cost_usd"),
            ("request_logs", "notes"),
        ];
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT to_regclass('public.request_logs') IS NOT NULL \
                 AND to_regprocedure('public.insert_request_logs(jsonb)') IS NOT NULL",
                &[],
            )
            .await
            .db()?;
        let how = "apply supabase/migrations (supabase db push) or call store_postgres::apply_migrations";
        if !row.try_get::<_, bool>(0).db()? {
            return Err(StoreError::Unavailable(format!(
                "the Gemini Proxy schema is missing from this database: {how}"
            )));
        }
        for (table, column) in LATER_COLUMNS {
            let found = client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_attribute \
                     WHERE attrelid = to_regclass('public.' || $1::text) AND attname = $2::text AND NOT attisdropped)",
                    &[table, column],
                )
                .await
                .db()?;
            if !found.try_get::<_, bool>(0).db()? {
                return Err(StoreError::Unavailable(format!(
                    "this database's Gemini Proxy schema is older than this build \
                     ({table}.{column} is missing): {how}"
                )));
            }
        }
        Ok(())
    }

    /// A pooled connection; a dropped one was already discarded by the pool.
    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.inner.pool.get().await.map_err(error::pool)
    }

    /// Opens a dedicated connection that LISTENs for key changes (see [`ChangeListener`]).
    /// Returns once listening, so changes made after it returns are announced.
    pub async fn listen_for_changes(&self) -> Result<ChangeListener, StoreError> {
        ChangeListener::start(self.inner.connector.clone()).await
    }
}

#[async_trait]
impl KeyStore for PostgresStore {
    async fn load(&self) -> Result<KeySnapshot, StoreError> {
        retry_on_dead_connection!(self, |client| async {
            // Both queries go out at once on the one connection (tokio-postgres pipelines).
            let (keys, proxy_keys) = tokio::try_join!(keys::load(&client), proxy_keys::load(&client))?;
            Ok(KeySnapshot { keys, proxy_keys })
        })
    }

    async fn save_state(&self, changes: &[StateChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        retry_on_dead_connection!(self, |client| keys::save_state(&client, changes))
    }
}

#[async_trait]
impl LogSink for PostgresStore {
    async fn write_logs(&self, records: &[LogRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        retry_on_dead_connection!(self, |client| logs::write(&client, records)).map(|_| ())
    }
}

#[async_trait]
impl AdminStore for PostgresStore {
    async fn add_key_with_limits(
        &self,
        secret: &str,
        name: &str,
        limits: &KeyLimits,
    ) -> Result<KeyId, StoreError> {
        keys::validate_secret(secret)?;
        // Not retried: if the first try committed before the connection died, a retry
        // would report the key as a duplicate of itself.
        keys::add(&self.client().await?, secret, name, limits).await
    }

    async fn set_key_limits(&self, id: KeyId, limits: &KeyLimits) -> Result<bool, StoreError> {
        // Setting the same limits twice changes nothing more: safe to repeat.
        retry_on_dead_connection!(self, |client| keys::set_limits(&client, id, limits))
    }

    async fn list_keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        retry_on_dead_connection!(self, |client| keys::list(&client))
    }

    async fn remove_key(&self, id: KeyId) -> Result<bool, StoreError> {
        // Not retried: a second try after a committed first one would answer "not found".
        keys::remove(&self.client().await?, id).await
    }

    async fn set_key_enabled(&self, id: KeyId, enabled: bool) -> Result<bool, StoreError> {
        retry_on_dead_connection!(self, |client| keys::set_enabled(&client, id, enabled))
    }

    async fn create_proxy_key_with_policy(
        &self,
        name: &str,
        secret_hash: &str,
        prefix: Option<&str>,
        policy: &ProxyKeyPolicy,
    ) -> Result<i64, StoreError> {
        // Not retried, like add_key.
        proxy_keys::create(&self.client().await?, (name, secret_hash, prefix), policy).await
    }

    async fn list_proxy_keys(&self) -> Result<Vec<ProxyKeyRow>, StoreError> {
        retry_on_dead_connection!(self, |client| proxy_keys::list(&client))
    }

    async fn revoke_proxy_key(&self, id: i64) -> Result<bool, StoreError> {
        retry_on_dead_connection!(self, |client| proxy_keys::revoke(&client, id))
    }

    async fn update_proxy_key(&self, id: i64, update: &ProxyKeyUpdate) -> Result<bool, StoreError> {
        // Setting the same values twice changes nothing more: safe to repeat.
        retry_on_dead_connection!(self, |client| proxy_keys::update(&client, id, update))
    }

    async fn rename_proxy_key(&self, id: i64, name: &str) -> Result<bool, StoreError> {
        retry_on_dead_connection!(self, |client| proxy_keys::rename(&client, id, name))
    }

    async fn delete_proxy_key(&self, id: i64) -> Result<bool, StoreError> {
        // Not retried: a second try after a committed first one would answer "not found".
        proxy_keys::delete(&self.client().await?, id).await
    }

    async fn list_logs(&self, query: &LogQuery) -> Result<Vec<LogRecord>, StoreError> {
        retry_on_dead_connection!(self, |client| logs::list(&client, query))
    }

    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageCell>, StoreError> {
        retry_on_dead_connection!(self, |client| usage::usage(&client, query))
    }

    async fn prune_logs(&self, before_ms: u64) -> Result<u64, StoreError> {
        // Not retried: a second try after a committed first one would count 0.
        logs::prune(&self.client().await?, before_ms).await
    }
}
