//! Upstream keys and what the pool learned about them: the `KeyStore` side (load and
//! save state) and the operator's side (add, list masked, remove, enable).

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::try_join3;
use proxy_core::admin::KeyRow;
use proxy_core::keys::{KeyId, KeyLimits, Secret, UpstreamKey, mask_key};
use proxy_core::platform::StoreError;
use proxy_core::pool::{KeyState, StateChange};
use serde::Deserialize;
use serde_json::json;

use crate::convert::{clamp_ms, opt_timestamp, timestamp, to_timestamp};
use crate::error::RestError;
use crate::rest::Rest;

pub(crate) use proxy_core::keys::validate_secret;

/// A row of `upstream_keys`. No `Debug`: it holds the secret.
#[derive(Deserialize)]
struct KeyRecord {
    id: KeyId,
    name: String,
    secret: String,
    enabled: bool,
    /// Required: a database that missed the migration fails the read, never reads as
    /// "no limits".
    limits: KeyLimits,
    #[serde(default)]
    created_at: Option<String>,
}

#[derive(Deserialize)]
struct StateRecord {
    key_id: KeyId,
    invalid_reason: Option<String>,
    last_used_at: Option<String>,
}

#[derive(Deserialize)]
struct CooldownRecord {
    key_id: KeyId,
    model: String,
    until_at: String,
    model_off: bool,
}

/// A key's running cooldowns, and the models among them that are off for it.
#[derive(Default)]
struct Cooling {
    until: BTreeMap<String, u64>,
    off: BTreeSet<String>,
}

#[derive(Deserialize)]
pub(crate) struct IdRecord {
    pub id: i64,
}

async fn key_records(rest: &Rest, columns: &str) -> Result<Vec<KeyRecord>, RestError> {
    rest.fetch_all(rest.table("upstream_keys").select(columns).order("id.asc"))
        .await
}

async fn states(rest: &Rest) -> Result<BTreeMap<KeyId, StateRecord>, RestError> {
    let rows: Vec<StateRecord> = rest
        .fetch_all(
            rest.table("key_state")
                .select("key_id,invalid_reason,last_used_at")
                .order("key_id.asc"),
        )
        .await?;
    Ok(rows.into_iter().map(|r| (r.key_id, r)).collect())
}

/// Cooldowns still running at `now_ms`, per key. Expired rows are left for
/// `record_key_state` to sweep.
async fn cooldowns(rest: &Rest, now_ms: u64) -> Result<BTreeMap<KeyId, Cooling>, RestError> {
    let rows: Vec<CooldownRecord> = rest
        .fetch_all(
            rest.table("key_cooldowns")
                .select("key_id,model,until_at,model_off")
                .gt("until_at", to_timestamp(now_ms))
                .order("key_id.asc,model.asc"),
        )
        .await?;
    let mut out: BTreeMap<KeyId, Cooling> = BTreeMap::new();
    for row in rows {
        let cooling = out.entry(row.key_id).or_default();
        if row.model_off {
            cooling.off.insert(row.model.clone());
        }
        cooling.until.insert(row.model, timestamp(&row.until_at)?);
    }
    Ok(out)
}

/// Keys with their state, as the pool wants them. Three reads at once: PostgREST has no
/// multi-statement snapshot, and a key added between them merely shows up without
/// state until the next refresh.
pub(crate) async fn load(rest: &Rest, now_ms: u64) -> Result<Vec<(UpstreamKey, KeyState)>, RestError> {
    let (keys, mut states, mut cooling) = try_join3(
        key_records(rest, "id,name,secret,enabled,limits"),
        states(rest),
        cooldowns(rest, now_ms),
    )
    .await?;
    keys.into_iter()
        .map(|key| {
            let state = states.remove(&key.id);
            let Cooling { until, off } = cooling.remove(&key.id).unwrap_or_default();
            let state = KeyState {
                invalid_reason: state.as_ref().and_then(|s| s.invalid_reason.clone()),
                cooldowns: until,
                off_models: off,
                last_used_ms: opt_timestamp(state.as_ref().and_then(|s| s.last_used_at.as_deref()))?,
            };
            let key = UpstreamKey {
                id: key.id,
                name: key.name,
                secret: Secret::new(key.secret),
                enabled: key.enabled,
                limits: key.limits,
            };
            Ok((key, state))
        })
        .collect()
}

/// The JSON `record_key_state` takes (see the migration).
fn change_json(change: &StateChange) -> serde_json::Value {
    match change {
        StateChange::Cooldown {
            key_id,
            model,
            until_ms,
        } => json!({
            "kind": "cooldown",
            "key_id": key_id,
            "model": model,
            "until_ms": clamp_ms(*until_ms),
        }),
        StateChange::ModelOff {
            key_id,
            model,
            until_ms,
        } => json!({
            "kind": "model_off",
            "key_id": key_id,
            "model": model,
            "until_ms": clamp_ms(*until_ms),
        }),
        StateChange::Invalid { key_id, reason } => json!({
            "kind": "invalid",
            "key_id": key_id,
            "reason": reason,
        }),
    }
}

