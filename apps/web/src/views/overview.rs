//! Overview: totals and charts for the last hour/day/week/30 days or a custom range,
//! by outcome (the error rate split by class) or a series per model or upstream key;
//! top models and keys; keys that are cooling down or invalid right now.

use leptos::prelude::*;
use proxy_core::admin::{KeyRow, UsageCell};
use proxy_core::error_class::ErrorClass;

use crate::chart::{self, Series};
use crate::data::{PRESETS, Range, Split, SplitSeries, Window};
use crate::live::{TotalsCards, capitalized, usd};
use crate::timefmt;

pub struct Overview {
    pub range: Range,
    pub window: Window,
    pub split: Split,
    pub totals: UsageCell,
    /// Every bucket of the window, oldest first; with a split, the series summed
    /// (no percentiles: the series hold their own).
    pub buckets: Vec<UsageCell>,
    /// With a split per model or key: a series per group, busiest first, "other" last.
    pub series: Vec<SplitSeries>,
    /// (label, totals), busiest first.
    pub top_models: Vec<(String, UsageCell)>,
    pub top_keys: Vec<(String, UsageCell)>,
    pub troubled: Vec<KeyRow>,
    /// Upstream keys stored: with none, the page starts with what to do first.
    pub key_count: usize,
    pub now_ms: u64,
}

/// `range_error`: why a custom range asked for was refused (the page then shows the
/// last day).
pub fn page(csrf: &str, o: Overview, range_error: Option<&str>) -> String {
    let split_query = format!("&split={}", o.split.name());
    let ranges = PRESETS
        .into_iter()
        .map(|r| {
            let active = r == o.range;
            let href = format!("/?{}{split_query}", r.query());
            view! { <a href=href class=if active { "range active" } else { "range" } aria-current=active.then_some("page")>{r.label()}</a>" " }
        })
        .collect_view();
    let splits = Split::ALL
        .into_iter()
        .map(|s| {
            let active = s == o.split;
            let href = format!("/?{}&split={}", o.range.query(), s.name());
            view! { <a href=href class=if active { "range active" } else { "range" } aria-current=active.then_some("true")>{s.label()}</a>" " }
        })
        .collect_view();
    let (from, to) = match o.range {
        Range::Custom { from_ms, to_ms } => (timefmt::input_value(from_ms), timefmt::input_value(to_ms)),
        _ => (String::new(), String::new()),
    };
    let custom_active = matches!(o.range, Range::Custom { .. });
    let error =
        range_error.map(|e| view! { <p class="error" id="range-error">{format!("Custom range: {e}")}</p> });
    let live = section(&o);
    let onboarding = (o.key_count == 0).then(onboarding);
    let body = view! {
        <h1>"Overview"</h1>
        {onboarding}
        {error}
        <div class="ranges" id="ranges">{ranges}
            <form method="get" action="/" class=if custom_active { "inline custom-range active" } else { "inline custom-range" }>
                <input type="hidden" name="range" value="custom"/>
                <input type="hidden" name="split" value=o.split.name()/>
                <label>"From "<input type="datetime-local" name="from" value=from required=true/></label>" "
                <label>"to "<input type="datetime-local" name="to" value=to required=true/></label>" "
                <button type="submit">"Show"</button>
            </form>
            " (UTC)"
        </div>
        <p class="ranges" id="splits">"Charts: "{splits}</p>
        <div id="overview-live" data-query=format!("{}{split_query}", o.range.query()) inner_html=live></div>
    }
    .into_any();
    super::layout::document("Overview", "/", Some(csrf), body)
}

/// Everything on the overview that changes with time: the cards, the charts, the top
/// tables and the troubled keys, all from one read (`overview_data`), so they always
/// agree. The page renders it, and the bundle replaces it whole with a fresh one
/// from the `overview_section` server function.
pub fn section(o: &Overview) -> String {
    let labels: Vec<String> = o.window.bucket_starts().map(|at| o.window.label(at)).collect();
    let charts = match o.split {
        Split::Kind => kind_charts(&labels, &o.buckets),
        Split::Model | Split::Key => split_charts(&labels, &o.series, o.split),
    };
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

/// The colour of each error class's part of a requests bar.
fn class_color(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Blocked => "#d80",
        ErrorClass::NoKeyFree => "#a5c",
        ErrorClass::Client => "#58a",
        ErrorClass::Upstream => "#c33",
    }
}

