//! Components both halves render: the server into pages, the browser bundle into the
//! same places when it refreshes them from the server functions in `api`. One
//! definition, so a live update looks exactly like a reload.

use leptos::prelude::*;
use proxy_core::admin::{KeyRow, UsageCell, percent_of};
use proxy_core::error_class::ErrorClass;

use crate::timefmt;

/// "disabled", "invalid: …", "cooling: model 3m 2s", "off today: model 5h 3m" (the
/// model's quota is 0 for this key until midnight Pacific), both, or "ok".
pub fn state_text(k: &KeyRow, now_ms: u64) -> String {
    if !k.enabled {
        return "disabled".into();
    }
    if let Some(reason) = &k.invalid_reason {
        return format!("invalid: {reason}");
    }
    let (mut cooling, mut off) = (Vec::new(), Vec::new());
    for (model, until) in k.cooldowns.iter().filter(|(_, until)| *until > now_ms) {
        let text = format!("{model} {}", timefmt::duration(until - now_ms));
        if k.off_models.contains(model) {
            off.push(text);
        } else {
            cooling.push(text);
        }
    }
    let mut parts = Vec::new();
    if !cooling.is_empty() {
        parts.push(format!("cooling: {}", cooling.join(", ")));
    }
    if !off.is_empty() {
        parts.push(format!("off today: {}", off.join(", ")));
    }
    if parts.is_empty() {
        "ok".into()
    } else {
        parts.join("; ")
    }
}

/// The CSS class for a state: green, amber or red.
pub fn state_class(text: &str) -> &'static str {
    match text {
        "ok" => "status-ok",
        s if s.starts_with("cooling") || s.starts_with("off today") => "status-warn",
        _ => "status-bad",
    }
}

/// USD as the dashboard shows it: at least two decimals, up to six (`$0.25`,
/// `$0.000123`); a cost above 0 that rounds to nothing says so (`<$0.000001`).
/// Worded by the core, as the CLI words it.
pub use proxy_core::admin::usd_text as usd;

/// A key's status, with cooldowns counted down from `now_ms`.
#[component]
pub fn KeyStatus(#[prop(into)] row: Signal<KeyRow>, #[prop(into)] now_ms: Signal<u64>) -> impl IntoView {
    let text = move || row.with(|r| state_text(r, now_ms.get()));
    view! { <span class=move || state_class(&text())>{text}</span> }
}

/// A key's Enable or Disable button, whichever its state calls for: a live page
/// never offers "Disable" next to a key disabled elsewhere.
#[component]
pub fn KeyToggle(id: i64, #[prop(into)] enabled: Signal<bool>, csrf: String) -> impl IntoView {
    let action = move || match enabled.get() {
        true => format!("/keys/{id}/disable"),
        false => format!("/keys/{id}/enable"),
    };
    let label = move || if enabled.get() { "Disable" } else { "Enable" };
    view! {
        <form method="post" action=action class="inline">
            <input type="hidden" name="csrf" value=csrf/>
            <button type="submit">{label}</button>
        </form>
    }
}

/// "no key free" → "No key free", for a card's title.
pub fn capitalized(label: &str) -> String {
    let mut chars = label.chars();
    chars
        .next()
        .map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

/// The overview's headline numbers.
#[component]
pub fn TotalsCards(#[prop(into)] totals: Signal<UsageCell>) -> impl IntoView {
    let cards = move || {
        let t = totals.get();
        let classes = t.error_classes();
        let class_card = |class: ErrorClass| {
            let n = classes.get(class);
            (
                capitalized(class.label()),
                format!("{n} · {:.1}%", percent_of(n, t.requests)),
            )
        };
        [
            ("Requests".to_string(), t.requests.to_string()),
            (
                "Error rate".to_string(),
                format!("{:.1}%", t.error_rate_percent()),
            ),
            class_card(ErrorClass::Blocked),
            class_card(ErrorClass::NoKeyFree),
            class_card(ErrorClass::Client),
            class_card(ErrorClass::Upstream),
            ("Prompt tokens".to_string(), t.prompt_tokens.to_string()),
            ("Output tokens".to_string(), t.candidates_tokens.to_string()),
            ("Thinking tokens".to_string(), t.thoughts_tokens.to_string()),
            ("Cached tokens".to_string(), t.cached_tokens.to_string()),
            ("Cost".to_string(), usd(t.cost_usd)),
            ("Latency p50".to_string(), format!("{} ms", t.latency_p50_ms)),
            ("Latency p95".to_string(), format!("{} ms", t.latency_p95_ms)),
            (
                "Time to first byte p50".to_string(),
                format!("{} ms", t.ttfb_p50_ms),
            ),
            (
                "Proxy overhead p50".to_string(),
                format!("{} µs", t.overhead_p50_us),
            ),
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
        let mut off = key(true, None, vec![("flash", 65_000), ("pro", 3_601_000)]);
        off.off_models = vec!["pro".into()];
        assert_eq!(
            state_text(&off, 1_000),
            "cooling: flash 1m 4s; off today: pro 1h 0m"
        );
        off.cooldowns.remove(0);
        assert_eq!(state_text(&off, 1_000), "off today: pro 1h 0m");
        assert_eq!(state_class(&state_text(&off, 1_000)), "status-warn");
    }

    #[test]
    fn costs_read_as_dollars() {
        assert_eq!(usd(0.0), "$0.00");
        assert_eq!(usd(2.5), "$2.50");
        assert_eq!(usd(0.25), "$0.25");
        assert_eq!(usd(0.000_123), "$0.000123");
        assert_eq!(usd(12.345_678_9), "$12.345679");
        assert_eq!(usd(0.000_000_01), "<$0.000001");
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
            error_kinds: [("all_keys_cooling".to_string(), 1)].into(),
            latency_p95_ms: 90,
            cost_usd: 0.0125,
            ..UsageCell::default()
        };
        let html = view! { <TotalsCards totals=totals/> }.to_html();
        assert!(
            html.contains("25.0%") && html.contains("90 ms") && html.contains("$0.0125"),
            "{html}"
        );
        assert!(
            html.contains("No key free<b>1 · 25.0%</b>") && html.contains("Client mistakes<b>0 · 0.0%</b>"),
            "{html}"
        );
    }
}