/// One call for the whole batch; the function skips keys removed meanwhile and never
/// lets an earlier cooldown shorten a later one.
pub(crate) async fn save_state(rest: &Rest, changes: &[StateChange]) -> Result<(), RestError> {
    let changes: Vec<_> = changes.iter().map(change_json).collect();
    rest.send(rest.rpc("record_key_state", &json!({ "changes": changes })), &[])
        .await?;
    Ok(())
}

pub(crate) async fn add(
    rest: &Rest,
    secret: &str,
    name: &str,
    limits: &KeyLimits,
) -> Result<KeyId, StoreError> {
    validate_secret(secret)?;
    let body = json!({ "secret": secret, "name": name, "limits": limits });
    let inserted: Result<Vec<IdRecord>, RestError> = rest
        .fetch(
            rest.table("upstream_keys").select("id").insert(body.to_string()),
            &[],
        )
        .await;
    match inserted {
        Ok(rows) => first_id(rows),
        // The existing row's id is not looked up: that would put the secret in a URL.
        Err(e) if e.is_unique_violation() => Err(StoreError::Invalid("this key is already stored".into())),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn first_id(rows: Vec<IdRecord>) -> Result<i64, StoreError> {
    rows.first()
        .map(|r| r.id)
        .ok_or_else(|| StoreError::Unavailable("Supabase returned no id for the new row".into()))
}

pub(crate) async fn list(rest: &Rest, now_ms: u64) -> Result<Vec<KeyRow>, RestError> {
    let (keys, mut states, mut cooling) = try_join3(
        key_records(rest, "id,name,secret,enabled,limits,created_at"),
        states(rest),
        cooldowns(rest, now_ms),
    )
    .await?;
    keys.into_iter()
        .map(|key| {
            let state = states.remove(&key.id);
            let Cooling { until, off } = cooling.remove(&key.id).unwrap_or_default();
            Ok(KeyRow {
                id: key.id,
                name: key.name,
                // The secret is read only to be masked here.
                masked: mask_key(&key.secret),
                enabled: key.enabled,
                cooldowns: until.into_iter().collect(),
                limits: key.limits,
                off_models: off.into_iter().collect(),
                created_at_ms: opt_timestamp(key.created_at.as_deref())?.unwrap_or(0),
                last_used_ms: opt_timestamp(state.as_ref().and_then(|s| s.last_used_at.as_deref()))?,
                invalid_reason: state.and_then(|s| s.invalid_reason),
            })
        })
        .collect()
}

/// Replaces the key's limits; returns whether it exists.
pub(crate) async fn set_limits(rest: &Rest, id: KeyId, limits: &KeyLimits) -> Result<bool, RestError> {
    let changed: Vec<IdRecord> = rest
        .fetch(
            rest.table("upstream_keys")
                .eq("id", id.to_string())
                .select("id")
                .update(json!({ "limits": limits }).to_string()),
            &[],
        )
        .await?;
    Ok(!changed.is_empty())
}

/// Deletes the key; its state and cooldowns go with it (`on delete cascade`), request
/// logs keep its id.
pub(crate) async fn remove(rest: &Rest, id: KeyId) -> Result<bool, RestError> {
    let gone: Vec<IdRecord> = rest
        .fetch(
            rest.table("upstream_keys")
                .eq("id", id.to_string())
                .select("id")
                .delete(),
            &[],
        )
        .await?;
    Ok(!gone.is_empty())
}

/// Enabling means "try it again": it also forgets the invalid mark and cooldowns.
///
/// PostgREST runs each request in its own transaction, so this is up to three. The
/// mark is cleared *before* the key is enabled: should a later step fail, the key is
/// at worst still disabled with its state cleared (the operator retries), never
/// enabled while still marked invalid.
pub(crate) async fn set_enabled(rest: &Rest, id: KeyId, enabled: bool) -> Result<bool, RestError> {
    if enabled {
        rest.send(
            rest.table("key_state")
                .eq("key_id", id.to_string())
                .select("key_id")
                .update(json!({ "invalid_reason": null, "invalid_at": null }).to_string()),
            &[],
        )
        .await?;
        rest.send(
            rest.table("key_cooldowns")
                .eq("key_id", id.to_string())
                .select("key_id")
                .delete(),
            &[],
        )
        .await?;
    }
    let changed: Vec<IdRecord> = rest
        .fetch(
            rest.table("upstream_keys")
                .eq("id", id.to_string())
                .select("id")
                .update(json!({ "enabled": enabled }).to_string()),
            &[],
        )
        .await?;
    Ok(!changed.is_empty())
}
