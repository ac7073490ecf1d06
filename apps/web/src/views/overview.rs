//! Overview: totals and charts for the last hour/day/week, top models and keys, and
//! keys that are cooling down or invalid right now.

use leptos::prelude::*;
use proxy_core::admin::{KeyRow, UsageRow};

use crate::chart::{self, Series};
use crate::data::{Range, Totals};
use crate::timefmt;

pub struct Overview {
    pub range: Range,
    pub totals: Totals,
    /// (bucket start, totals), oldest first.
    pub buckets: Vec<(u64, Totals)>,
    pub top_models: Vec<UsageRow>,
    pub top_keys: Vec<UsageRow>,
    pub troubled: Vec<KeyRow>,
    pub now_ms: u64,
    pub truncated: bool,
}

pub fn page(csrf: &str, o: Overview) -> String {
    let ranges = [Range::Hour, Range::Day, Range::Week]
        .into_iter()
        .map(|r| {
            let class = if r == o.range { "active" } else { "" };
            let href = format!("/?range={}", r.name());
            view! { <a href=href class=class>{format!("Last {} ", r.name())}</a> }
        })
        .collect_view();
    let labels: Vec<String> = o
        .buckets
        .iter()
        .map(|(start, _)| match o.range {
            Range::Hour | Range::Day => timefmt::date_time(*start)[11..16].to_string(),
            Range::Week => timefmt::date_time(*start)[5..13].to_string(),
        })
        .collect();
    let col = |f: fn(&Totals) -> u64| o.buckets.iter().map(|(_, t)| f(t)).collect::<Vec<u64>>();
    let requests = [
        Series {
            name: "ok",
            color: "#3a7",
            values: col(|t| t.requests - t.errors),
        },
        Series {
            name: "errors",
            color: "#c33",
            values: col(|t| t.errors),
        },
    ];
    let tokens = [
        Series {
            name: "prompt",
            color: "#36c",
            values: col(|t| t.prompt),
        },
        Series {
            name: "output",
            color: "#3a7",
            values: col(|t| t.output),
        },
        Series {
            name: "thinking",
            color: "#a5c",
            values: col(|t| t.thinking),
        },
        Series {
            name: "cached",
            color: "#aaa",
            values: col(|t| t.cached),
        },
    ];
    let latency = [Series {
        name: "avg latency ms",
        color: "#d80",
        values: col(Totals::avg_latency),
    }];
    let charts = format!(
        "<h2>Requests</h2>{}<div>{}</div><h2>Tokens</h2>{}<div>{}</div><h2>Latency</h2>{}<div>{}</div>",
        chart::stacked_bars("requests", &labels, &requests),
        chart::legend(&requests),
        chart::stacked_bars("tokens", &labels, &tokens),
        chart::legend(&tokens),
        chart::stacked_bars("latency", &labels, &latency),
        chart::legend(&latency),
    );
    let t = &o.totals;
    let cards = [
        ("Requests", t.requests.to_string()),
        ("Error rate", format!("{:.1}%", t.error_rate_percent())),
        ("Prompt tokens", t.prompt.to_string()),
        ("Output tokens", t.output.to_string()),
        ("Thinking tokens", t.thinking.to_string()),
        ("Cached tokens", t.cached.to_string()),
        ("Avg latency", format!("{} ms", t.avg_latency())),
    ]
    .into_iter()
    .map(|(label, value)| view! { <div class="card">{label}<b>{value}</b></div> })
    .collect_view();
    let truncated = o
        .truncated
        .then(|| view! { <p class="error">"Only the newest records were charted (too many to read)."</p> });
    let troubled = troubled_table(&o.troubled, o.now_ms);
    let body = view! {
        <h1>"Overview"</h1>
        <p>{ranges}</p>
        {truncated}
        <div class="cards" id="totals">{cards}</div>
        <div inner_html=charts></div>
        <h2>"Top models"</h2>
        {usage_table(&o.top_models, "Model")}
        <h2>"Top keys"</h2>
        {usage_table(&o.top_keys, "Key")}
        <h2>"Keys cooling down or invalid"</h2>
        {troubled}
    }
    .into_any();
    super::layout::document("Overview", "/", Some(csrf), body)
}

fn usage_table(rows: &[UsageRow], what: &'static str) -> AnyView {
    if rows.is_empty() {
        return view! { <p>"No requests in this period."</p> }.into_any();
    }
    let rows = rows
        .iter()
        .map(|r| {
            view! {
                <tr>
                    <td>{r.group.clone()}</td>
                    <td class="num">{r.requests.to_string()}</td>
                    <td class="num">{r.errors.to_string()}</td>
                    <td class="num">{r.total_tokens.to_string()}</td>
                    <td class="num">{r.avg_latency_ms.to_string()}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table>
            <tr><th>{what}</th><th>"Requests"</th><th>"Errors"</th><th>"Tokens"</th><th>"Avg ms"</th></tr>
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
            let state = super::keys::state_view(k, now_ms);
            view! { <tr><td>{k.name.clone()}</td><td>{k.masked.clone()}</td><td>{state}</td></tr> }
        })
        .collect_view();
    view! { <table><tr><th>"Name"</th><th>"Key"</th><th>"State"</th></tr>{rows}</table> }.into_any()
}