/// One chart with its heading and legend.
fn chart_block(title: &str, svg: String, series: &[Series]) -> String {
    format!(
        "<h2>{}</h2>{svg}<div>{}</div>",
        chart::escape(title),
        chart::legend(series)
    )
}

/// Requests by outcome (answered, then each error class), tokens by kind, cost,
/// latency p50/p95 with the time to first byte, and the proxy's own time.
fn kind_charts(labels: &[String], cells: &[UsageCell]) -> String {
    let mut requests = vec![Series::of("ok", "#3a7", cells, |c| c.requests - c.errors)];
    for class in ErrorClass::ALL {
        let values = cells.iter().map(|c| c.error_classes().get(class)).collect();
        requests.push(Series::new(class.label(), class_color(class), values));
    }
    let tokens = chart::token_series(cells);
    let cost = [Series::of("cost", "#36c", cells, chart::micro_usd).dollars()];
    let latency = [
        Series::of("p50 latency", "#36c", cells, |c| c.latency_p50_ms).millis(),
        Series::of("p95 latency", "#d80", cells, |c| c.latency_p95_ms).millis(),
        Series::of("p50 time to first byte", "#3a7", cells, |c| c.ttfb_p50_ms).millis(),
    ];
    let overhead = [Series::of("p50 proxy overhead", "#a5c", cells, |c| c.overhead_p50_us).micros()];
    let answered: Vec<bool> = cells.iter().map(|b| b.requests > 0).collect();
    [
        chart_block(
            "Requests",
            chart::stacked_bars("requests", labels, &requests),
            &requests,
        ),
        chart_block("Tokens", chart::stacked_bars("tokens", labels, &tokens), &tokens),
        chart_block("Cost", chart::stacked_bars("cost", labels, &cost), &cost),
        chart_block(
            "Latency",
            chart::lines("latency", labels, &latency, &answered),
            &latency,
        ),
        chart_block(
            "The proxy's own time (overhead, without upstream)",
            chart::lines("overhead", labels, &overhead, &answered),
            &overhead,
        ),
    ]
    .concat()
}

