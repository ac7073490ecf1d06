//! Proxy keys: create one with its policy (the secret is shown once, with a copy button);
//! list them with their prefix, when last used, requests, tokens and cost today and this
//! month, every limit with what is left; edit a key's policy and name, allow or deny the pass-through routes, revoke,
//! delete.

use leptos::prelude::*;
use proxy_core::admin::{KeyUsage, PeriodUsage, ProxyKeyRow};
use proxy_core::policy::ProxyKeyPolicy;

use super::{csrf_field, notice, post_button};
use crate::forms::PolicyForm;
use crate::live::usd;
use crate::timefmt;

pub struct ProxyKeyView {
    pub row: ProxyKeyRow,
    /// Today and this month (UTC), the last minute, and what each limit leaves.
    pub usage: KeyUsage,
    /// When its newest logged request started; `None` when it has none.
    pub last_used_ms: Option<u64>,
}

/// A create or edit form that was refused: shown again with what was posted and why.
pub struct PolicyFailure {
    /// The key whose edit form it was; `None` for the create form.
    pub key_id: Option<i64>,
    pub error: String,
    pub values: PolicyForm,
}

/// `created` is the new key's name and secret, only on the response to the create form.
pub fn page(
    csrf: &str,
    keys: Vec<ProxyKeyView>,
    created: Option<(String, String)>,
    msg: Option<&str>,
    failure: Option<&PolicyFailure>,
) -> String {
    let created = created.map(|(name, secret)| {
        view! {
            <div class="notice">
                <p>"Proxy key “"{name}"” created. Copy it now: it is not shown again."</p>
                <p class="secret" id="new-secret">{secret}</p>
                <button type="button" data-copy="new-secret">"Copy"</button>
            </div>
        }
    });
    let error = failure.map(|f| view! { <p class="error" id="form-error">{f.error.clone()}</p> });
    let rows = keys
        .into_iter()
        .map(|view| {
            let k = view.row;
            let id = k.id;
            let failed = failure.filter(|f| f.key_id == Some(id));
            let edit = (!k.revoked).then(|| {
                let values = failed.map_or_else(|| PolicyForm::of(&k.name, &k.policy), |f| f.values.clone());
                edit_form(id, &values, failed.is_some(), csrf)
            });
            let revoke = if k.revoked {
                view! { "revoked" }.into_any()
            } else {
                post_button(
                    format!("/proxy-keys/{id}/revoke"),
                    "Revoke",
                    csrf,
                    Some("Revoke this proxy key? Clients using it are refused from now on."),
                )
            };
            let delete = post_button(
                format!("/proxy-keys/{id}/delete"),
                "Delete",
                csrf,
                Some("Delete this proxy key? Clients using it are refused; its log records stay."),
            );
            let passthrough = passthrough_cell(id, k.policy.passthrough, k.revoked, csrf);
            let prefix = k.prefix.clone().map_or_else(|| "-".to_string(), |p| format!("{p}…"));
            let last_used = view.last_used_ms.map_or_else(|| "never".to_string(), timefmt::date_time);
            let limits = limit_lines(&k.policy, &view.usage)
                .into_iter()
                .map(|line| view! { <li>{line}</li> })
                .collect_view();
            view! {
                <tr data-proxy-key-id=id.to_string()>
                    <td data-label="#">{id.to_string()}</td>
                    <td data-label="Name">{k.name.clone()}</td>
                    <td data-label="Prefix" class="prefix"><code>{prefix}</code></td>
                    <td data-label="Last used (UTC)" class="last-used">{last_used}</td>
                    <td data-label="Created (UTC)">{timefmt::date_time(k.created_at_ms)}</td>
                    <td class="num usage-today" data-label="Today (UTC)">{period_text(&view.usage.today)}</td>
                    <td class="num usage-month" data-label="This month (UTC)">{period_text(&view.usage.month)}</td>
                    <td class="limits" data-label="Limits and what is left"><ul>{limits}</ul></td>
                    <td class="passthrough" data-label="Pass-through">{passthrough}</td>
                    <td>{revoke}" "{delete}{edit}</td>
                </tr>
            }
        })
        .collect_view();
    let create_values = failure
        .filter(|f| f.key_id.is_none())
        .map_or_else(PolicyForm::default, |f| f.values.clone());
    let body = view! {
        <h1>"Proxy keys"</h1>
        {notice(msg)}
        {error}
        {created}
        <table id="proxy-keys">
            <tr><th>"#"</th><th>"Name"</th><th title="The secret's first characters">"Prefix"</th><th>"Last used (UTC)"</th><th>"Created (UTC)"</th><th>"Today (UTC)"</th><th>"This month (UTC)"</th>
                <th>"Limits and what is left"</th><th title=PASSTHROUGH_ROUTES>"Pass-through"</th><th></th></tr>
            {rows}
        </table>
        <h2>"Create a proxy key"</h2>
        <form method="post" action="/proxy-keys" class="policy" id="create-proxy-key">
            {csrf_field(csrf)}
            {policy_fields(&create_values)}
            <p class="hint">{HINT}</p>
            <button type="submit">"Create"</button>
        </form>
    }
    .into_any();
    super::layout::document("Proxy keys", "/proxy-keys", Some(csrf), body)
}

