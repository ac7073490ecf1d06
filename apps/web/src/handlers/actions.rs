//! POST handlers: check the CSRF token, change the store, wake the proxy's refresher,
//! then redirect (so reloading does not repeat the action).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use proxy_core::admin::{AdminStore, ProxyKeyUpdate, validate_policy};
use proxy_core::auth::{format_proxy_key, hash_proxy_key, secret_prefix};
use proxy_core::classify::Outcome;
use proxy_core::keys::KeyLimits;
use proxy_core::platform::StoreError;
use proxy_core::policy::ProxyKeyPolicy;
use serde::Deserialize;

use super::login::CsrfForm;
use super::{AppError, render};
use crate::forms::{KeyLimitsForm, PolicyForm, whole_update};
use crate::operator::Operator;
use crate::state::AppState;
use crate::views;
use crate::views::keys::LimitsFailure;
use crate::views::proxy_keys::PolicyFailure;

#[derive(Deserialize)]
pub struct AddKeysForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    keys: String,
    /// The new keys' limits (every model's, or `limits.model`'s), as the edit form has them.
    #[serde(flatten)]
    limits: KeyLimitsForm,
}

/// Adds every non-empty line as a key, with the form's limits. Several keys with one
/// name get `name-1`, `name-2`…; without a name each is named by its last four
/// characters (as its masked form shows them). A line already stored, or not a key, is
/// skipped and said so by its line number, the others are added. A bad limit adds
/// nothing: the page again, 400, the limits as posted (never the keys: a page shows no
/// upstream key).
pub async fn add_keys(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Form(form): Form<AddKeysForm>,
) -> Result<Response, AppError> {
    if let Some(response) = operator.csrf_rejection(&form.csrf) {
        return Ok(response);
    }
    let mut limits = KeyLimits::default();
    match form.limits.parsed() {
        Ok((model, rpm, tpm, rpd)) => limits.update(model.as_deref(), Some(rpm), Some(tpm), Some(rpd)),
        Err(error) => return refuse_limits(&state, &operator, None, error.to_string(), form.limits).await,
    }
    let added = add_key_lines(state.admin.as_ref(), &form.name, &form.keys, &limits).await?;
    if added.is_empty() {
        return Ok(Redirect::to("/keys?msg=none").into_response());
    }
    if added.added > 0 {
        state.refresh.notify_one();
    }
    Ok(Redirect::to(&format!("/keys?{}", added.query())).into_response())
}

/// What adding pasted lines did, by line number (1 is the first line).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AddedKeys {
    pub added: usize,
    /// Lines already stored, with the stored key's id when the store named it.
    pub stored: Vec<(usize, Option<i64>)>,
    /// Lines that are not a key.
    pub refused: Vec<usize>,
}

impl AddedKeys {
    fn is_empty(&self) -> bool {
        self.added == 0 && self.stored.is_empty() && self.refused.is_empty()
    }

    /// The keys page's query that reports it (numbers only: nothing pasted is echoed).
    fn query(&self) -> String {
        let stored: Vec<String> = self
            .stored
            .iter()
            .map(|(line, id)| id.map_or_else(|| line.to_string(), |id| format!("{line}:{id}")))
            .collect();
        let refused: Vec<String> = self.refused.iter().map(usize::to_string).collect();
        format!(
            "msg=added&added={}&stored={}&refused={}",
            self.added,
            stored.join(","),
            refused.join(",")
        )
    }
}

/// Adds each non-empty line of `text` as a key with `limits`, each on its own: a line
/// the store refuses is noted and the rest go on. Only an unreachable store fails it.
pub async fn add_key_lines(
    admin: &dyn AdminStore,
    name: &str,
    text: &str,
    limits: &KeyLimits,
) -> Result<AddedKeys, StoreError> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty())
        .collect();
    let name = name.trim();
    let mut report = AddedKeys::default();
    for (i, (line, secret)) in lines.iter().enumerate() {
        let name = match (lines.len() > 1, name.is_empty()) {
            (_, true) => default_name(secret),
            (true, false) => format!("{name}-{}", i + 1),
            (false, false) => name.to_string(),
        };
        match admin.add_key_with_limits(secret, &name, limits).await {
            Ok(_) => report.added += 1,
            Err(StoreError::Invalid(why)) if why.contains("already stored") => {
                report.stored.push((*line, stored_id(&why)));
            }
            Err(StoreError::Invalid(_)) => report.refused.push(*line),
            Err(error) => return Err(error),
        }
    }
    Ok(report)
}

