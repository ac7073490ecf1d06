//! The embedded default store of the self-hosted binary: with no database configured,
//! upstream keys, proxy keys, learned key state and request logs live in one SQLite file.
//!
//! Several processes share that file at once (the `serve` process and CLI invocations
//! such as `keys add`), so it runs in WAL mode with a busy timeout, and every write is
//! an `IMMEDIATE` transaction (see [`schema`]). SQLite calls block, so each operation
//! runs on tokio's blocking pool, never on an async worker.

mod convert;
mod error;
mod keys;
mod logs;
mod proxy_keys;
mod schema;
mod usage;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use proxy_core::admin::{AdminStore, KeyRow, LogQuery, ProxyKeyRow, ProxyKeyUpdate, UsageCell, UsageQuery};
use proxy_core::keys::{KeyId, KeyLimits};
use proxy_core::log::LogRecord;
use proxy_core::platform::{KeySnapshot, KeyStore, LogSink, StoreError};
use proxy_core::policy::ProxyKeyPolicy;
use proxy_core::pool::StateChange;
use rusqlite::Connection;

use crate::error::DbResult;

/// A handle on one SQLite database. Cloning is cheap and shares the connection, so one
/// handle can serve as key store, log sink and admin store at once.
#[derive(Clone)]
pub struct SqliteStore {
    // One connection per handle: SQLite serialises writers anyway, and a single
    // connection keeps the prepared-statement cache warm.
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if missing, parent folder included) the database at `path` and
    /// brings its schema up to date. Blocks briefly; call it at start-up.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", parent.display())))?;
        }
        create_private(path)
            .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", path.display())))?;
        let conn = Connection::open(path).db()?;
        Self::from_connection(conn, true)
    }

    /// A private database that vanishes with the handle, for tests.
    pub fn open_in_memory() -> Result<SqliteStore, StoreError> {
        let conn = Connection::open_in_memory().db()?;
        Self::from_connection(conn, false)
    }

    fn from_connection(mut conn: Connection, wal: bool) -> Result<SqliteStore, StoreError> {
        schema::configure(&conn, wal)?;
        schema::migrate(&mut conn)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `op` with the connection on the blocking pool.
    async fn run<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic while the lock was held leaves the connection usable: an open
            // transaction rolls back when dropped, so a poisoned lock is safe to reuse.
            let mut guard = conn.lock().unwrap_or_else(PoisonError::into_inner);
            op(&mut guard)
        })
        .await
        .map_err(|_| StoreError::Unavailable("store task panicked or was cancelled".into()))?
    }
}

/// Creates a missing database file readable by its owner only: it holds upstream keys
/// in plaintext. SQLite gives the `-wal`, `-shm` and journal files it creates beside it
/// the database file's own mode, so they are private too. An existing file keeps the
/// mode its operator gave it. Names SQLite reads as no file (`:memory:`, `file:` URIs)
/// are left to SQLite.
fn create_private(path: &Path) -> std::io::Result<()> {
    let name = path.to_string_lossy();
    if name == ":memory:" || name.starts_with("file:") {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn load(&self) -> Result<KeySnapshot, StoreError> {
        self.run(|conn| keys::load(conn, convert::now_ms())).await
    }

    async fn save_state(&self, changes: &[StateChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let changes = changes.to_vec();
        self.run(move |conn| keys::save_state(conn, &changes, convert::now_ms()))
            .await
    }
}

#[async_trait]
impl LogSink for SqliteStore {
    async fn write_logs(&self, records: &[LogRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let records = records.to_vec();
        self.run(move |conn| logs::write(conn, &records)).await
    }
}

#[async_trait]
impl AdminStore for SqliteStore {
    async fn add_key_with_limits(
        &self,
        secret: &str,
        name: &str,
        limits: &KeyLimits,
    ) -> Result<KeyId, StoreError> {
        keys::validate_secret(secret)?;
        let (secret, name, limits) = (secret.to_string(), name.to_string(), limits.clone());
        self.run(move |conn| keys::add(conn, &secret, &name, &limits, convert::now_ms()))
            .await
    }

    async fn set_key_limits(&self, id: KeyId, limits: &KeyLimits) -> Result<bool, StoreError> {
        let limits = limits.clone();
        self.run(move |conn| keys::set_limits(conn, id, &limits)).await
    }

    async fn list_keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        self.run(|conn| keys::list(conn, convert::now_ms())).await
    }

    async fn remove_key(&self, id: KeyId) -> Result<bool, StoreError> {
        self.run(move |conn| keys::remove(conn, id)).await
    }

    async fn set_key_enabled(&self, id: KeyId, enabled: bool) -> Result<bool, StoreError> {
        self.run(move |conn| keys::set_enabled(conn, id, enabled)).await
    }

    async fn create_proxy_key_with_policy(
        &self,
        name: &str,
        secret_hash: &str,
        prefix: Option<&str>,
        policy: &ProxyKeyPolicy,
    ) -> Result<i64, StoreError> {
        let (name, secret_hash, policy) = (name.to_string(), secret_hash.to_string(), policy.clone());
        let prefix = prefix.map(str::to_string);
        self.run(move |conn| {
            let key = proxy_keys::NewKey {
                name: &name,
                secret_hash: &secret_hash,
                prefix: prefix.as_deref(),
            };
            proxy_keys::create(conn, &key, &policy, convert::now_ms())
        })
        .await
    }

    async fn list_proxy_keys(&self) -> Result<Vec<ProxyKeyRow>, StoreError> {
        self.run(proxy_keys::list).await
    }

    async fn revoke_proxy_key(&self, id: i64) -> Result<bool, StoreError> {
        self.run(move |conn| proxy_keys::revoke(conn, id)).await
    }

    async fn update_proxy_key(&self, id: i64, update: &ProxyKeyUpdate) -> Result<bool, StoreError> {
        let update = update.clone();
        self.run(move |conn| proxy_keys::update(conn, id, &update)).await
    }

    async fn rename_proxy_key(&self, id: i64, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.run(move |conn| proxy_keys::rename(conn, id, &name)).await
    }

    async fn delete_proxy_key(&self, id: i64) -> Result<bool, StoreError> {
        self.run(move |conn| proxy_keys::delete(conn, id)).await
    }

    async fn list_logs(&self, query: &LogQuery) -> Result<Vec<LogRecord>, StoreError> {
        let query = query.clone();
        self.run(move |conn| logs::list(conn, &query)).await
    }

    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageCell>, StoreError> {
        let query = query.clone();
        self.run(move |conn| usage::usage(conn, &query)).await
    }

    async fn prune_logs(&self, before_ms: u64) -> Result<u64, StoreError> {
        self.run(move |conn| logs::prune(conn, before_ms)).await
    }
}