const HINT: &str = "Empty or 0 clears a limit. Models: names or globs (gemini-2.5-*), comma \
     separated; empty allows every model. Expires: a date (2026-12-31, midnight UTC) or an RFC \
     3339 time; empty never.";

/// What "pass-through" covers, as a tooltip.
const PASSTHROUGH_ROUTES: &str = "files, cachedContents, tunedModels, batches, operations: the pool's \
     project resources, whoever made them. Denied: generation, embeddings and models only.";

/// "3 req · 1200 tok · $0.0012"
pub fn period_text(p: &PeriodUsage) -> String {
    format!("{} req · {} tok · {}", p.requests, p.tokens, usd(p.cost_usd))
}

/// The key's limits, one line each, with what each leaves now; "no limits" when none.
pub fn limit_lines(policy: &ProxyKeyPolicy, usage: &KeyUsage) -> Vec<String> {
    let mut lines = Vec::new();
    if !policy.models.is_empty() {
        lines.push(format!("models: {}", policy.models.join(", ")));
    }
    for limit in &usage.limits {
        lines.push(limit.describe(|ms| format!("{} UTC", timefmt::date_time(ms))));
    }
    if lines.is_empty() {
        lines.push("no limits".into());
    }
    lines
}

/// Every policy field, filled with `v`: the create form's and each edit form's.
fn policy_fields(v: &PolicyForm) -> AnyView {
    let period = |value: &'static str| {
        let selected = v.budget_period.trim() == value;
        view! { <option value=value selected=selected>{value}</option> }
    };
    let denied = v.passthrough.trim() == "deny";
    view! {
        <div class="fields">
            <label>"Name"<input type="text" name="name" value=v.name.clone() required=true/></label>
            <label>"Models"<input type="text" name="models" value=v.models.clone() placeholder="any"/></label>
            <label>"Requests per minute"<input type="text" inputmode="numeric" name="rpm" value=v.rpm.clone() placeholder="no limit"/></label>
            <label>"Tokens per minute"<input type="text" inputmode="numeric" name="tpm" value=v.tpm.clone() placeholder="no limit"/></label>
            <label>"Tokens per day (UTC)"<input type="text" inputmode="numeric" name="tokens_per_day" value=v.tokens_per_day.clone() placeholder="no limit"/></label>
            <label>"Budget (USD)"<input type="text" inputmode="decimal" name="budget_usd" value=v.budget_usd.clone() placeholder="no budget"/></label>
            <label>"Budget period"
                <select name="budget_period">{period("month")}{period("day")}</select>
            </label>
            <label>"Expires"<input type="text" name="expires" value=v.expires.clone() placeholder="never"/></label>
            <label title=PASSTHROUGH_ROUTES>"Pass-through routes"
                <select name="passthrough">
                    <option value="allow" selected=!denied>"allowed"</option>
                    <option value="deny" selected=denied>"denied"</option>
                </select>
            </label>
        </div>
    }
    .into_any()
}

/// A key's edit form, folded away unless it is the one that was refused.
fn edit_form(id: i64, values: &PolicyForm, open: bool, csrf: &str) -> AnyView {
    let action = format!("/proxy-keys/{id}");
    view! {
        <details class="edit" open=open>
            <summary>"Edit"</summary>
            <form method="post" action=action class="policy">
                {csrf_field(csrf)}
                {policy_fields(values)}
                <p class="hint">{HINT}</p>
                <button type="submit">"Save"</button>
            </form>
        </details>
    }
    .into_any()
}

/// Whether the key may use the pass-through routes, and the button that flips it (none
/// on a revoked key: it can do nothing either way).
fn passthrough_cell(id: i64, allowed: bool, revoked: bool, csrf: &str) -> AnyView {
    let (text, setting, label) = if allowed {
        ("allowed", "deny", "Deny")
    } else {
        ("denied", "allow", "Allow")
    };
    let button = (!revoked).then(|| {
        post_button(
            format!("/proxy-keys/{id}/passthrough/{setting}"),
            label,
            csrf,
            None,
        )
    });
    view! { {text} " " {button} }.into_any()
}
