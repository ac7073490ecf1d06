//! Client ("proxy") keys. Only the hash of each secret is ever stored; the secret is
//! shown once by whoever generated it and then gone.

use proxy_core::admin::{ProxyKeyRow, ProxyKeyUpdate, validate_policy};
use proxy_core::platform::StoreError;
use proxy_core::policy::{BudgetPeriod, ProxyKeyPolicy};
use rusqlite::types::Type;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};

use crate::convert::{from_sql, opt_from_sql, opt_to_sql, to_sql};
use crate::error::{self, DbResult};

/// The policy columns, in the order [`policy`] reads and [`write_policy`] writes them.
pub(crate) const POLICY_COLUMNS: &str =
    "passthrough, models, rpm, tpm, tokens_per_day, budget_usd, budget_period, expires_at_ms";

fn conversion(index: usize, ty: Type, e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, ty, Box::new(e))
}

/// A policy from the row's columns starting at `first` ([`POLICY_COLUMNS`]). Every
/// field is read, so a new one cannot be forgotten here.
pub(crate) fn policy(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<ProxyKeyPolicy> {
    let models: String = row.get(first + 1)?;
    let period: String = row.get(first + 6)?;
    Ok(ProxyKeyPolicy {
        passthrough: row.get(first)?,
        models: serde_json::from_str(&models).map_err(|e| conversion(first + 1, Type::Text, e))?,
        rpm: opt_from_sql(row.get(first + 2)?),
        tpm: opt_from_sql(row.get(first + 3)?),
        tokens_per_day: opt_from_sql(row.get(first + 4)?),
        budget_usd: row.get(first + 5)?,
        budget_period: BudgetPeriod::parse(&period).ok_or_else(|| {
            conversion(
                first + 6,
                Type::Text,
                std::io::Error::other(format!("unknown budget period {period:?}")),
            )
        })?,
        expires_at_ms: opt_from_sql(row.get(first + 7)?),
    })
}

/// Writes every policy column of proxy key `id`.
fn write_policy(conn: &Connection, id: i64, policy: &ProxyKeyPolicy) -> Result<usize, StoreError> {
    // A Vec<String> always serialises; the fallback only keeps `unwrap` out.
    let models = serde_json::to_string(&policy.models).unwrap_or_else(|_| "[]".into());
    conn.execute(
        "UPDATE proxy_keys SET passthrough = ?2, models = ?3, rpm = ?4, tpm = ?5, \
         tokens_per_day = ?6, budget_usd = ?7, budget_period = ?8, expires_at_ms = ?9 WHERE id = ?1",
        params![
            id,
            policy.passthrough,
            models,
            opt_to_sql(policy.rpm),
            opt_to_sql(policy.tpm),
            opt_to_sql(policy.tokens_per_day),
            policy.budget_usd,
            policy.budget_period.as_str(),
            opt_to_sql(policy.expires_at_ms),
        ],
    )
    .db()
}

/// A proxy key's row as it is created: its name, the secret's hash and shown prefix.
pub(crate) struct NewKey<'a> {
    pub name: &'a str,
    pub secret_hash: &'a str,
    pub prefix: Option<&'a str>,
}

pub(crate) fn create(
    conn: &mut Connection,
    key: &NewKey<'_>,
    policy: &ProxyKeyPolicy,
    now_ms: u64,
) -> Result<i64, StoreError> {
    let NewKey {
        name,
        secret_hash,
        prefix,
    } = *key;
    if secret_hash.is_empty() {
        return Err(StoreError::Invalid("proxy key hash is empty".into()));
    }
    validate_policy(policy)?;
    // One transaction: the key is never live without its policy.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    let inserted = tx.execute(
        "INSERT INTO proxy_keys (name, secret_hash, revoked, created_at_ms, secret_prefix) \
         VALUES (?1, ?2, 0, ?3, ?4)",
        params![name, secret_hash, to_sql(now_ms), prefix],
    );
    let id = match inserted {
        Ok(_) => tx.last_insert_rowid(),
        // The only UNIQUE column is the hash; a clash means the same secret twice.
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::ConstraintViolation => {
            return Err(StoreError::Invalid(
                "a proxy key with this secret already exists".into(),
            ));
        }
        Err(e) => return Err(error::map(e)),
    };
    write_policy(&tx, id, policy)?;
    tx.commit().db()?;
    Ok(id)
}

pub(crate) fn list(conn: &mut Connection) -> Result<Vec<ProxyKeyRow>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT id, name, revoked, created_at_ms, secret_prefix, {POLICY_COLUMNS} FROM proxy_keys ORDER BY id"
        ))
        .db()?;
    let rows = stmt
        .query_map([], |row| {
            Ok(ProxyKeyRow {
                id: row.get(0)?,
                name: row.get(1)?,
                revoked: row.get(2)?,
                created_at_ms: from_sql(row.get(3)?),
                prefix: row.get(4)?,
                policy: policy(row, 5)?,
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

/// Sets what `update` holds (read, merged by [`ProxyKeyUpdate::apply`] and written in
/// one write transaction, so no other write comes between); returns whether the key
/// exists.
pub(crate) fn update(conn: &mut Connection, id: i64, update: &ProxyKeyUpdate) -> Result<bool, StoreError> {
    update.validate()?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    let current = tx
        .query_row(
            &format!("SELECT {POLICY_COLUMNS} FROM proxy_keys WHERE id = ?1"),
            [id],
            |row| policy(row, 0),
        )
        .optional()
        .db()?;
    let Some(mut policy) = current else {
        return Ok(false);
    };
    update.apply(&mut policy);
    write_policy(&tx, id, &policy)?;
    tx.commit().db()?;
    Ok(true)
}

/// Returns whether the key exists.
pub(crate) fn rename(conn: &mut Connection, id: i64, name: &str) -> Result<bool, StoreError> {
    let changed = conn
        .execute("UPDATE proxy_keys SET name = ?2 WHERE id = ?1", params![id, name])
        .db()?;
    Ok(changed > 0)
}

/// Deletes the row; request logs keep the id (AUTOINCREMENT never hands it out again).
pub(crate) fn delete(conn: &mut Connection, id: i64) -> Result<bool, StoreError> {
    let changed = conn.execute("DELETE FROM proxy_keys WHERE id = ?1", [id]).db()?;
    Ok(changed > 0)
}
