//! Upstream keys and what the pool learned about them: the `KeyStore` side (load and
//! save state) and the operator's side (add, list masked, remove, enable).

use std::collections::{BTreeMap, BTreeSet};

use proxy_core::admin::KeyRow;
use proxy_core::keys::{KeyId, KeyLimits, ProxyKey, Secret, UpstreamKey, mask_key};
use proxy_core::platform::{KeySnapshot, StoreError};
use proxy_core::pool::{KeyState, StateChange};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::convert::{from_sql, opt_from_sql, to_sql};
use crate::error::DbResult;

pub(crate) use proxy_core::keys::validate_secret;

/// A key's running cooldowns, and the models among them that are off for it.
#[derive(Default)]
struct Cooling {
    until: BTreeMap<String, u64>,
    off: BTreeSet<String>,
}

/// Cooldowns still running at `now_ms`, per key. Expired rows are left for
/// `save_state` to sweep: a read should not need the write lock.
fn cooldowns(conn: &Connection, now_ms: u64) -> Result<BTreeMap<KeyId, Cooling>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT key_id, model, until_ms, model_off FROM key_cooldowns WHERE until_ms > ?1")
        .db()?;
    let rows = stmt
        .query_map([to_sql(now_ms)], |row| {
            Ok((
                row.get::<_, KeyId>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, bool>(3)?,
            ))
        })
        .db()?;
    let mut out: BTreeMap<KeyId, Cooling> = BTreeMap::new();
    for row in rows {
        let (key_id, model, until, off) = row.db()?;
        let cooling = out.entry(key_id).or_default();
        if off {
            cooling.off.insert(model.clone());
        }
        cooling.until.insert(model, from_sql(until));
    }
    Ok(out)
}

/// A key's limits from the `limits` column (serde JSON of [`KeyLimits`]).
fn limits(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<KeyLimits> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn limits_json(limits: &KeyLimits) -> String {
    // Plain maps and numbers always serialise; the fallback only keeps `unwrap` out.
    serde_json::to_string(limits).unwrap_or_else(|_| "{}".into())
}

pub(crate) fn load(conn: &mut Connection, now_ms: u64) -> Result<KeySnapshot, StoreError> {
    // One read transaction, so keys, cooldowns and proxy keys come from the same moment
    // even while another process writes (WAL gives readers a snapshot).
    let tx = conn.transaction().db()?;
    let mut cooling = cooldowns(&tx, now_ms)?;
    let mut keys = Vec::new();
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT k.id, k.name, k.secret, k.enabled, s.invalid_reason, s.last_used_ms, k.limits
                 FROM keys k LEFT JOIN key_state s ON s.key_id = k.id
                 ORDER BY k.id",
            )
            .db()?;
        let rows = stmt
            .query_map([], |row| {
                let key = UpstreamKey {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    secret: Secret::new(row.get::<_, String>(2)?),
                    enabled: row.get(3)?,
                    limits: limits(row, 6)?,
                };
                let state = KeyState {
                    invalid_reason: row.get(4)?,
                    cooldowns: BTreeMap::new(),
                    off_models: BTreeSet::new(),
                    last_used_ms: opt_from_sql(row.get(5)?),
                };
                Ok((key, state))
            })
            .db()?;
        for row in rows {
            let (key, mut state) = row.db()?;
            let Cooling { until, off } = cooling.remove(&key.id).unwrap_or_default();
            (state.cooldowns, state.off_models) = (until, off);
            keys.push((key, state));
        }
    }
    let mut proxy_keys = Vec::new();
    {
        let mut stmt = tx
            .prepare_cached(&format!(
                "SELECT id, name, secret_hash, revoked, {} FROM proxy_keys ORDER BY id",
                crate::proxy_keys::POLICY_COLUMNS
            ))
            .db()?;
        let rows = stmt
            .query_map([], |row| {
                Ok(ProxyKey {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    secret_hash: row.get(2)?,
                    revoked: row.get(3)?,
                    policy: std::sync::Arc::new(crate::proxy_keys::policy(row, 4)?),
                })
            })
            .db()?;
        for row in rows {
            proxy_keys.push(row.db()?);
        }
    }
    tx.commit().db()?;
    Ok(KeySnapshot { keys, proxy_keys })
}

pub(crate) fn save_state(
    conn: &mut Connection,
    changes: &[StateChange],
    now_ms: u64,
) -> Result<(), StoreError> {
    // IMMEDIATE: a deferred transaction that reads first and then writes can fail with
    // SQLITE_BUSY at once, without waiting, when another process wrote in between.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    {
        // The `WHERE EXISTS` skips keys removed (by the CLI, say) while `serve` still
        // held them in memory: one stale change must not fail the whole batch.
        // The end never moves earlier; whether the model is off is what the latest
        // change said (a plain cooldown after a model-off clears the flag).
        let mut cooldown = tx
            .prepare_cached(
                "INSERT INTO key_cooldowns (key_id, model, until_ms, model_off)
                 SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM keys WHERE id = ?1)
                 ON CONFLICT (key_id, model) DO UPDATE
                 SET until_ms = MAX(until_ms, excluded.until_ms), model_off = excluded.model_off",
            )
            .db()?;
        let mut invalid = tx
            .prepare_cached(
                "INSERT INTO key_state (key_id, invalid_reason, invalid_at_ms)
                 SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM keys WHERE id = ?1)
                 ON CONFLICT (key_id) DO UPDATE
                 SET invalid_reason = excluded.invalid_reason, invalid_at_ms = excluded.invalid_at_ms",
            )
            .db()?;
        for change in changes {
            match change {
                StateChange::Cooldown {
                    key_id,
                    model,
                    until_ms,
                } => cooldown.execute(params![key_id, model, to_sql(*until_ms), false]),
                StateChange::ModelOff {
                    key_id,
                    model,
                    until_ms,
                } => cooldown.execute(params![key_id, model, to_sql(*until_ms), true]),
                StateChange::Invalid { key_id, reason } => {
                    invalid.execute(params![key_id, reason, to_sql(now_ms)])
                }
            }
            .db()?;
        }
    }
    // We hold the write lock anyway; sweeping here keeps the table at one row per
    // rate-limited key and model.
    tx.execute("DELETE FROM key_cooldowns WHERE until_ms <= ?1", [to_sql(now_ms)])
        .db()?;
    tx.commit().db()
}

