//! Client ("proxy") keys. Only the SHA-256 of each secret is ever stored; the secret is
//! shown once by whoever generated it and then gone.

use proxy_core::admin::{ProxyKeyRow, ProxyKeyUpdate, validate_policy};
use proxy_core::keys::ProxyKey;
use proxy_core::platform::StoreError;
use proxy_core::policy::{BudgetPeriod, ProxyKeyPolicy};
use tokio_postgres::Row;

use crate::convert::{clean, from_sql, ms_from_ts, opt_from_sql, opt_to_sql, ts_from_ms, ts_param};
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

/// The policy columns every query of proxy keys selects, for [`policy`]. The budget
/// is `numeric` in the table and read as `float8` (the core's `f64`).
const POLICY_COLUMNS: &str = concat!(
    "passthrough, models, rpm, tpm, tokens_per_day, budget_usd::float8 AS budget_usd, budget_period, ",
    ms_from_ts!("expires_at"),
    " AS expires_at_ms"
);

/// Every field is read, so a new one cannot be forgotten here.
fn policy(row: &Row) -> Result<ProxyKeyPolicy, StoreError> {
    let period: String = row.try_get("budget_period").db()?;
    Ok(ProxyKeyPolicy {
        passthrough: row.try_get("passthrough").db()?,
        models: row.try_get("models").db()?,
        rpm: opt_from_sql(row.try_get("rpm").db()?),
        tpm: opt_from_sql(row.try_get("tpm").db()?),
        tokens_per_day: opt_from_sql(row.try_get("tokens_per_day").db()?),
        budget_usd: row.try_get("budget_usd").db()?,
        budget_period: BudgetPeriod::parse(&period).ok_or_else(|| {
            StoreError::Unavailable(format!("unknown budget period {period:?} in proxy_keys"))
        })?,
        expires_at_ms: opt_from_sql(row.try_get("expires_at_ms").db()?),
    })
}

fn models_param(models: &[String]) -> Vec<String> {
    models.iter().map(|m| clean(m).into_owned()).collect()
}

/// `key` is the name, the secret's hash and its shown prefix.
pub(crate) async fn create(
    client: &deadpool_postgres::Client,
    key: (&str, &str, Option<&str>),
    policy: &ProxyKeyPolicy,
) -> Result<i64, StoreError> {
    let (name, secret_hash, prefix) = key;
    validate_hash(secret_hash)?;
    validate_policy(policy)?;
    let stmt = client
        .prepare_cached(concat!(
            "INSERT INTO proxy_keys (name, secret_hash, passthrough, models, rpm, tpm, tokens_per_day, \
             budget_usd, budget_period, expires_at, secret_prefix) \
             VALUES ($1, $2, $3, $4::text[], $5::bigint, $6::bigint, $7::bigint, $8::float8, $9::text, \
             CASE WHEN $10::bigint IS NULL THEN NULL ELSE ",
            ts_from_ms!("$10"),
            " END, $11::text) ON CONFLICT (secret_hash) DO NOTHING RETURNING id"
        ))
        .await
        .db()?;
    let expires = policy.expires_at_ms.map(ts_param);
    match client
        .query_opt(
            &stmt,
            &[
                &clean(name),
                &secret_hash,
                &policy.passthrough,
                &models_param(&policy.models),
                &opt_to_sql(policy.rpm),
                &opt_to_sql(policy.tpm),
                &opt_to_sql(policy.tokens_per_day),
                &policy.budget_usd,
                &policy.budget_period.as_str(),
                &expires,
                &prefix.map(clean),
            ],
        )
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
            "SELECT id, name, revoked, {} AS created_ms, secret_prefix, {POLICY_COLUMNS} FROM proxy_keys ORDER BY id",
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
                prefix: row.try_get("secret_prefix").db()?,
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
    update.validate()?;
    // Each optional field travels as (is it set?, its value), so one statement sets
    // any mix of fields, clearing included.
    let stmt = client
        .prepare_cached(concat!(
            "UPDATE proxy_keys SET \
             passthrough = coalesce($2, passthrough), \
             models = CASE WHEN $3 THEN $4::text[] ELSE models END, \
             rpm = CASE WHEN $5 THEN $6::bigint ELSE rpm END, \
             tpm = CASE WHEN $7 THEN $8::bigint ELSE tpm END, \
             tokens_per_day = CASE WHEN $9 THEN $10::bigint ELSE tokens_per_day END, \
             budget_usd = CASE WHEN $11 THEN $12::float8 ELSE budget_usd END, \
             budget_period = coalesce($13::text, budget_period), \
             expires_at = CASE WHEN NOT $14 THEN expires_at WHEN $15::bigint IS NULL THEN NULL \
                          ELSE ",
            ts_from_ms!("$15"),
            " END WHERE id = $1"
        ))
        .await
        .db()?;
    let models = update.models.as_deref().map(models_param);
    let count = |value: Option<Option<u64>>| (value.is_some(), opt_to_sql(value.flatten()));
    let (rpm_set, rpm) = count(update.rpm);
    let (tpm_set, tpm) = count(update.tpm);
    let (tpd_set, tpd) = count(update.tokens_per_day);
    let budget = update.budget_usd.flatten();
    let expires = update.expires_at_ms.flatten().map(ts_param);
    let changed = client
        .execute(
            &stmt,
            &[
                &id,
                &update.passthrough,
                &models.is_some(),
                &models,
                &rpm_set,
                &rpm,
                &tpm_set,
                &tpm,
                &tpd_set,
                &tpd,
                &update.budget_usd.is_some(),
                &budget,
                &update.budget_period.map(BudgetPeriod::as_str),
                &update.expires_at_ms.is_some(),
                &expires,
            ],
        )
        .await
        .db()?;
    Ok(changed > 0)
}

/// Returns whether the key exists.
pub(crate) async fn rename(
    client: &deadpool_postgres::Client,
    id: i64,
    name: &str,
) -> Result<bool, StoreError> {
    let stmt = client
        .prepare_cached("UPDATE proxy_keys SET name = $2 WHERE id = $1")
        .await
        .db()?;
    Ok(client.execute(&stmt, &[&id, &clean(name)]).await.db()? > 0)
}

/// Deletes the row (the delete fires `proxy_keys_notify`); request logs keep the id,
/// which the identity column never hands out again.
pub(crate) async fn delete(client: &deadpool_postgres::Client, id: i64) -> Result<bool, StoreError> {
    let stmt = client
        .prepare_cached("DELETE FROM proxy_keys WHERE id = $1")
        .await
        .db()?;
    Ok(client.execute(&stmt, &[&id]).await.db()? > 0)
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
