//! Components both halves render: the server into pages, the browser bundle into the
//! same places when it refreshes them from the server functions in `api`. One
//! definition, so a live update looks exactly like a reload.

use leptos::prelude::*;
use proxy_core::admin::{KeyRow, UsageCell};

use crate::timefmt;

/// "disabled", "invalid: …", "cooling: model 3m 2s", or "ok".
pub fn state_text(k: &KeyRow, now_ms: u64) -> String {
    if !k.enabled {
        return "disabled".into();
    }
    if let Some(reason) = &k.invalid_reason {
        return format!("invalid: {reason}");
    }
    let cooling: Vec<String> = k
        .cooldowns
        .iter()
        .filter(|(_, until)| *until > now_ms)
        .map(|(model, until)| format!("{model} {}", timefmt::duration(until - now_ms)))
        .collect();
    if cooling.is_empty() {
        "ok".into()
    } else {
        format!("cooling: {}", cooling.join(", "))
    }
}

/// The CSS class for a state: green, amber or red.
pub fn state_class(text: &str) -> &'static str {
    match text {
        "ok" => "status-ok",
        s if s.starts_with("cooling") => "status-warn",
        _ => "status-bad",
    }
}

/// A key's status, with cooldowns counted down from `now_ms`.
#[component]
pub fn KeyStatus(#[prop(into)] row: Signal<KeyRow>, #[prop(into)] now_ms: Signal<u64>) -> impl IntoView {
    let text = move || row.with(|r| state_text(r, now_ms.get()));
    view! { <span class=move || state_class(&text())>{text}</span> }
}

/// The overview's headline numbers.
#[component]
pub fn TotalsCards(#[prop(into)] totals: Signal<UsageCell>) -> impl IntoView {
    let cards = move || {
        let t = totals.get();
        [
            ("Requests", t.requests.to_string()),
            ("Error rate", format!("{:.1}%", t.error_rate_percent())),
            ("Prompt tokens", t.prompt_tokens.to_string()),
            ("Output tokens", t.candidates_tokens.to_string()),
            ("Thinking tokens", t.thoughts_tokens.to_string()),
            ("Cached tokens", t.cached_tokens.to_string()),
            ("Latency p50", format!("{} ms", t.latency_p50_ms)),
            ("Latency p95", format!("{} ms", t.latency_p95_ms)),
        ]
        .into_iter()
        .map(|(label, value)| view! { <div class="card">{label}<b>{value}</b></div> })
        .collect_view()
    };
    view! { {cards} }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(enabled: bool, invalid: Option<&str>, cooldowns: Vec<(&str, u64)>) -> KeyRow {
        KeyRow {
            id: 1,
            name: "k".into(),
            masked: "AIza…0001".into(),
            enabled,
            invalid_reason: invalid.map(Into::into),
            cooldowns: cooldowns.into_iter().map(|(m, u)| (m.to_string(), u)).collect(),
            created_at_ms: 0,
            last_used_ms: None,
            limits: Default::default(),
            off_models: Vec::new(),
        }
    }

    #[test]
    fn states_read_as_operators_expect() {
        assert_eq!(state_text(&key(false, Some("x"), vec![]), 0), "disabled");
        assert_eq!(
            state_text(&key(true, Some("API_KEY_INVALID"), vec![]), 0),
            "invalid: API_KEY_INVALID"
        );
        let cooling = key(true, None, vec![("flash", 65_000), ("pro", 500)]);
        assert_eq!(state_text(&cooling, 1_000), "cooling: flash 1m 4s");
        assert_eq!(
            state_text(&cooling, 70_000),
            "ok",
            "expired cooldowns are not shown"
        );
        assert_eq!(state_class("cooling: flash 1m 4s"), "status-warn");
        assert_eq!(state_class("invalid: x"), "status-bad");
    }

    #[test]
    fn components_render_on_the_server() {
        let owner = Owner::new();
        owner.set();
        let html =
            view! { <KeyStatus row=key(true, None, vec![("flash", 3_000)]) now_ms=1_000u64/> }.to_html();
        assert!(
            html.contains("status-warn") && html.contains("cooling: flash 2s"),
            "{html}"
        );
        let totals = UsageCell {
            requests: 4,
            errors: 1,
            latency_p95_ms: 90,
            ..UsageCell::default()
        };
        let html = view! { <TotalsCards totals=totals/> }.to_html();
        assert!(html.contains("25.0%") && html.contains("90 ms"), "{html}");
    }
}
