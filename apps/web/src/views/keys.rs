//! Upstream keys: masked key, name, status (cooldowns with time left, models off today),
//! usage and cost today, limits (every model and per model) with their edit forms, last
//! used; add (one or many, one per line), enable/disable, re-check, delete.

use leptos::prelude::*;
use proxy_core::admin::{KeyRow, UsageCell};
use proxy_core::keys::{KeyLimits, Limits};

use super::{csrf_field, notice, post_button};
use crate::forms::KeyLimitsForm;
use crate::live::{KeyStatus, KeyToggle, usd};
use crate::timefmt;

pub struct KeyView {
    pub row: KeyRow,
    /// Requests this key answered since midnight Pacific, when Gemini's daily quotas reset.
    pub today: UsageCell,
}

/// A limits form that was refused: shown again with what was posted and why.
pub struct LimitsFailure {
    /// The key whose limits form was refused; `None` for the add form.
    pub key_id: Option<i64>,
    pub error: String,
    pub values: KeyLimitsForm,
}

/// "12 req · 3400 tok · $0.0012" (errors added when there were some).
pub fn usage_text(u: &UsageCell) -> String {
    let errors = if u.errors > 0 {
        format!(" ({} failed)", u.errors)
    } else {
        String::new()
    };
    format!(
        "{} req{errors} · {} tok · {}",
        u.requests,
        u.total_tokens,
        usd(u.cost_usd)
    )
}

/// The status cell: the shared `KeyStatus` component, which the browser bundle (when
/// loaded) keeps current from the `key_rows` server function and counts down.
pub fn status_cell(k: &KeyRow, now_ms: u64) -> AnyView {
    let id = k.id.to_string();
    view! { <td data-live-key=id data-label="Status"><KeyStatus row=k.clone() now_ms=now_ms/></td> }
        .into_any()
}

/// "rpm 10 · rpd 500", or "none".
pub fn one_limits_text(limits: &Limits) -> String {
    let parts: Vec<String> = [("rpm", limits.rpm), ("tpm", limits.tpm), ("rpd", limits.rpd)]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| format!("{name} {v}")))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(" · ")
    }
}

/// One line per scope: "all models: rpm 10 · rpd 500", then each model's own.
pub fn limit_lines(limits: &KeyLimits) -> Vec<String> {
    let mut lines = vec![format!("all models: {}", one_limits_text(&limits.all_models))];
    for (model, own) in &limits.models {
        lines.push(format!("{model}: {}", one_limits_text(own)));
    }
    lines
}

pub fn page(
    csrf: &str,
    keys: Vec<KeyView>,
    now_ms: u64,
    added_keys: Option<String>,
    msg: Option<&str>,
    failure: Option<&LimitsFailure>,
) -> String {
    let error = failure.map(|f| view! { <p class="error" id="form-error">{f.error.clone()}</p> });
    let added = failure
        .filter(|f| f.key_id.is_none())
        .map_or_else(KeyLimitsForm::default, |f| f.values.clone());
    let rows = keys
        .into_iter()
        .map(|k| {
            let id = k.row.id;
            // The bundle mounts the same component here and keeps it to the key's state.
            let enabled = k.row.enabled;
            let toggle = view! {
                <span data-live-toggle=id.to_string() data-csrf=csrf.to_string()>
                    <KeyToggle id=id enabled=enabled csrf=csrf.to_string()/>
                </span>
            };
            let recheck = post_button(format!("/keys/{id}/recheck"), "Re-check", csrf, None);
            let delete = post_button(
                format!("/keys/{id}/delete"),
                "Delete",
                csrf,
                Some("Delete this upstream key? The proxy stops using it; its log records stay."),
            );
            let last_used = k
                .row
                .last_used_ms
                .map_or_else(|| "never".to_string(), timefmt::date_time);
            let limits = limit_lines(&k.row.limits)
                .into_iter()
                .map(|line| view! { <li>{line}</li> })
                .collect_view();
            let failed = failure.filter(|f| f.key_id == Some(id));
            let edit = limits_forms(id, &k.row.limits, failed, csrf);
            view! {
                <tr data-key-id=id.to_string()>
                    <td data-label="#">{id.to_string()}</td>
                    <td data-label="Name">{k.row.name.clone()}</td>
                    <td data-label="Key"><code>{k.row.masked.clone()}</code></td>
                    {status_cell(&k.row, now_ms)}
                    <td class="num" data-label="Today (Pacific)">{usage_text(&k.today)}</td>
                    <td class="limits" data-label="Limits"><ul>{limits}</ul>{edit}</td>
                    <td data-label="Last used (UTC)">{last_used}</td>
                    <td data-label="Added (UTC)">{timefmt::date_time(k.row.created_at_ms)}</td>
                    <td>{toggle}" "{recheck}" "{delete}</td>
                </tr>
            }
        })
        .collect_view();
    let body = view! {
        <h1>"Upstream keys"</h1>
        {notice(msg)}
        {added_keys.map(|text| view! { <p class="notice" id="added-keys">{text}</p> })}
        {error}
        <table id="keys">
            <tr><th>"#"</th><th>"Name"</th><th>"Key"</th><th>"Status"</th><th title="Since midnight Pacific, when Google resets daily quotas">"Today (Pacific)"</th><th>"Limits"</th>
                <th>"Last used (UTC)"</th><th>"Added (UTC)"</th><th></th></tr>
            {rows}
        </table>
        <h2>"Add keys"</h2>
        <form method="post" action="/keys">
            {csrf_field(csrf)}
            <p><label>"Name (optional) " <input type="text" name="name"/></label></p>
            <p><label>"Gemini API keys, one per line"<br/>
                <textarea name="keys" rows="5" required=true autocomplete="off"></textarea></label></p>
            <p class="limits-form">"Limits (optional): "
                <label>"model "<input type="text" name="model" value=added.model.clone() placeholder="every model" size="18"/></label>
                {count_inputs(&added)}
            </p>
            <button type="submit">"Add"</button>
        </form>
    }
    .into_any();
    super::layout::document("Upstream keys", "/keys", Some(csrf), body)
}

