//! Proxy keys: create (the secret is shown once, with a copy button), list with usage
//! and policy, allow or deny the pass-through routes, revoke.

use leptos::prelude::*;
use proxy_core::admin::{ProxyKeyRow, UsageCell};

use super::{csrf_field, notice, post_button};
use crate::timefmt;

pub struct ProxyKeyView {
    pub row: ProxyKeyRow,
    /// Since midnight UTC, and over the last 30 days.
    pub today: UsageCell,
    pub month: UsageCell,
}

/// `created` is the new key's name and secret, only on the response to the create form.
pub fn page(
    csrf: &str,
    keys: Vec<ProxyKeyView>,
    created: Option<(String, String)>,
    msg: Option<&str>,
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
    let rows = keys
        .into_iter()
        .map(|view| {
            let k = view.row;
            let action = if k.revoked {
                view! { "revoked" }.into_any()
            } else {
                post_button(format!("/proxy-keys/{}/revoke", k.id), "Revoke", csrf, true)
            };
            let passthrough = passthrough_cell(k.id, k.policy.passthrough, k.revoked, csrf);
            view! {
                <tr>
                    <td>{k.id.to_string()}</td>
                    <td>{k.name}</td>
                    <td>{timefmt::date_time(k.created_at_ms)}</td>
                    <td class="num">{super::keys::usage_text(&view.today)}</td>
                    <td class="num">{super::keys::usage_text(&view.month)}</td>
                    <td class="passthrough">{passthrough}</td>
                    <td>{action}</td>
                </tr>
            }
        })
        .collect_view();
    let body = view! {
        <h1>"Proxy keys"</h1>
        {notice(msg)}
        {created}
        <table id="proxy-keys">
            <tr><th>"#"</th><th>"Name"</th><th>"Created"</th><th>"Today (UTC)"</th><th>"Last 30 days"</th>
                <th title=PASSTHROUGH_ROUTES>"Pass-through"</th><th></th></tr>
            {rows}
        </table>
        <h2>"Create a proxy key"</h2>
        <form method="post" action="/proxy-keys">
            {csrf_field(csrf)}
            <label>"Name " <input type="text" name="name" required=true/></label>
            " "
            <label title=PASSTHROUGH_ROUTES>"Pass-through routes "
                <select name="passthrough">
                    <option value="allow" selected=true>"allowed"</option>
                    <option value="deny">"denied"</option>
                </select>
            </label>
            " "
            <button type="submit">"Create"</button>
        </form>
    }
    .into_any();
    super::layout::document("Proxy keys", "/proxy-keys", Some(csrf), body)
}

/// What "pass-through" covers, as a tooltip.
const PASSTHROUGH_ROUTES: &str = "files, cachedContents, tunedModels, batches, operations: the pool's \
     project resources, whoever made them. Denied: generation, embeddings and models only.";

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
            false,
        )
    });
    view! { {text} " " {button} }.into_any()
}
