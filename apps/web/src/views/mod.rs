//! Leptos components for each page, rendered to HTML on the server. Every action is a
//! plain `<form method="post">`, so the dashboard works with JavaScript off.

pub mod keys;
pub mod layout;
pub mod login;
pub mod logs;
pub mod not_found;
pub mod overview;
pub mod proxy_keys;
pub mod usage;

use leptos::prelude::*;

/// The hidden CSRF field every mutating form carries.
pub fn csrf_field(csrf: &str) -> impl IntoView + use<> {
    let csrf = csrf.to_string();
    view! { <input type="hidden" name="csrf" value=csrf/> }
}

/// A one-button form posting to `action` (enable, delete, revoke…). With `confirm`, a
/// danger button whose form asks that question first (in the browser, with
/// JavaScript; without it the form posts as it is).
pub fn post_button(
    action: String,
    label: &'static str,
    csrf: &str,
    confirm: Option<&'static str>,
) -> AnyView {
    let class = if confirm.is_some() {
        "inline danger"
    } else {
        "inline"
    };
    view! {
        <form method="post" action=action class=class data-confirm=confirm>
            {csrf_field(csrf)}
            <button type="submit">{label}</button>
        </form>
    }
    .into_any()
}

/// Notice shown after a redirect, from a fixed set of codes (never echoed input).
pub fn notice(code: Option<&str>) -> Option<AnyView> {
    let text = match code? {
        "added" => "Keys added.",
        "enabled" => "Key enabled; its invalid mark and cooldowns were cleared.",
        "disabled" => "Key disabled.",
        "deleted" => "Key deleted.",
        "revoked" => "Proxy key revoked.",
        "updated" => "Proxy key saved; the proxy applies it within moments.",
        "proxy-key-deleted" => "Proxy key deleted; its log records stay.",
        "limits-set" => "Key limits saved; the proxy applies them within moments.",
        "passthrough-allowed" => "The proxy key may use the pass-through routes again.",
        "passthrough-denied" => {
            "The proxy key is kept off the pass-through routes: generation, embeddings and models only."
        }
        "none" => "Nothing to add: paste one key per line.",
        "created-shown" => {
            "The new proxy key's secret was shown once and is not kept: if it was not copied, revoke the key and create another."
        }
        "missing" => "No such key.",
        "checked-valid" => "Re-checked: upstream accepts the key.",
        "checked-invalid" => "Re-checked: upstream rejects the key; it is marked invalid.",
        "checked-rate_limited" => "Re-checked: the key is valid but rate-limited right now.",
        "checked-unreachable" => "Re-checked: upstream did not answer; nothing was changed.",
        "checked-pending" => "The proxy has not loaded this key yet; re-check it again in a moment.",
        "checked-refused" => "Re-checked: upstream refused the call for another reason; nothing was changed.",
        _ => return None,
    };
    Some(view! { <p class="notice">{text}</p> }.into_any())
}
