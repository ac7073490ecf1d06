//! Usage per day × model × key, as a table and a daily chart, with a CSV download.

use leptos::prelude::*;

use crate::chart;
use proxy_core::admin::UsageCell;

use crate::data::UsageLine;
use crate::live::usd;
use crate::timefmt;

/// `daily` holds every day of the range, oldest first.
pub fn page(csrf: &str, days: u32, rows: &[UsageLine], daily: &[UsageCell]) -> String {
    let choices = [1u32, 7, 30, 90]
        .into_iter()
        .map(|d| {
            let class = if d == days { "active" } else { "" };
            let href = format!("/usage?days={d}");
            let label = if d == 1 {
                "1 day ".to_string()
            } else {
                format!("{d} days ")
            };
            view! { <a href=href class=class>{label}</a> }
        })
        .collect_view();
    let labels: Vec<String> = daily
        .iter()
        .map(|d| timefmt::date(d.bucket_start_ms)[5..].to_string())
        .collect();
    let series = chart::token_series(daily);
    let svg = format!(
        "{}<div>{}</div>",
        chart::stacked_bars("tokens per day", &labels, &series),
        chart::legend(&series)
    );
    let table_rows = rows
        .iter()
        .map(|line| {
            let t = &line.cell;
            view! {
                <tr>
                    <td data-label="Day (UTC)">{line.day.clone()}</td>
                    <td data-label="Model">{line.model.clone()}</td>
                    <td data-label="Key">{line.key.clone()}</td>
                    <td class="num" data-label="Requests">{t.requests.to_string()}</td>
                    <td class="num" data-label="Errors">{t.errors.to_string()}</td>
                    <td class="num" data-label="Prompt">{t.prompt_tokens.to_string()}</td>
                    <td class="num" data-label="Output">{t.candidates_tokens.to_string()}</td>
                    <td class="num" data-label="Thinking">{t.thoughts_tokens.to_string()}</td>
                    <td class="num" data-label="Cached">{t.cached_tokens.to_string()}</td>
                    <td class="num" data-label="Total">{t.total_tokens.to_string()}</td>
                    <td class="num" data-label="Cost">{usd(t.cost_usd)}</td>
                    <td class="num" data-label="p50 ms">{t.latency_p50_ms.to_string()}</td>
                    <td class="num" data-label="p95 ms">{t.latency_p95_ms.to_string()}</td>
                </tr>
            }
        })
        .collect_view();
    let csv = format!("/usage.csv?days={days}");
    let body = view! {
        <h1>"Usage"</h1>
        <p>{choices}" · "<a href=csv id="csv">"Download CSV"</a></p>
        <div inner_html=svg></div>
        <table id="usage">
            <tr><th>"Day (UTC)"</th><th>"Model"</th><th>"Key"</th><th>"Requests"</th><th>"Errors"</th>
                <th>"Prompt"</th><th>"Output"</th><th>"Thinking"</th><th>"Cached"</th><th>"Total"</th>
                <th>"Cost"</th><th>"p50 ms"</th><th>"p95 ms"</th></tr>
            {table_rows}
        </table>
    }
    .into_any();
    super::layout::document("Usage", "/usage", Some(csrf), body)
}

/// The same table as CSV; text cells are quoted so commas and quotes survive.
pub fn csv(rows: &[UsageLine]) -> String {
    // A leading = + - @ would make spreadsheets run the cell as a formula.
    let quote = |s: &str| {
        let guard = if s.starts_with(['=', '+', '-', '@']) {
            "'"
        } else {
            ""
        };
        format!("\"{guard}{}\"", s.replace('"', "\"\""))
    };
    let mut out = String::from(
        "day,model,key,requests,errors,prompt_tokens,output_tokens,thinking_tokens,cached_tokens,total_tokens,\
         latency_p50_ms,latency_p95_ms,cost_usd\n",
    );
    for line in rows {
        let t = &line.cell;
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            line.day,
            quote(&line.model),
            quote(&line.key),
            t.requests,
            t.errors,
            t.prompt_tokens,
            t.candidates_tokens,
            t.thoughts_tokens,
            t.cached_tokens,
            t.total_tokens,
            t.latency_p50_ms,
            t.latency_p95_ms,
            csv_usd(t.cost_usd)
        ));
    }
    out
}

/// USD to the nano-dollar the stores add in, without trailing zeros (`0.0000062`, `0`).
fn csv_usd(amount: f64) -> String {
    let text = format!("{amount:.9}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}
