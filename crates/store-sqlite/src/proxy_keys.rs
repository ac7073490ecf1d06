//! Client ("proxy") keys. Only the hash of each secret is ever stored; the secret is
//! shown once by whoever generated it and then gone.

use proxy_core::admin::{ProxyKeyRow, ProxyKeyUpdate};
use proxy_core::platform::StoreError;
use proxy_core::policy::ProxyKeyPolicy;
use rusqlite::{Connection, ErrorCode, params};

use crate::convert::{from_sql, to_sql};
use crate::error::{self, DbResult};

/// The policy columns, in the order [`policy`] reads them.
pub(crate) const POLICY_COLUMNS: &str = "passthrough";

/// A policy from the row's columns starting at `first` ([`POLICY_COLUMNS`]).
pub(crate) fn policy(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<ProxyKeyPolicy> {
    Ok(ProxyKeyPolicy {
        passthrough: row.get(first)?,
        ..ProxyKeyPolicy::default()
    })
}

pub(crate) fn create(
    conn: &mut Connection,
    name: &str,
    secret_hash: &str,
    policy: &ProxyKeyPolicy,
    now_ms: u64,
) -> Result<i64, StoreError> {
    if secret_hash.is_empty() {
        return Err(StoreError::Invalid("proxy key hash is empty".into()));
    }
    let inserted = conn.execute(
        "INSERT INTO proxy_keys (name, secret_hash, revoked, created_at_ms, passthrough) \
         VALUES (?1, ?2, 0, ?3, ?4)",
        params![name, secret_hash, to_sql(now_ms), policy.passthrough],
    );
    match inserted {
        Ok(_) => Ok(conn.last_insert_rowid()),
        // The only UNIQUE column is the hash; a clash means the same secret twice.
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::ConstraintViolation => Err(
            StoreError::Invalid("a proxy key with this secret already exists".into()),
        ),
        Err(e) => Err(error::map(e)),
    }
}

pub(crate) fn list(conn: &mut Connection) -> Result<Vec<ProxyKeyRow>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT id, name, revoked, created_at_ms, {POLICY_COLUMNS} FROM proxy_keys ORDER BY id"
        ))
        .db()?;
    let rows = stmt
        .query_map([], |row| {
            Ok(ProxyKeyRow {
                id: row.get(0)?,
                name: row.get(1)?,
                revoked: row.get(2)?,
                created_at_ms: from_sql(row.get(3)?),
                policy: policy(row, 4)?,
            })
        })
        .db()?;
    rows.map(|row| row.db()).collect()
}

/// Returns whether the key exists; revoking twice is not an error.
pub(crate) fn revoke(conn: &mut Connection, id: i64) -> Result<bool, StoreError> {
    let changed = conn
        .execute("UPDATE proxy_keys SET revoked = 1 WHERE id = ?1", [id])
        .db()?;
    Ok(changed > 0)
}

/// Sets what `update` holds, in one statement; returns whether the key exists.
pub(crate) fn update(conn: &mut Connection, id: i64, update: &ProxyKeyUpdate) -> Result<bool, StoreError> {
    let changed = conn
        .execute(
            "UPDATE proxy_keys SET passthrough = COALESCE(?2, passthrough) WHERE id = ?1",
            params![id, update.passthrough],
        )
        .db()?;
    Ok(changed > 0)
}
