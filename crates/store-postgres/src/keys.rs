//! Upstream keys and what the pool learned about them: the `KeyStore` side (load and
//! save state) and the operator's side (add, list masked, remove, enable).
//!
//! Every operation is one statement, so each is atomic without an explicit transaction,
//! and "now" is the database's clock, the one all proxy instances share.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use proxy_core::admin::KeyRow;
use proxy_core::keys::{KeyId, KeyLimits, Secret, UpstreamKey, mask_key};
use proxy_core::platform::StoreError;
use proxy_core::pool::{KeyState, StateChange};
use serde::Serialize;
use tokio_postgres::Row;
use tokio_postgres::types::Json;

use crate::convert::{clean, from_sql, ms_from_ts, opt_from_sql, ts_param};
use crate::error::DbResult;
use crate::params::{Batch, SecretParam};

pub(crate) use proxy_core::keys::validate_secret;

/// Keys with their state and running cooldowns (as two arrays in the same order), in
/// one statement so they come from one snapshot.
const KEYS_WITH_STATE: &str = concat!(
    "SELECT k.id, k.name, k.secret, k.enabled, s.invalid_reason, k.limits, ",
    ms_from_ts!("s.last_used_at"),
    " AS last_used_ms, ",
    ms_from_ts!("k.created_at"),
    " AS created_ms, ",
    "ARRAY(SELECT c.model FROM key_cooldowns c WHERE c.key_id = k.id AND c.until_at > now() \
     ORDER BY c.model) AS cooldown_models, ",
    "ARRAY(SELECT ",
    ms_from_ts!("c.until_at"),
    " FROM key_cooldowns c WHERE c.key_id = k.id AND c.until_at > now() ORDER BY c.model) \
     AS cooldown_until_ms, ",
    "ARRAY(SELECT c.model FROM key_cooldowns c WHERE c.key_id = k.id AND c.until_at > now() \
     AND c.model_off ORDER BY c.model) AS off_models ",
    "FROM upstream_keys k LEFT JOIN key_state s ON s.key_id = k.id ORDER BY k.id"
);

/// The row's running cooldowns, model -> unix ms.
fn cooldowns(row: &Row) -> Result<BTreeMap<String, u64>, StoreError> {
    let models: Vec<String> = row.try_get("cooldown_models").db()?;
    let until: Vec<i64> = row.try_get("cooldown_until_ms").db()?;
    Ok(models.into_iter().zip(until.into_iter().map(from_sql)).collect())
}

/// The models among the row's running cooldowns that are off for the key.
fn off_models(row: &Row) -> Result<BTreeSet<String>, StoreError> {
    let models: Vec<String> = row.try_get("off_models").db()?;
    Ok(models.into_iter().collect())
}

/// The key's limits (the `limits` column, serde JSON of [`KeyLimits`]).
fn limits(row: &Row) -> Result<KeyLimits, StoreError> {
    let Json(limits) = row.try_get::<_, Json<KeyLimits>>("limits").db()?;
    Ok(limits)
}

pub(crate) async fn load(
    client: &deadpool_postgres::Client,
) -> Result<Vec<(UpstreamKey, KeyState)>, StoreError> {
    let stmt = client.prepare_cached(KEYS_WITH_STATE).await.db()?;
    let rows = client.query(&stmt, &[]).await.db()?;
    rows.iter()
        .map(|row| {
            let key = UpstreamKey {
                id: row.try_get("id").db()?,
                name: row.try_get("name").db()?,
                secret: Secret::new(row.try_get::<_, String>("secret").db()?),
                enabled: row.try_get("enabled").db()?,
                limits: limits(row)?,
            };
            let state = KeyState {
                invalid_reason: row.try_get("invalid_reason").db()?,
                cooldowns: cooldowns(row)?,
                off_models: off_models(row)?,
                last_used_ms: opt_from_sql(row.try_get("last_used_ms").db()?),
            };
            Ok((key, state))
        })
        .collect()
}

pub(crate) async fn list(client: &deadpool_postgres::Client) -> Result<Vec<KeyRow>, StoreError> {
    let stmt = client.prepare_cached(KEYS_WITH_STATE).await.db()?;
    let rows = client.query(&stmt, &[]).await.db()?;
    rows.iter()
        .map(|row| {
            // The secret is read only to be masked; it never leaves this closure.
            let secret: String = row.try_get("secret").db()?;
            Ok(KeyRow {
                id: row.try_get("id").db()?,
                name: row.try_get("name").db()?,
                masked: mask_key(&secret),
                enabled: row.try_get("enabled").db()?,
                invalid_reason: row.try_get("invalid_reason").db()?,
                cooldowns: cooldowns(row)?.into_iter().collect(),
                created_at_ms: from_sql(row.try_get("created_ms").db()?),
                last_used_ms: row.try_get::<_, Option<i64>>("last_used_ms").db()?.map(from_sql),
                limits: limits(row)?,
                off_models: off_models(row)?.into_iter().collect(),
            })
        })
        .collect()
}

