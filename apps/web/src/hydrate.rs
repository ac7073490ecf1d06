//! The browser bundle (`scripts/build-web.sh`, feature `hydrate`). Pages are complete
//! without it; with it, the parts that change on their own stay current: key status
//! cells (cooldowns count down every second, states refresh from the `key_rows` server
//! function, with each key's Enable/Disable button) and the overview (cards, charts and
//! tables replaced together from `overview_section`). The key parts are the same `live`
//! components the server rendered, mounted in place once fresh data arrives.

use std::collections::HashMap;
use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use proxy_core::admin::KeyRow;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::wasm_bindgen;

use crate::api::{key_rows, overview_section};
use crate::live::{KeyStatus, KeyToggle};

const KEYS_EVERY: Duration = Duration::from_secs(5);
const OVERVIEW_EVERY: Duration = Duration::from_secs(10);

/// Called by the page's module script once the bundle is loaded.
#[wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Already running is fine (a second call of this function).
    let _ = any_spawner::Executor::init_wasm_bindgen();
    let cells = elements("[data-live-key]");
    if !cells.is_empty() {
        spawn_local(live_keys(cells, elements("[data-live-toggle]")));
    }
    if let Some(overview) = elements("#overview-live[data-query]").into_iter().next() {
        live_overview(overview);
    }
}

fn elements(selector: &str) -> Vec<web_sys::HtmlElement> {
    let Some(found) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.query_selector_all(selector).ok())
    else {
        return Vec::new();
    };
    (0..found.length())
        .filter_map(|i| found.item(i))
        .filter_map(|node| node.dyn_into::<web_sys::HtmlElement>().ok())
        .collect()
}

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

async fn live_keys(cells: Vec<web_sys::HtmlElement>, toggles: Vec<web_sys::HtmlElement>) {
    let Ok(first) = key_rows().await else {
        return; // Logged out or the store is down: the rendered cells stay as they are.
    };
    let rows = RwSignal::new(by_id(first));
    let now = RwSignal::new(now_ms());
    set_interval(move || now.set(now_ms()), Duration::from_secs(1));
    set_interval(
        move || {
            spawn_local(async move {
                if let Ok(fresh) = key_rows().await {
                    // Merged, not replaced: a key deleted meanwhile keeps its last known
                    // state until the page reloads.
                    rows.update(|known| known.extend(by_id(fresh)));
                }
            })
        },
        KEYS_EVERY,
    );
    for cell in cells {
        let Some(id) = cell.dataset().get("liveKey").and_then(|v| v.parse::<i64>().ok()) else {
            continue;
        };
        let Some(initial) = rows.with_untracked(|m| m.get(&id).cloned()) else {
            continue;
        };
        // Rows are only ever added or replaced, so the key's stays there.
        let row = Signal::derive(move || {
            rows.with(|m| m.get(&id).cloned())
                .unwrap_or_else(|| initial.clone())
        });
        cell.set_inner_html("");
        leptos::mount::mount_to(cell, move || view! { <KeyStatus row=row now_ms=now/> }).forget();
    }
    for cell in toggles {
        let dataset = cell.dataset();
        let (Some(id), Some(csrf)) = (
            dataset.get("liveToggle").and_then(|v| v.parse::<i64>().ok()),
            dataset.get("csrf"),
        ) else {
            continue;
        };
        let Some(initial) = rows.with_untracked(|m| m.get(&id).map(|r| r.enabled)) else {
            continue;
        };
        let enabled = Signal::derive(move || rows.with(|m| m.get(&id).map_or(initial, |r| r.enabled)));
        cell.set_inner_html("");
        leptos::mount::mount_to(
            cell,
            move || view! { <KeyToggle id=id enabled=enabled csrf=csrf.clone()/> },
        )
        .forget();
    }
}

fn by_id(rows: Vec<KeyRow>) -> HashMap<i64, KeyRow> {
    rows.into_iter().map(|r| (r.id, r)).collect()
}

/// Replaces the overview's changing part whole, every few seconds: cards, charts and
/// tables come from one server read, so they never disagree.
fn live_overview(element: web_sys::HtmlElement) {
    let query = element
        .dataset()
        .get("query")
        .unwrap_or_else(|| "range=day".into());
    set_interval(
        move || {
            let (query, element) = (query.clone(), element.clone());
            spawn_local(async move {
                // Logged out or the store is down: what is shown stays.
                if let Ok(fresh) = overview_section(query).await {
                    element.set_inner_html(&fresh);
                }
            })
        },
        OVERVIEW_EVERY,
    );
}
