//! Upstream keys: masked key, name, status, cooldowns with time left, usage today, last
//! used; add (one or many, one per line), enable/disable, re-check, delete.

use leptos::prelude::*;
use proxy_core::admin::{KeyRow, UsageCell};

use super::{csrf_field, notice, post_button};
use crate::live::KeyStatus;
use crate::timefmt;

pub struct KeyView {
    pub row: KeyRow,
    /// Requests this key answered since midnight Pacific, when Gemini's daily quotas reset.
    pub today: UsageCell,
}

/// "12 req · 3400 tok" (errors added when there were some).
pub fn usage_text(u: &UsageCell) -> String {
    let errors = if u.errors > 0 {
        format!(" ({} failed)", u.errors)
    } else {
        String::new()
    };
    format!("{} req{errors} · {} tok", u.requests, u.total_tokens)
}

/// The status cell: the shared `KeyStatus` component, which the browser bundle (when
/// loaded) keeps current from the `key_rows` server function and counts down.
pub fn status_cell(k: &KeyRow, now_ms: u64) -> AnyView {
    let id = k.id.to_string();
    view! { <td data-live-key=id><KeyStatus row=k.clone() now_ms=now_ms/></td> }.into_any()
}

pub fn page(csrf: &str, keys: Vec<KeyView>, now_ms: u64, msg: Option<&str>) -> String {
    let rows = keys
        .into_iter()
        .map(|k| {
            let id = k.row.id;
            let toggle = if k.row.enabled {
                post_button(format!("/keys/{id}/disable"), "Disable", csrf, false)
            } else {
                post_button(format!("/keys/{id}/enable"), "Enable", csrf, false)
            };
            let recheck = post_button(format!("/keys/{id}/recheck"), "Re-check", csrf, false);
            let delete = post_button(format!("/keys/{id}/delete"), "Delete", csrf, true);
            let last_used = k
                .row
                .last_used_ms
                .map_or_else(|| "never".to_string(), timefmt::date_time);
            view! {
                <tr data-key-id=id.to_string()>
                    <td>{id.to_string()}</td>
                    <td>{k.row.name.clone()}</td>
                    <td><code>{k.row.masked.clone()}</code></td>
                    {status_cell(&k.row, now_ms)}
                    <td class="num">{usage_text(&k.today)}</td>
                    <td>{last_used}</td>
                    <td>{timefmt::date_time(k.row.created_at_ms)}</td>
                    <td>{toggle}" "{recheck}" "{delete}</td>
                </tr>
            }
        })
        .collect_view();
    let body = view! {
        <h1>"Upstream keys"</h1>
        {notice(msg)}
        <table id="keys">
            <tr><th>"#"</th><th>"Name"</th><th>"Key"</th><th>"Status"</th><th>"Today (PT)"</th><th>"Last used"</th><th>"Added"</th><th></th></tr>
            {rows}
        </table>
        <h2>"Add keys"</h2>
        <form method="post" action="/keys">
            {csrf_field(csrf)}
            <p><label>"Name (optional) " <input type="text" name="name"/></label></p>
            <p><label>"Gemini API keys, one per line"<br/>
                <textarea name="keys" rows="5" required=true autocomplete="off"></textarea></label></p>
            <button type="submit">"Add"</button>
        </form>
    }
    .into_any();
    super::layout::document("Upstream keys", "/keys", Some(csrf), body)
}
