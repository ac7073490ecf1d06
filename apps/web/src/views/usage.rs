//! Usage per day × model × key, as a table and a daily chart, with a CSV download.

use leptos::prelude::*;

use crate::chart::{self, Series};
use crate::data::{Totals, UsageKey};

pub fn page(csrf: &str, days: u32, rows: &[(UsageKey, Totals)], daily: &[(String, Totals)]) -> String {
    let choices = [1u32, 7, 30, 90]
        .into_iter()
        .map(|d| {
            let class = if d == days { "active" } else { "" };
            let href = format!("/usage?days={d}");
            view! { <a href=href class=class>{format!("{d} days ")}</a> }
        })
        .collect_view();
    let labels: Vec<String> = daily.iter().map(|(day, _)| day[5..].to_string()).collect();
    let col = |f: fn(&Totals) -> u64| daily.iter().map(|(_, t)| f(t)).collect::<Vec<u64>>();
    let series = [
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
    ];
    let svg = format!(
        "{}<div>{}</div>",
        chart::stacked_bars("tokens per day", &labels, &series),
        chart::legend(&series)
    );
    let table_rows = rows
        .iter()
        .map(|(k, t)| {
            view! {
                <tr>
                    <td>{k.day.clone()}</td>
                    <td>{k.model.clone()}</td>
                    <td>{k.key.clone()}</td>
                    <td class="num">{t.requests.to_string()}</td>
                    <td class="num">{t.errors.to_string()}</td>
                    <td class="num">{t.prompt.to_string()}</td>
                    <td class="num">{t.output.to_string()}</td>
                    <td class="num">{t.thinking.to_string()}</td>
                    <td class="num">{t.cached.to_string()}</td>
                    <td class="num">{t.total.to_string()}</td>
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
                <th>"Prompt"</th><th>"Output"</th><th>"Thinking"</th><th>"Cached"</th><th>"Total"</th></tr>
            {table_rows}
        </table>
    }
    .into_any();
    super::layout::document("Usage", "/usage", Some(csrf), body)
}

/// The same table as CSV; text cells are quoted so commas and quotes survive.
pub fn csv(rows: &[(UsageKey, Totals)]) -> String {
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
        "day,model,key,requests,errors,prompt_tokens,output_tokens,thinking_tokens,cached_tokens,total_tokens\n",
    );
    for (k, t) in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            k.day,
            quote(&k.model),
            quote(&k.key),
            t.requests,
            t.errors,
            t.prompt,
            t.output,
            t.thinking,
            t.cached,
            t.total
        ));
    }
    out
}