/// One learned change as `record_key_state` reads it (see the migration).
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum WireChange<'a> {
    Cooldown {
        key_id: KeyId,
        model: Cow<'a, str>,
        until_ms: i64,
    },
    ModelOff {
        key_id: KeyId,
        model: Cow<'a, str>,
        until_ms: i64,
    },
    Invalid {
        key_id: KeyId,
        reason: Cow<'a, str>,
    },
}

/// The whole batch in one call, so one round trip and one transaction.
pub(crate) async fn save_state(
    client: &deadpool_postgres::Client,
    changes: &[StateChange],
) -> Result<(), StoreError> {
    let wire: Batch<WireChange<'_>> = Batch(
        changes
            .iter()
            .map(|change| match change {
                StateChange::Cooldown {
                    key_id,
                    model,
                    until_ms,
                } => WireChange::Cooldown {
                    key_id: *key_id,
                    model: clean(model),
                    until_ms: ts_param(*until_ms),
                },
                StateChange::ModelOff {
                    key_id,
                    model,
                    until_ms,
                } => WireChange::ModelOff {
                    key_id: *key_id,
                    model: clean(model),
                    until_ms: ts_param(*until_ms),
                },
                StateChange::Invalid { key_id, reason } => WireChange::Invalid {
                    key_id: *key_id,
                    reason: clean(reason),
                },
            })
            .collect(),
    );
    let stmt = client
        .prepare_cached("SELECT record_key_state($1::jsonb)")
        .await
        .db()?;
    client.execute(&stmt, &[&Json(&wire)]).await.db()?;
    Ok(())
}

pub(crate) async fn add(
    client: &deadpool_postgres::Client,
    secret: &str,
    name: &str,
    limits: &KeyLimits,
) -> Result<KeyId, StoreError> {
    let insert = client
        .prepare_cached(
            "INSERT INTO upstream_keys (name, secret, limits) VALUES ($1, $2, $3::jsonb) \
             ON CONFLICT (secret) DO NOTHING RETURNING id",
        )
        .await
        .db()?;
    if let Some(row) = client
        .query_opt(&insert, &[&clean(name), &SecretParam(secret), &Json(limits)])
        .await
        .db()?
    {
        return row.try_get("id").db();
    }
    // Already stored: name the existing row, never the key. (If it was removed in between,
    // there is no id to name; the message still holds.)
    let existing = client
        .query_opt(
            "SELECT id FROM upstream_keys WHERE secret = $1",
            &[&SecretParam(secret)],
        )
        .await
        .db()?;
    Err(StoreError::Invalid(match existing {
        Some(row) => format!(
            "this key is already stored (as #{})",
            row.try_get::<_, i64>("id").db()?
        ),
        None => "this key is already stored".into(),
    }))
}

/// Replaces the key's limits; returns whether it exists. The update fires
/// `upstream_keys_notify`, so listening instances reload at once.
pub(crate) async fn set_limits(
    client: &deadpool_postgres::Client,
    id: KeyId,
    limits: &KeyLimits,
) -> Result<bool, StoreError> {
    let stmt = client
        .prepare_cached("UPDATE upstream_keys SET limits = $2::jsonb WHERE id = $1")
        .await
        .db()?;
    Ok(client.execute(&stmt, &[&id, &Json(limits)]).await.db()? > 0)
}

/// Deletes the key; its state and cooldowns go with it (ON DELETE CASCADE), request
/// logs keep its id.
pub(crate) async fn remove(client: &deadpool_postgres::Client, id: KeyId) -> Result<bool, StoreError> {
    let stmt = client
        .prepare_cached("DELETE FROM upstream_keys WHERE id = $1")
        .await
        .db()?;
    Ok(client.execute(&stmt, &[&id]).await.db()? > 0)
}

/// Enabling means "try it again": it also forgets the invalid mark and cooldowns. One
/// statement with data-modifying CTEs, so the three changes commit together.
pub(crate) async fn set_enabled(
    client: &deadpool_postgres::Client,
    id: KeyId,
    enabled: bool,
) -> Result<bool, StoreError> {
    let stmt = client
        .prepare_cached(
            "WITH k AS (UPDATE upstream_keys SET enabled = $2 WHERE id = $1 RETURNING id), \
             s AS (UPDATE key_state SET invalid_reason = NULL, invalid_at = NULL \
                   WHERE $2 AND key_id IN (SELECT id FROM k) RETURNING 1), \
             c AS (DELETE FROM key_cooldowns WHERE $2 AND key_id IN (SELECT id FROM k) RETURNING 1) \
             SELECT count(*) FROM k",
        )
        .await
        .db()?;
    let row = client.query_one(&stmt, &[&id, &enabled]).await.db()?;
    let found: i64 = row.try_get(0).db()?;
    Ok(found > 0)
}