/// A key's name when the form gave none: `key-` and its last four characters.
fn default_name(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("key-{tail}")
}

/// The id in a store's "already stored (as #ID)", when it names one.
fn stored_id(message: &str) -> Option<i64> {
    let (_, rest) = message.split_once("(as #")?;
    rest.trim_end_matches(')').parse().ok()
}

pub async fn key_action(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Path((id, action)): Path<(i64, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    if let Some(response) = operator.csrf_rejection(&form.csrf) {
        return Ok(response);
    }
    let admin = state.admin.as_ref();
    let (found, msg) = match action.as_str() {
        "enable" => (admin.set_key_enabled(id, true).await?, "enabled"),
        "disable" => (admin.set_key_enabled(id, false).await?, "disabled"),
        "delete" => (admin.remove_key(id).await?, "deleted"),
        "recheck" => return recheck(&state, id).await,
        _ => return Ok((StatusCode::NOT_FOUND, "unknown action").into_response()),
    };
    if !found {
        return Ok(Redirect::to("/keys?msg=missing").into_response());
    }
    state.refresh.notify_one();
    Ok(Redirect::to(&format!("/keys?msg={msg}")).into_response())
}

/// "Re-check now": one cheap upstream call with the key. An invalid verdict is saved as
/// the proxy saves its own; a valid key that carried an invalid mark is re-enabled, which
/// clears the mark (and any cooldowns: the next real request re-learns them).
async fn recheck(state: &AppState, id: i64) -> Result<Response, AppError> {
    let msg = match check_one(state, id).await? {
        "missing" => "missing".to_string(),
        verdict => format!("checked-{verdict}"),
    };
    Ok(Redirect::to(&format!("/keys?msg={msg}")).into_response())
}

/// "Re-check all" without script: every enabled key, one after another, then the page
/// with how many came out which way. With script the page does the same key by key
/// through `recheck`, showing its progress, and ends on the same summary.
pub async fn recheck_all(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    if let Some(response) = operator.csrf_rejection(&form.csrf) {
        return Ok(response);
    }
    let mut verdicts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for key in state.admin.list_keys().await?.iter().filter(|k| k.enabled) {
        *verdicts.entry(check_one(&state, key.id).await?).or_default() += 1;
    }
    let summary: Vec<String> = verdicts.iter().map(|(v, n)| format!("{v}-{n}")).collect();
    Ok(Redirect::to(&format!("/keys?rechecked={}", summary.join("."))).into_response())
}

/// Re-checks one key and keeps the verdict as the proxy keeps its own: `valid`,
/// `invalid`, `rate_limited`, `unreachable`, `refused`, `pending` (not loaded by the
/// proxy yet) or `missing`.
async fn check_one(state: &AppState, id: i64) -> Result<&'static str, AppError> {
    let Some(check) = state.proxy.check_key(id).await else {
        // Added a moment ago, the key may be in the store but not yet in the proxy.
        let known = state.admin.list_keys().await?.iter().any(|k| k.id == id);
        state.refresh.notify_one();
        return Ok(if known { "pending" } else { "missing" });
    };
    match (&check.outcome, &check.change) {
        (_, Some(change)) => state.key_store.save_state(std::slice::from_ref(change)).await?,
        (Outcome::Success, None) => clear_invalid_mark(state.admin.as_ref(), id).await?,
        _ => {}
    }
    state.refresh.notify_one();
    tracing::info!(
        key_id = id,
        verdict = check.verdict(),
        "operator re-checked an upstream key"
    );
    Ok(check.verdict())
}

async fn clear_invalid_mark(admin: &dyn AdminStore, id: i64) -> Result<(), StoreError> {
    let marked = admin
        .list_keys()
        .await?
        .into_iter()
        .any(|k| k.id == id && k.enabled && k.invalid_reason.is_some());
    if marked {
        admin.set_key_enabled(id, true).await?;
    }
    Ok(())
}

