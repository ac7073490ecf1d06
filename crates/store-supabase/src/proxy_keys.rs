//! Client ("proxy") keys. Only the hash of each secret is stored; the table's CHECK
//! insists on 64 lowercase hex digits (a SHA-256), so the key itself cannot land there.

use proxy_core::admin::{ProxyKeyRow, ProxyKeyUpdate};
use proxy_core::keys::ProxyKey;
use proxy_core::platform::StoreError;
use proxy_core::policy::ProxyKeyPolicy;
use serde::Deserialize;
use serde_json::json;

use crate::convert::opt_timestamp;
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
    /// The policy's columns ([`POLICY_COLUMNS`]), each under its own name.
    #[serde(flatten)]
    policy: PolicyRecord,
}

/// The policy columns every read selects.
const POLICY_COLUMNS: &str = "passthrough";

/// A policy as the table holds it. Every field is required, so a column missing from
/// [`POLICY_COLUMNS`] (or from a database that missed the migration) is an error, never
/// a silent default; and `From` names every field of the policy, so a new one cannot be
/// forgotten here.
#[derive(Deserialize)]
struct PolicyRecord {
    passthrough: bool,
}

impl From<PolicyRecord> for ProxyKeyPolicy {
    fn from(record: PolicyRecord) -> Self {
        ProxyKeyPolicy {
            passthrough: record.passthrough,
            ..ProxyKeyPolicy::default()
        }
    }
}

async fn records(rest: &Rest, columns: &str) -> Result<Vec<ProxyKeyRecord>, RestError> {
    let columns = format!("{columns},{POLICY_COLUMNS}");
    rest.fetch_all(rest.table("proxy_keys").select(columns).order("id.asc"))
        .await
}

pub(crate) async fn load(rest: &Rest) -> Result<Vec<ProxyKey>, RestError> {
    let rows = records(rest, "id,name,secret_hash,revoked").await?;
    Ok(rows
        .into_iter()
        .map(|r| ProxyKey {
            id: r.id,
            name: r.name,
            secret_hash: r.secret_hash.unwrap_or_default(),
            revoked: r.revoked,
            policy: std::sync::Arc::new(r.policy.into()),
        })
        .collect())
}

pub(crate) async fn create(
    rest: &Rest,
    name: &str,
    secret_hash: &str,
    policy: &ProxyKeyPolicy,
) -> Result<i64, StoreError> {
    if secret_hash.is_empty() {
        return Err(StoreError::Invalid("proxy key hash is empty".into()));
    }
    let body = json!({
        "name": name,
        "secret_hash": secret_hash,
        "passthrough": policy.passthrough,
    });
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
    records(rest, "id,name,revoked,created_at")
        .await?
        .into_iter()
        .map(|r| {
            Ok(ProxyKeyRow {
                id: r.id,
                name: r.name,
                revoked: r.revoked,
                created_at_ms: opt_timestamp(r.created_at.as_deref())?.unwrap_or(0),
                policy: r.policy.into(),
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
pub(crate) async fn update(rest: &Rest, id: i64, update: &ProxyKeyUpdate) -> Result<bool, RestError> {
    let mut changes = serde_json::Map::new();
    if let Some(passthrough) = update.passthrough {
        changes.insert("passthrough".into(), passthrough.into());
    }
    let by_id = rest.table("proxy_keys").eq("id", id.to_string()).select("id");
    let found: Vec<IdRecord> = if changes.is_empty() {
        rest.fetch(by_id, &[]).await?
    } else {
        let body = serde_json::Value::Object(changes).to_string();
        rest.fetch(by_id.update(body), &[]).await?
    };
    Ok(!found.is_empty())
}
