//! Client ("proxy") keys. Only the hash of each secret is stored; the table's CHECK
//! insists on 64 lowercase hex digits (a SHA-256), so the key itself cannot land there.

use proxy_core::admin::{ProxyKeyRow, ProxyKeyUpdate, validate_policy};
use proxy_core::keys::ProxyKey;
use proxy_core::platform::StoreError;
use proxy_core::policy::{BudgetPeriod, ProxyKeyPolicy};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::convert::{clamp_ms, opt_from_db, opt_timestamp, to_timestamp};
use crate::error::RestError;
use crate::keys::{IdRecord, first_id};
use crate::rest::Rest;

#[derive(Deserialize)]
struct ProxyKeyRecord {
    id: i64,
    name: String,
    #[serde(default)]
    secret_hash: Option<String>,
    revoked: bool,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    secret_prefix: Option<String>,
    /// The policy's columns ([`POLICY_COLUMNS`]), each under its own name.
    #[serde(flatten)]
    policy: PolicyRecord,
}

/// The policy columns every read selects.
const POLICY_COLUMNS: &str = "passthrough,models,rpm,tpm,tokens_per_day,budget_usd,budget_period,expires_at";

/// A policy as the table holds it. Every field is required (`Option`s must be present,
/// null or not), so a column missing from [`POLICY_COLUMNS`] (or from a database that
/// missed the migration) is an error, never a silent default; and `TryFrom` names every
/// field of the policy, so a new one cannot be forgotten here.
#[derive(Deserialize)]
struct PolicyRecord {
    passthrough: bool,
    models: Vec<String>,
    #[serde(deserialize_with = "required")]
    rpm: Option<i64>,
    #[serde(deserialize_with = "required")]
    tpm: Option<i64>,
    #[serde(deserialize_with = "required")]
    tokens_per_day: Option<i64>,
    #[serde(deserialize_with = "required")]
    budget_usd: Option<f64>,
    budget_period: BudgetPeriod,
    #[serde(deserialize_with = "required")]
    expires_at: Option<String>,
}

/// An `Option` field that must be in the JSON (serde would default a missing one).
fn required<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer)
}

impl TryFrom<PolicyRecord> for ProxyKeyPolicy {
    type Error = RestError;

    fn try_from(record: PolicyRecord) -> Result<Self, RestError> {
        Ok(ProxyKeyPolicy {
            passthrough: record.passthrough,
            models: record.models,
            rpm: opt_from_db(record.rpm),
            tpm: opt_from_db(record.tpm),
            tokens_per_day: opt_from_db(record.tokens_per_day),
            budget_usd: record.budget_usd,
            budget_period: record.budget_period,
            expires_at_ms: opt_timestamp(record.expires_at.as_deref())?,
        })
    }
}

/// A count as `bigint` takes it.
fn count_json(value: Option<u64>) -> Value {
    value.map_or(Value::Null, |n| json!(i64::try_from(n).unwrap_or(i64::MAX)))
}

fn expires_json(value: Option<u64>) -> Value {
    value.map_or(Value::Null, |ms| json!(to_timestamp(clamp_ms(ms))))
}

/// Every policy column, for an insert.
fn policy_json(policy: &ProxyKeyPolicy, row: &mut Map<String, Value>) {
    row.insert("passthrough".into(), policy.passthrough.into());
    row.insert("models".into(), json!(policy.models));
    row.insert("rpm".into(), count_json(policy.rpm));
    row.insert("tpm".into(), count_json(policy.tpm));
    row.insert("tokens_per_day".into(), count_json(policy.tokens_per_day));
    row.insert("budget_usd".into(), json!(policy.budget_usd));
    row.insert("budget_period".into(), policy.budget_period.as_str().into());
    row.insert("expires_at".into(), expires_json(policy.expires_at_ms));
}

/// The columns `update` sets, for a PATCH: only the fields given, null clearing one.
fn update_json(update: &ProxyKeyUpdate) -> Map<String, Value> {
    let mut changes = Map::new();
    if let Some(passthrough) = update.passthrough {
        changes.insert("passthrough".into(), passthrough.into());
    }
    if let Some(models) = &update.models {
        changes.insert("models".into(), json!(models));
    }
    for (column, value) in [
        ("rpm", update.rpm),
        ("tpm", update.tpm),
        ("tokens_per_day", update.tokens_per_day),
    ] {
        if let Some(value) = value {
            changes.insert(column.into(), count_json(value));
        }
    }
    if let Some(budget) = update.budget_usd {
        changes.insert("budget_usd".into(), json!(budget));
    }
    if let Some(period) = update.budget_period {
        changes.insert("budget_period".into(), period.as_str().into());
    }
    if let Some(expires) = update.expires_at_ms {
        changes.insert("expires_at".into(), expires_json(expires));
    }
    changes
}