/// A pass-through setting as the forms spell it.
fn passthrough_setting(text: &str) -> Option<bool> {
    match text {
        "allow" => Some(true),
        "deny" => Some(false),
        _ => None,
    }
}

/// The name and policy a create or edit form holds, or the field to correct.
fn named_policy(form: &PolicyForm) -> Result<(String, ProxyKeyPolicy), String> {
    let name = form.name().map_err(|e| e.to_string())?;
    let policy = form.policy().map_err(|e| e.to_string())?;
    validate_policy(&policy).map_err(|e| format!("budget (USD): {e}"))?;
    Ok((name, policy))
}

/// The proxy-keys page again, 400, with the refused form filled as it was posted and
/// the reason above the table. Nothing was changed.
async fn refuse_policy(
    state: &AppState,
    operator: &Operator,
    key_id: Option<i64>,
    error: String,
    form: PolicyForm,
) -> Result<Response, AppError> {
    let keys = super::pages::proxy_key_views(state.admin.as_ref(), proxy_axum::unix_ms()).await?;
    let failure = PolicyFailure {
        key_id,
        error,
        values: PolicyForm {
            csrf: String::new(),
            ..form
        },
    };
    let mut response = render(|| views::proxy_keys::page(operator.csrf(), keys, None, None, Some(&failure)));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    Ok(response)
}

/// Creates the key with its whole policy in one write, then redirects to the page that
/// shows its secret once: the secret waits in the session (never in a URL), so reloading
/// that page neither shows it again nor creates a second key.
pub async fn create_proxy_key(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Form(form): Form<PolicyForm>,
) -> Result<Response, AppError> {
    if let Some(response) = operator.csrf_rejection(&form.csrf) {
        return Ok(response);
    }
    let (name, policy) = match named_policy(&form) {
        Ok(parsed) => parsed,
        Err(error) => return refuse_policy(&state, &operator, None, error, form).await,
    };
    let mut random = [0u8; 24];
    if let Err(error) = getrandom::fill(&mut random) {
        tracing::error!(%error, "no randomness for a proxy key");
        return Ok((StatusCode::INTERNAL_SERVER_ERROR, "cannot generate a key").into_response());
    }
    let secret = format_proxy_key(&random);
    let admin = state.admin.as_ref();
    match admin
        .create_proxy_key_with_policy(
            &name,
            &hash_proxy_key(&secret),
            Some(&secret_prefix(&secret)),
            &policy,
        )
        .await
    {
        Ok(_) => {}
        Err(StoreError::Invalid(error)) => return refuse_policy(&state, &operator, None, error, form).await,
        Err(error) => return Err(error.into()),
    }
    state.refresh.notify_one();
    state.sessions.keep_new_secret(&operator.token, name, secret);
    Ok(Redirect::to("/proxy-keys?msg=created").into_response())
}

/// The edit form: sets every policy field as the form holds it (an empty limit clears
/// that limit) and the name, then redirects.
pub async fn edit_proxy_key(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Path(id): Path<i64>,
    Form(form): Form<PolicyForm>,
) -> Result<Response, AppError> {
    if let Some(response) = operator.csrf_rejection(&form.csrf) {
        return Ok(response);
    }
    let (name, policy) = match named_policy(&form) {
        Ok(parsed) => parsed,
        Err(error) => return refuse_policy(&state, &operator, Some(id), error, form).await,
    };
    let admin = state.admin.as_ref();
    let found = match admin.update_proxy_key(id, &whole_update(&policy)).await {
        Ok(found) => found,
        Err(StoreError::Invalid(error)) => {
            return refuse_policy(&state, &operator, Some(id), error, form).await;
        }
        Err(error) => return Err(error.into()),
    };
    if !found || !admin.rename_proxy_key(id, &name).await? {
        return Ok(Redirect::to("/proxy-keys?msg=missing").into_response());
    }
    state.refresh.notify_one();
    tracing::info!(
        proxy_key_id = id,
        ?policy,
        "operator changed a proxy key's policy"
    );
    Ok(Redirect::to("/proxy-keys?msg=updated").into_response())
}