/// Records when keys were last tried, from a batch of logs (see `logs::write`).
pub(crate) fn touch_last_used(conn: &Connection, last_used: &BTreeMap<KeyId, u64>) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO key_state (key_id, last_used_ms)
             SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM keys WHERE id = ?1)
             ON CONFLICT (key_id) DO UPDATE
             SET last_used_ms = MAX(COALESCE(last_used_ms, 0), excluded.last_used_ms)",
        )
        .db()?;
    for (key_id, at_ms) in last_used {
        stmt.execute(params![key_id, to_sql(*at_ms)]).db()?;
    }
    Ok(())
}

pub(crate) fn add(
    conn: &mut Connection,
    secret: &str,
    name: &str,
    limits: &KeyLimits,
    now_ms: u64,
) -> Result<KeyId, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    // Checked first to give a clear message naming the existing row; the UNIQUE
    // constraint still guards against anything that bypasses this path.
    let existing: Option<KeyId> = tx
        .query_row("SELECT id FROM keys WHERE secret = ?1", [secret], |row| {
            row.get(0)
        })
        .optional()
        .db()?;
    if let Some(id) = existing {
        return Err(StoreError::Invalid(format!(
            "this key is already stored (as #{id})"
        )));
    }
    tx.execute(
        "INSERT INTO keys (name, secret, enabled, created_at_ms, limits) VALUES (?1, ?2, 1, ?3, ?4)",
        params![name, secret, to_sql(now_ms), limits_json(limits)],
    )
    .db()?;
    let id = tx.last_insert_rowid();
    tx.commit().db()?;
    Ok(id)
}

pub(crate) fn list(conn: &mut Connection, now_ms: u64) -> Result<Vec<KeyRow>, StoreError> {
    let tx = conn.transaction().db()?;
    let mut cooling = cooldowns(&tx, now_ms)?;
    let mut out = Vec::new();
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT k.id, k.name, k.secret, k.enabled, s.invalid_reason, k.created_at_ms,
                        s.last_used_ms, k.limits
                 FROM keys k LEFT JOIN key_state s ON s.key_id = k.id
                 ORDER BY k.id",
            )
            .db()?;
        let rows = stmt
            .query_map([], |row| {
                // The secret is read only to be masked; it never leaves this closure.
                let secret: String = row.get(2)?;
                Ok(KeyRow {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    masked: mask_key(&secret),
                    enabled: row.get(3)?,
                    invalid_reason: row.get(4)?,
                    cooldowns: Vec::new(),
                    created_at_ms: from_sql(row.get(5)?),
                    last_used_ms: opt_from_sql(row.get(6)?),
                    limits: limits(row, 7)?,
                    off_models: Vec::new(),
                })
            })
            .db()?;
        for row in rows {
            let mut key = row.db()?;
            let Cooling { until, off } = cooling.remove(&key.id).unwrap_or_default();
            key.cooldowns = until.into_iter().collect();
            key.off_models = off.into_iter().collect();
            out.push(key);
        }
    }
    tx.commit().db()?;
    Ok(out)
}

/// Replaces the key's limits; returns whether it exists.
pub(crate) fn set_limits(conn: &mut Connection, id: KeyId, limits: &KeyLimits) -> Result<bool, StoreError> {
    let changed = conn
        .execute(
            "UPDATE keys SET limits = ?2 WHERE id = ?1",
            params![id, limits_json(limits)],
        )
        .db()?;
    Ok(changed > 0)
}

/// Deletes the key and its state; request logs keep its id.
pub(crate) fn remove(conn: &mut Connection, id: KeyId) -> Result<bool, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    // Explicit deletes rather than relying on ON DELETE CASCADE alone, which only fires
    // on connections that turned foreign keys on.
    tx.execute("DELETE FROM key_cooldowns WHERE key_id = ?1", [id])
        .db()?;
    tx.execute("DELETE FROM key_state WHERE key_id = ?1", [id]).db()?;
    let removed = tx.execute("DELETE FROM keys WHERE id = ?1", [id]).db()?;
    tx.commit().db()?;
    Ok(removed > 0)
}

/// Enabling means "try it again": it also forgets the invalid mark and cooldowns.
pub(crate) fn set_enabled(conn: &mut Connection, id: KeyId, enabled: bool) -> Result<bool, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    let found = tx
        .execute("UPDATE keys SET enabled = ?1 WHERE id = ?2", params![enabled, id])
        .db()?
        > 0;
    if found && enabled {
        tx.execute(
            "UPDATE key_state SET invalid_reason = NULL, invalid_at_ms = NULL WHERE key_id = ?1",
            [id],
        )
        .db()?;
        tx.execute("DELETE FROM key_cooldowns WHERE key_id = ?1", [id])
            .db()?;
    }
    tx.commit().db()?;
    Ok(found)
}
