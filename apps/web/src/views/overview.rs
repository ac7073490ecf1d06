//! Overview: totals and charts for the last hour/day/week, top models and keys, and
//! keys that are cooling down or invalid right now.

use leptos::prelude::*;
use proxy_core::admin::{KeyRow, UsageCell};

use crate::chart::{self, Series};
use crate::data::Range;
use crate::live::{TotalsCards, usd};
use crate::timefmt;

pub struct Overview {
    pub range: Range,
    pub totals: UsageCell,
    /// Every bucket of the range, oldest first.
    pub buckets: Vec<UsageCell>,
    /// (label, totals), busiest first.
    pub top_models: Vec<(String, UsageCell)>,
    pub top_keys: Vec<(String, UsageCell)>,
    pub troubled: Vec<KeyRow>,
    /// Upstream keys stored: with none, the page starts with what to do first.
    pub key_count: usize,
    pub now_ms: u64,
}

pub fn page(csrf: &str, o: Overview) -> String {
    let ranges = [Range::Hour, Range::Day, Range::Week, Range::Month]
        .into_iter()
        .map(|r| {
            let class = if r == o.range { "range active" } else { "range" };
            let current = (r == o.range).then_some("page");
            let href = format!("/?range={}", r.name());
            view! { <a href=href class=class aria-current=current>{r.label()}</a>" " }
        })
        .collect_view();
    let live = section(&o);
    let onboarding = (o.key_count == 0).then(onboarding);
    let body = view! {
        <h1>"Overview"</h1>
        {onboarding}
        <p class="ranges">{ranges}" (UTC)"</p>
        <div id="overview-live" data-range=o.range.name() inner_html=live></div>
    }
    .into_any();
    super::layout::document("Overview", "/", Some(csrf), body)
}

/// Everything on the overview that changes with time: the cards, the charts, the top
/// tables and the troubled keys, all from one read (`overview_data`), so they always
/// agree. The page renders it, and the bundle replaces it whole with a fresh one
/// from the `overview_section` server function.
pub fn section(o: &Overview) -> String {
    let labels: Vec<String> = o
        .buckets
        .iter()
        .map(|b| match o.range {
            Range::Hour | Range::Day => timefmt::date_time(b.bucket_start_ms)[11..16].to_string(),
            Range::Week => timefmt::date_time(b.bucket_start_ms)[5..13].to_string(),
            Range::Month => timefmt::date_time(b.bucket_start_ms)[5..10].to_string(),
        })
        .collect();
    let cells = &o.buckets;
    let requests = [
        Series::of("ok", "#3a7", cells, |c| c.requests - c.errors),
        Series::of("errors", "#c33", cells, |c| c.errors),
    ];
    let tokens = chart::token_series(cells);
    let latency = [
        Series::of("p50 latency ms", "#36c", cells, |c| c.latency_p50_ms),
        Series::of("p95 latency ms", "#d80", cells, |c| c.latency_p95_ms),
    ];
    let answered: Vec<bool> = o.buckets.iter().map(|b| b.requests > 0).collect();
    let charts = format!(
        "<h2>Requests</h2>{}<div>{}</div><h2>Tokens</h2>{}<div>{}</div><h2>Latency</h2>{}<div>{}</div>",
        chart::stacked_bars("requests", &labels, &requests),
        chart::legend(&requests),
        chart::stacked_bars("tokens", &labels, &tokens),
        chart::legend(&tokens),
        chart::lines("latency", &labels, &latency, &answered),
        chart::legend(&latency),
    );
    let troubled = troubled_table(&o.troubled, o.now_ms);
    view! {
        <div class="cards" id="totals"><TotalsCards totals=o.totals.clone()/></div>
        <div inner_html=charts></div>
        <h2>"Top models"</h2>
        <div id="top-models">{usage_table(&o.top_models, "Model")}</div>
        <h2>"Top keys"</h2>
        <div id="top-keys">{usage_table(&o.top_keys, "Key")}</div>
        <h2>"Keys cooling down or invalid"</h2>
        {troubled}
    }
    .to_html()
}

/// What a new operator does first: the proxy answers nothing until it has a key.
fn onboarding() -> AnyView {
    view! {
        <section class="notice" id="get-started">
            <h2>"Get started"</h2>
            <ol>
                <li><a href="/keys">"Add your Gemini API keys"</a>" (one per line; a pool of several fails over on 429s)."</li>
                <li><a href="/proxy-keys">"Create a proxy key"</a>" for each app; its secret is shown once."</li>
                <li>"Point the app at this server with the proxy key instead of a Gemini key:"
                    <pre>"curl -H 'x-goog-api-key: gp-…' -H 'content-type: application/json' \
  -d '{"contents":[{"parts":[{"text":"hi"}]}]}' \
  http://THIS-HOST/v1beta/models/gemini-2.5-flash:generateContent"</pre>
                </li>
            </ol>
        </section>
    }
    .into_any()
}

fn usage_table(rows: &[(String, UsageCell)], what: &'static str) -> AnyView {
    if rows.is_empty() {
        return view! { <p>"No requests in this period."</p> }.into_any();
    }
    let rows = rows
        .iter()
        .map(|(label, r)| {
            view! {
                <tr>
                    <td>{label.clone()}</td>
                    <td class="num">{r.requests.to_string()}</td>
                    <td class="num">{r.errors.to_string()}</td>
                    <td class="num">{r.total_tokens.to_string()}</td>
                    <td class="num">{usd(r.cost_usd)}</td>
                    <td class="num">{r.latency_p50_ms.to_string()}</td>
                    <td class="num">{r.latency_p95_ms.to_string()}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table>
            <tr><th>{what}</th><th>"Requests"</th><th>"Errors"</th><th>"Tokens"</th><th>"Cost"</th><th>"p50 ms"</th><th>"p95 ms"</th></tr>
            {rows}
        </table>
    }
    .into_any()
}

fn troubled_table(keys: &[KeyRow], now_ms: u64) -> AnyView {
    if keys.is_empty() {
        return view! { <p id="no-troubled">"All keys are usable."</p> }.into_any();
    }
    let rows = keys
        .iter()
        .map(|k| {
            let state = super::keys::status_cell(k, now_ms);
            view! { <tr><td>{k.name.clone()}</td><td>{k.masked.clone()}</td>{state}</tr> }
        })
        .collect_view();
    view! { <table><tr><th>"Name"</th><th>"Key"</th><th>"State"</th></tr>{rows}</table> }.into_any()
}
