//! POST handlers: check the CSRF token, change the store, wake the proxy's refresher,
//! then redirect (so reloading does not repeat the action).

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use proxy_core::admin::AdminStore;
use proxy_core::auth::{format_proxy_key, hash_proxy_key};
use proxy_core::classify::Outcome;
use proxy_core::platform::StoreError;
use serde::Deserialize;

use super::login::CsrfForm;
use super::{render, store_error};
use crate::operator::Operator;
use crate::state::AppState;
use crate::views;

#[derive(Deserialize)]
pub struct AddKeysForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    keys: String,
}

/// Adds every non-empty line as a key. Several keys with one name get `name-1`, `name-2`…
pub async fn add_keys(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Form(form): Form<AddKeysForm>,
) -> Response {
    if let Some(response) = operator.csrf_rejection(&form.csrf) {
        return response;
    }
    match add_key_lines(state.admin.as_ref(), &form.name, &form.keys).await {
        Ok(0) => Redirect::to("/keys?msg=none").into_response(),
        Ok(_) => {
            state.refresh.notify_one();
            Redirect::to("/keys?msg=added").into_response()
        }
        Err(error) => store_error(error),
    }
}

pub async fn add_key_lines(admin: &dyn AdminStore, name: &str, text: &str) -> Result<usize, StoreError> {
    let secrets: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let name = name.trim();
    for (i, secret) in secrets.iter().enumerate() {
        let name = if secrets.len() > 1 && !name.is_empty() {
            format!("{name}-{}", i + 1)
        } else {
            name.to_string()
        };
        admin.add_key(secret, &name).await?;
    }
    Ok(secrets.len())
}

pub async fn key_action(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Path((id, action)): Path<(i64, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(response) = operator.csrf_rejection(&form.csrf) {
        return response;
    }
    let admin = state.admin.as_ref();
    let (result, msg) = match action.as_str() {
        "enable" => (admin.set_key_enabled(id, true).await, "enabled"),
        "disable" => (admin.set_key_enabled(id, false).await, "disabled"),
        "delete" => (admin.remove_key(id).await, "deleted"),
        "recheck" => return recheck(&state, id).await,
        _ => return (StatusCode::NOT_FOUND, "unknown action").into_response(),
    };
    match result {
        Ok(true) => {
            state.refresh.notify_one();
            Redirect::to(&format!("/keys?msg={msg}")).into_response()
        }
        Ok(false) => Redirect::to("/keys?msg=missing").into_response(),
        Err(error) => store_error(error),
    }
}

/// "Re-check now": one cheap upstream call with the key. An invalid verdict is saved as
/// the proxy saves its own; a valid key that carried an invalid mark is re-enabled, which
/// clears the mark (and any cooldowns: the next real request re-learns them).
async fn recheck(state: &AppState, id: i64) -> Response {
    let Some(check) = state.proxy.check_key(id).await else {
        // Added a moment ago, the key may be in the store but not yet in the proxy.
        let known = match state.admin.list_keys().await {
            Ok(keys) => keys.iter().any(|k| k.id == id),
            Err(error) => return store_error(error),
        };
        state.refresh.notify_one();
        let msg = if known { "checked-pending" } else { "missing" };
        return Redirect::to(&format!("/keys?msg={msg}")).into_response();
    };
    let saved = match (&check.outcome, &check.change) {
        (_, Some(change)) => state.key_store.save_state(std::slice::from_ref(change)).await,
        (Outcome::Success, None) => clear_invalid_mark(state.admin.as_ref(), id).await,
        _ => Ok(()),
    };
    if let Err(error) = saved {
        return store_error(error);
    }
    state.refresh.notify_one();
    tracing::info!(
        key_id = id,
        verdict = check.verdict(),
        "operator re-checked an upstream key"
    );
    Redirect::to(&format!("/keys?msg=checked-{}", check.verdict())).into_response()
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

#[derive(Deserialize)]
pub struct CreateProxyKeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

/// Answers with the page itself (not a redirect): the secret must appear exactly once
/// and never in a URL.
pub async fn create_proxy_key(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Form(form): Form<CreateProxyKeyForm>,
) -> Response {
    if let Some(response) = operator.csrf_rejection(&form.csrf) {
        return response;
    }
    let mut random = [0u8; 24];
    if let Err(error) = getrandom::fill(&mut random) {
        tracing::error!(%error, "no randomness for a proxy key");
        return (StatusCode::INTERNAL_SERVER_ERROR, "cannot generate a key").into_response();
    }
    let secret = format_proxy_key(&random);
    let name = form.name.trim().to_string();
    let admin = state.admin.as_ref();
    if let Err(error) = admin.create_proxy_key(&name, &hash_proxy_key(&secret)).await {
        return store_error(error);
    }
    state.refresh.notify_one();
    match super::pages::proxy_key_views(admin, proxy_axum::unix_ms()).await {
        Ok(keys) => render(|| views::proxy_keys::page(operator.csrf(), keys, Some((name, secret)), None)),
        Err(error) => store_error(error),
    }
}

pub async fn revoke_proxy_key(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(response) = operator.csrf_rejection(&form.csrf) {
        return response;
    }
    match state.admin.revoke_proxy_key(id).await {
        Ok(true) => {
            state.refresh.notify_one();
            Redirect::to("/proxy-keys?msg=revoked").into_response()
        }
        Ok(false) => Redirect::to("/proxy-keys?msg=missing").into_response(),
        Err(error) => store_error(error),
    }
}
