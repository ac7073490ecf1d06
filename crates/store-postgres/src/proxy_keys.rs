//! Client ("proxy") keys. Only the SHA-256 of each secret is ever stored; the secret is
//! shown once by whoever generated it and then gone.

use proxy_core::admin::{ProxyKeyRow, ProxyKeyUpdate};
use proxy_core::keys::ProxyKey;
use proxy_core::platform::StoreError;
use proxy_core::policy::ProxyKeyPolicy;
use tokio_postgres::Row;

use crate::convert::{clean, from_sql, ms_from_ts};
use crate::error::DbResult;

/// The schema only accepts a lowercase hex SHA-256 (see the migration's check), which
/// makes storing a raw `gp-…` key impossible; checked here first for a clear message.
fn validate_hash(secret_hash: &str) -> Result<(), StoreError> {
    if secret_hash.is_empty() {
        return Err(StoreError::Invalid("proxy key hash is empty".into()));
    }
    let hex = secret_hash.len() == 64
        && secret_hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex {
        return Err(StoreError::Invalid(
            "proxy key hash must be a lowercase hex SHA-256 (64 characters)".into(),
        ));
    }
    Ok(())
}

/// The policy columns every query of proxy keys selects, for [`policy`].
const POLICY_COLUMNS: &str = "passthrough";

fn policy(row: &Row) -> Result<ProxyKeyPolicy, StoreError> {
    Ok(ProxyKeyPolicy {
        passthrough: row.try_get("passthrough").db()?,
        ..ProxyKeyPolicy::default()
    })
}

pub(crate) async fn create(
    client: &deadpool_postgres::Client,
    name: &str,
    secret_hash: &str,
    policy: &ProxyKeyPolicy,
) -> Result<i64, StoreError> {
    validate_hash(secret_hash)?;
    let stmt = client
        .prepare_cached(
            "INSERT INTO proxy_keys (name, secret_hash, passthrough) VALUES ($1, $2, $3) \
             ON CONFLICT (secret_hash) DO NOTHING RETURNING id",
        )
        .await
        .db()?;
    match client
        .query_opt(&stmt, &[&clean(name), &secret_hash, &policy.passthrough])
        .await
        .db()?
    {
        Some(row) => row.try_get("id").db(),
        // The only UNIQUE column is the hash; a clash means the same secret twice.
        None => Err(StoreError::Invalid(
            "a proxy key with this secret already exists".into(),
        )),
    }
}

/// What the request path needs: hashes and revocation, for the in-memory auth table.
pub(crate) async fn load(client: &deadpool_postgres::Client) -> Result<Vec<ProxyKey>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT id, name, secret_hash, revoked, {POLICY_COLUMNS} FROM proxy_keys ORDER BY id"
        ))
        .await
        .db()?;
    let rows = client.query(&stmt, &[]).await.db()?;
    rows.iter()
        .map(|row| {
            Ok(ProxyKey {
                id: row.try_get("id").db()?,
                name: row.try_get("name").db()?,
                secret_hash: row.try_get("secret_hash").db()?,
                revoked: row.try_get("revoked").db()?,
                policy: std::sync::Arc::new(policy(row)?),
            })
        })
        .collect()
}

pub(crate) async fn list(client: &deadpool_postgres::Client) -> Result<Vec<ProxyKeyRow>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT id, name, revoked, {} AS created_ms, {POLICY_COLUMNS} FROM proxy_keys ORDER BY id",
            ms_from_ts!("created_at")
        ))
        .await
        .db()?;
    let rows = client.query(&stmt, &[]).await.db()?;
    rows.iter()
        .map(|row| {
            Ok(ProxyKeyRow {
                id: row.try_get("id").db()?,
                name: row.try_get("name").db()?,
                revoked: row.try_get("revoked").db()?,
                created_at_ms: from_sql(row.try_get("created_ms").db()?),
                policy: policy(row)?,
            })
        })
        .collect()
}

/// Returns whether the key exists; revoking twice is not an error.
pub(crate) async fn revoke(client: &deadpool_postgres::Client, id: i64) -> Result<bool, StoreError> {
    let stmt = client
        .prepare_cached("UPDATE proxy_keys SET revoked = true WHERE id = $1")
        .await
        .db()?;
    Ok(client.execute(&stmt, &[&id]).await.db()? > 0)
}

/// Sets what `update` holds, in one statement; returns whether the key exists. The
/// row's update fires `proxy_keys_notify`, so listening instances reload at once.
pub(crate) async fn update(
    client: &deadpool_postgres::Client,
    id: i64,
    update: &ProxyKeyUpdate,
) -> Result<bool, StoreError> {
    let stmt = client
        .prepare_cached("UPDATE proxy_keys SET passthrough = coalesce($2, passthrough) WHERE id = $1")
        .await
        .db()?;
    Ok(client.execute(&stmt, &[&id, &update.passthrough]).await.db()? > 0)
}

#[cfg(test)]
mod tests {
    use super::validate_hash;

    #[test]
    fn only_sha256_hex_is_a_hash() {
        assert!(validate_hash(&"ab".repeat(32)).is_ok());
        assert!(validate_hash("").is_err());
        assert!(validate_hash(&"AB".repeat(32)).is_err());
        assert!(validate_hash("gp-0123456789abcdef0123456789abcdef0123456789abcdef").is_err());
    }
}