/// The key's limits forms, folded away unless one of them was refused: every model's,
/// each model's own, and one for a model without limits yet. Each sets rpm, tpm and
/// rpd for its scope; empty or 0 clears one.
fn limits_forms(id: i64, limits: &KeyLimits, failed: Option<&LimitsFailure>, csrf: &str) -> AnyView {
    let failed_model = failed.map(|f| f.values.model.trim().trim_start_matches("models/").to_string());
    let mut scopes: Vec<(Option<String>, Limits)> = vec![(None, limits.all_models)];
    scopes.extend(limits.models.iter().map(|(m, l)| (Some(m.clone()), *l)));
    let mut used_failure = false;
    let mut forms: Vec<AnyView> = scopes
        .into_iter()
        .map(|(model, own)| {
            let this = model.clone().unwrap_or_default();
            let values = match (failed, &failed_model) {
                (Some(f), Some(m)) if *m == this => {
                    used_failure = true;
                    f.values.clone()
                }
                _ => KeyLimitsForm::of(model.as_deref(), &own),
            };
            let label = model.map_or_else(|| "All models".to_string(), |m| format!("Model {m}"));
            let model_field = view! { <input type="hidden" name="model" value=values.model.clone()/> };
            limits_form(id, label, model_field.into_any(), &values, csrf)
        })
        .collect();
    let values = match failed {
        Some(f) if !used_failure => f.values.clone(),
        _ => KeyLimitsForm::default(),
    };
    let model_field = view! { <label>"Model"<input type="text" name="model" value=values.model.clone() required=true/></label> };
    forms.push(limits_form(
        id,
        "Another model".to_string(),
        model_field.into_any(),
        &values,
        csrf,
    ));
    view! {
        <details class="edit" open=failed.is_some()>
            <summary>"Edit limits"</summary>
            {forms}
            <p class="hint">"Empty or 0 clears a limit. Requests per day reset at midnight Pacific."</p>
        </details>
    }
    .into_any()
}

fn limits_form(id: i64, label: String, model_field: AnyView, v: &KeyLimitsForm, csrf: &str) -> AnyView {
    let action = format!("/keys/{id}/limits");
    view! {
        <form method="post" action=action class="limits-form">
            {csrf_field(csrf)}
            <b>{label}</b>
            {model_field}
            {count_inputs(v)}
            <button type="submit">"Set"</button>
        </form>
    }
    .into_any()
}

/// The rpm, tpm and rpd inputs, filled from `v`: the add form's and each limits form's.
fn count_inputs(v: &KeyLimitsForm) -> AnyView {
    view! {
        <label>"rpm"<input type="text" inputmode="numeric" name="rpm" value=v.rpm.clone() size="6"/></label>
        <label>"tpm"<input type="text" inputmode="numeric" name="tpm" value=v.tpm.clone() size="8"/></label>
        <label>"rpd"<input type="text" inputmode="numeric" name="rpd" value=v.rpd.clone() size="6"/></label>
    }
    .into_any()
}
