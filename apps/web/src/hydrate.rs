//! The browser bundle (`scripts/build-web.sh`, feature `hydrate`): Leptos components
//! mounted onto the server-rendered pages. Pages are complete without it; it only makes
//! cooldown times count down live.

use std::time::Duration;

use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::wasm_bindgen;

/// Called by the page's module script once the bundle is loaded.
#[wasm_bindgen]
pub fn hydrate() {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    let Ok(cells) = document.query_selector_all("[data-until]") else {
        return;
    };
    for i in 0..cells.length() {
        let Some(cell) = cells
            .item(i)
            .and_then(|n| n.dyn_into::<web_sys::HtmlElement>().ok())
        else {
            continue;
        };
        let data = cell.dataset();
        let Some(until) = data.get("until").and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        let label = data.get("label").unwrap_or_default();
        cell.set_inner_html("");
        leptos::mount::mount_to(cell, move || countdown(label, until)).forget();
    }
}

/// "model 1m 5s", ticking every second.
fn countdown(label: String, until_ms: f64) -> impl IntoView {
    let now = RwSignal::new(js_sys::Date::now());
    set_interval(move || now.set(js_sys::Date::now()), Duration::from_secs(1));
    move || {
        let left = ((until_ms - now.get()).max(0.0) / 1000.0) as u64;
        let text = match left {
            0..=59 => format!("{left}s"),
            60..=3599 => format!("{}m {}s", left / 60, left % 60),
            _ => format!("{}h {}m", left / 3600, (left / 60) % 60),
        };
        format!("{label} {text}")
    }
}