async fn records(rest: &Rest, columns: &str) -> Result<Vec<ProxyKeyRecord>, RestError> {
    let columns = format!("{columns},{POLICY_COLUMNS}");
    rest.fetch_all(rest.table("proxy_keys").select(columns).order("id.asc"))
        .await
}

pub(crate) async fn load(rest: &Rest) -> Result<Vec<ProxyKey>, RestError> {
    let rows = records(rest, "id,name,secret_hash,revoked").await?;
    rows.into_iter()
        .map(|r| {
            Ok(ProxyKey {
                id: r.id,
                name: r.name,
                secret_hash: r.secret_hash.unwrap_or_default(),
                revoked: r.revoked,
                policy: std::sync::Arc::new(r.policy.try_into()?),
            })
        })
        .collect()
}

/// `key` is the name, the secret's hash and its shown prefix.
pub(crate) async fn create(
    rest: &Rest,
    key: (&str, &str, Option<&str>),
    policy: &ProxyKeyPolicy,
) -> Result<i64, StoreError> {
    let (name, secret_hash, prefix) = key;
    if secret_hash.is_empty() {
        return Err(StoreError::Invalid("proxy key hash is empty".into()));
    }
    validate_policy(policy)?;
    let mut row = Map::new();
    row.insert("name".into(), name.into());
    row.insert("secret_hash".into(), secret_hash.into());
    if let Some(prefix) = prefix {
        row.insert("secret_prefix".into(), prefix.into());
    }
    policy_json(policy, &mut row);
    let body = Value::Object(row);
    let inserted: Result<Vec<IdRecord>, RestError> = rest
        .fetch(
            rest.table("proxy_keys").select("id").insert(body.to_string()),
            &[],
        )
        .await;
    match inserted {
        Ok(rows) => first_id(rows),
        // The only UNIQUE column is the hash; a clash means the same secret twice.
        Err(e) if e.is_unique_violation() => Err(StoreError::Invalid(
            "a proxy key with this secret already exists".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn list(rest: &Rest) -> Result<Vec<ProxyKeyRow>, RestError> {
    records(rest, "id,name,revoked,created_at,secret_prefix")
        .await?
        .into_iter()
        .map(|r| {
            Ok(ProxyKeyRow {
                id: r.id,
                name: r.name,
                revoked: r.revoked,
                created_at_ms: opt_timestamp(r.created_at.as_deref())?.unwrap_or(0),
                prefix: r.secret_prefix,
                policy: r.policy.try_into()?,
            })
        })
        .collect()
}

/// Returns whether the key exists; revoking twice is not an error.
pub(crate) async fn revoke(rest: &Rest, id: i64) -> Result<bool, RestError> {
    let changed: Vec<IdRecord> = rest
        .fetch(
            rest.table("proxy_keys")
                .eq("id", id.to_string())
                .select("id")
                .update(json!({ "revoked": true }).to_string()),
            &[],
        )
        .await?;
    Ok(!changed.is_empty())
}

/// Sets what `update` holds, in one request; returns whether the key exists.
pub(crate) async fn update(rest: &Rest, id: i64, update: &ProxyKeyUpdate) -> Result<bool, StoreError> {
    update.validate()?;
    Ok(patch(rest, id, update_json(update)).await?)
}

/// PATCHes `changes` onto proxy key `id` (only reads it when there are none); returns
/// whether the key exists.
async fn patch(rest: &Rest, id: i64, changes: Map<String, Value>) -> Result<bool, RestError> {
    let by_id = rest.table("proxy_keys").eq("id", id.to_string()).select("id");
    let found: Vec<IdRecord> = if changes.is_empty() {
        rest.fetch(by_id, &[]).await?
    } else {
        let body = Value::Object(changes).to_string();
        rest.fetch(by_id.update(body), &[]).await?
    };
    Ok(!found.is_empty())
}

/// Returns whether the key exists.
pub(crate) async fn rename(rest: &Rest, id: i64, name: &str) -> Result<bool, RestError> {
    let mut changes = Map::new();
    changes.insert("name".into(), name.into());
    patch(rest, id, changes).await
}

/// Deletes the row; request logs keep the id.
pub(crate) async fn delete(rest: &Rest, id: i64) -> Result<bool, RestError> {
    let gone: Vec<IdRecord> = rest
        .fetch(
            rest.table("proxy_keys")
                .eq("id", id.to_string())
                .select("id")
                .delete(),
            &[],
        )
        .await?;
    Ok(!gone.is_empty())
}