/// A series per model or key: requests, errors (all, then each class the range has),
/// tokens and cost stacked; latency p50 and p95, time to first byte and the proxy's own
/// time as lines (not for "other", whose percentiles mean nothing).
fn split_charts(labels: &[String], series: &[SplitSeries], split: Split) -> String {
    let per = |value: &dyn Fn(&UsageCell) -> u64| -> Vec<Series> {
        series
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let color = if s.other {
                    chart::OTHER
                } else {
                    chart::PALETTE[i % chart::PALETTE.len()]
                };
                Series::new(s.label.clone(), color, s.buckets.iter().map(value).collect())
            })
            .collect()
    };
    let ranked: Vec<&SplitSeries> = series.iter().filter(|s| !s.other).collect();
    let present: Vec<bool> = (0..labels.len())
        .map(|i| {
            ranked
                .iter()
                .any(|s| s.buckets.get(i).is_some_and(|b| b.requests > 0))
        })
        .collect();
    let lines = |value: &dyn Fn(&UsageCell) -> u64, unit: fn(Series) -> Series| -> Vec<Series> {
        per(value)
            .into_iter()
            .zip(series)
            .filter(|(_, s)| !s.other)
            .map(|(l, _)| unit(l))
            .collect()
    };
    let requests = per(&|c| c.requests);
    let errors = per(&|c| c.errors);
    let tokens = per(&|c| c.total_tokens);
    let cost: Vec<Series> = per(&chart::micro_usd).into_iter().map(Series::dollars).collect();
    let latency = lines(&|c| c.latency_p50_ms, Series::millis);
    let latency_p95 = lines(&|c| c.latency_p95_ms, Series::millis);
    let ttfb = lines(&|c| c.ttfb_p50_ms, Series::millis);
    let overhead = lines(&|c| c.overhead_p50_us, Series::micros);
    if series.is_empty() {
        return "<p>No requests in this period.</p>".into();
    }
    let per_what = match split {
        Split::Key => "per upstream key",
        _ => "per model",
    };
    let title = |what: &str| format!("{what} {per_what}");
    // Errors by class, a chart each for the classes the range has.
    let class_charts: Vec<String> = ErrorClass::ALL
        .into_iter()
        .filter_map(|class| {
            let counts = per(&|c: &UsageCell| c.error_classes().get(class));
            counts.iter().any(|s| s.values.iter().any(|v| *v > 0)).then(|| {
                let name = format!("errors-{}", class.name());
                chart_block(
                    &title(&capitalized(class.label())),
                    chart::stacked_bars(&name, labels, &counts),
                    &counts,
                )
            })
        })
        .collect();
    [
        chart_block(
            &title("Requests"),
            chart::stacked_bars("requests", labels, &requests),
            &requests,
        ),
        chart_block(
            &title("Errors"),
            chart::stacked_bars("errors", labels, &errors),
            &errors,
        ),
        class_charts.concat(),
        chart_block(
            &title("Tokens"),
            chart::stacked_bars("tokens", labels, &tokens),
            &tokens,
        ),
        chart_block(&title("Cost"), chart::stacked_bars("cost", labels, &cost), &cost),
        chart_block(
            &title("Latency p50"),
            chart::lines("latency", labels, &latency, &present),
            &latency,
        ),
        chart_block(
            &title("Latency p95"),
            chart::lines("latency-p95", labels, &latency_p95, &present),
            &latency_p95,
        ),
        chart_block(
            &title("Time to first byte p50"),
            chart::lines("ttfb", labels, &ttfb, &present),
            &ttfb,
        ),
        chart_block(
            &title("Proxy overhead p50"),
            chart::lines("overhead", labels, &overhead, &present),
            &overhead,
        ),
    ]
    .concat()
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
            let classes = r.error_classes();
            let class_cells = ErrorClass::ALL
                .into_iter()
                .map(|c| view! { <td class="num" data-label=c.label()>{classes.get(c).to_string()}</td> })
                .collect_view();
            view! {
                <tr>
                    <td data-label=what>{label.clone()}</td>
                    <td class="num" data-label="Requests">{r.requests.to_string()}</td>
                    <td class="num" data-label="Errors">{r.errors.to_string()}</td>
                    {class_cells}
                    <td class="num" data-label="Tokens">{r.total_tokens.to_string()}</td>
                    <td class="num" data-label="Cost">{usd(r.cost_usd)}</td>
                    <td class="num" data-label="p50 ms">{r.latency_p50_ms.to_string()}</td>
                    <td class="num" data-label="p95 ms">{r.latency_p95_ms.to_string()}</td>
                    <td class="num" data-label="TTFB p50 ms">{r.ttfb_p50_ms.to_string()}</td>
                    <td class="num" data-label="Overhead p50 µs">{r.overhead_p50_us.to_string()}</td>
                </tr>
            }
        })
        .collect_view();
    let class_heads = ErrorClass::ALL
        .into_iter()
        .map(|c| view! { <th title=c.label()>{c.label()}</th> })
        .collect_view();
    view! {
        <table>
            <tr><th>{what}</th><th>"Requests"</th><th>"Errors"</th>{class_heads}<th>"Tokens"</th><th>"Cost"</th>
                <th>"p50 ms"</th><th>"p95 ms"</th><th>"TTFB p50 ms"</th><th title="The proxy's own time, without upstream">"Overhead p50 µs"</th></tr>
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
            view! { <tr><td data-label="Name">{k.name.clone()}</td><td data-label="Key">{k.masked.clone()}</td>{state}</tr> }
        })
        .collect_view();
    view! { <table><tr><th>"Name"</th><th>"Key"</th><th>"State"</th></tr>{rows}</table> }.into_any()
}