/// Deletes a proxy key's row: its secret stops working at the proxy's next refresh
/// (woken now); its log records stay.
pub async fn delete_proxy_key(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    if let Some(response) = operator.csrf_rejection(&form.csrf) {
        return Ok(response);
    }
    if !state.admin.delete_proxy_key(id).await? {
        return Ok(Redirect::to("/proxy-keys?msg=missing").into_response());
    }
    state.refresh.notify_one();
    tracing::info!(proxy_key_id = id, "operator deleted a proxy key");
    Ok(Redirect::to("/proxy-keys?msg=proxy-key-deleted").into_response())
}

/// An upstream key's limits for every model or one: each of rpm, tpm, rpd as the form
/// holds it (empty or 0 clears it); the other models' limits stay.
pub async fn set_key_limits(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Path(id): Path<i64>,
    Form(form): Form<KeyLimitsForm>,
) -> Result<Response, AppError> {
    if let Some(response) = operator.csrf_rejection(&form.csrf) {
        return Ok(response);
    }
    let (model, rpm, tpm, rpd) = match form.parsed() {
        Ok(parsed) => parsed,
        Err(error) => return refuse_limits(&state, &operator, Some(id), error.to_string(), form).await,
    };
    let admin = state.admin.as_ref();
    let Some(key) = admin.list_keys().await?.into_iter().find(|k| k.id == id) else {
        return Ok(Redirect::to("/keys?msg=missing").into_response());
    };
    let mut limits = key.limits;
    limits.update(model.as_deref(), Some(rpm), Some(tpm), Some(rpd));
    match admin.set_key_limits(id, &limits).await {
        Ok(true) => {}
        Ok(false) => return Ok(Redirect::to("/keys?msg=missing").into_response()),
        Err(StoreError::Invalid(error)) => {
            return refuse_limits(&state, &operator, Some(id), error, form).await;
        }
        Err(error) => return Err(error.into()),
    }
    state.refresh.notify_one();
    tracing::info!(key_id = id, ?limits, "operator changed an upstream key's limits");
    Ok(Redirect::to("/keys?msg=limits-set").into_response())
}

/// The upstream keys page again, 400, with the refused limits form filled as posted:
/// key `key_id`'s, or the add form's when `None`.
async fn refuse_limits(
    state: &AppState,
    operator: &Operator,
    key_id: Option<i64>,
    error: String,
    form: KeyLimitsForm,
) -> Result<Response, AppError> {
    let now = proxy_axum::unix_ms();
    let keys = super::pages::key_views(state.admin.as_ref(), now).await?;
    let failure = LimitsFailure {
        key_id,
        error,
        values: KeyLimitsForm {
            csrf: String::new(),
            ..form
        },
    };
    let mut response = render(|| {
        views::keys::page(
            operator.csrf(),
            keys,
            &views::keys::Listing::default(),
            now,
            None,
            None,
            Some(&failure),
        )
    });
    *response.status_mut() = StatusCode::BAD_REQUEST;
    Ok(response)
}

pub async fn revoke_proxy_key(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    if let Some(response) = operator.csrf_rejection(&form.csrf) {
        return Ok(response);
    }
    if !state.admin.revoke_proxy_key(id).await? {
        return Ok(Redirect::to("/proxy-keys?msg=missing").into_response());
    }
    state.refresh.notify_one();
    Ok(Redirect::to("/proxy-keys?msg=revoked").into_response())
}

/// Allows (`allow`) or denies (`deny`) a proxy key the pass-through routes.
pub async fn set_proxy_key_passthrough(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Path((id, setting)): Path<(i64, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    if let Some(response) = operator.csrf_rejection(&form.csrf) {
        return Ok(response);
    }
    let Some(allowed) = passthrough_setting(&setting) else {
        return Ok((StatusCode::NOT_FOUND, "unknown setting").into_response());
    };
    let update = ProxyKeyUpdate {
        passthrough: Some(allowed),
        ..ProxyKeyUpdate::default()
    };
    if !state.admin.update_proxy_key(id, &update).await? {
        return Ok(Redirect::to("/proxy-keys?msg=missing").into_response());
    }
    state.refresh.notify_one();
    tracing::info!(
        proxy_key_id = id,
        passthrough = allowed,
        "operator changed a proxy key's pass-through"
    );
    let msg = if allowed {
        "passthrough-allowed"
    } else {
        "passthrough-denied"
    };
    Ok(Redirect::to(&format!("/proxy-keys?msg={msg}")).into_response())
}
