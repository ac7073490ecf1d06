//! Request logs: filters, newest first, paginated; and one record with every field.
//! Records never hold an upstream key: only key ids, and error text already scrubbed.

use std::collections::HashMap;

use leptos::prelude::*;
use proxy_core::admin::{KeyRow, ProxyKeyRow};
use proxy_core::keys::KeyId;
use proxy_core::log::LogRecord;

use crate::data::key_label;
use crate::live::usd;
use crate::log_filter::LogFilters;
use crate::timefmt;

pub struct LogsPage {
    pub filters: LogFilters,
    pub records: Vec<LogRecord>,
    pub has_next: bool,
    pub keys: Vec<KeyRow>,
    pub proxy_keys: Vec<ProxyKeyRow>,
}

pub fn page(csrf: &str, p: LogsPage) -> String {
    let f = &p.filters;
    let names: HashMap<KeyId, String> = p.keys.iter().map(|k| (k.id, k.name.clone())).collect();
    let proxy_names: HashMap<i64, String> = p.proxy_keys.iter().map(|k| (k.id, k.name.clone())).collect();
    let key_options = p
        .keys
        .iter()
        .map(|k| {
            let value = k.id.to_string();
            let selected = value == f.key;
            view! { <option value=value selected=selected>{key_label(Some(k.id), &names)}</option> }
        })
        .collect_view();
    let proxy_options = p
        .proxy_keys
        .iter()
        .map(|k| {
            let value = k.id.to_string();
            let selected = value == f.proxy_key;
            view! { <option value=value selected=selected>{format!("{} (#{})", k.name, k.id)}</option> }
        })
        .collect_view();
    let stream_options = [("", "any"), ("yes", "streamed"), ("no", "not streamed")]
        .into_iter()
        .map(|(value, label)| {
            let selected = value == f.stream;
            view! { <option value=value selected=selected>{label}</option> }
        })
        .collect_view();
    let rows = p
        .records
        .iter()
        .map(|r| {
            // The filters ride along, so the detail's way back keeps them.
            let href = format!(
                "/logs/{}?at={}&{}",
                crate::log_filter::encode(&r.id),
                r.started_at_ms,
                f.query_string(f.page())
            );
            let proxy = r
                .proxy_key_id
                .map(|id| {
                    proxy_names
                        .get(&id)
                        .map_or_else(|| format!("#{id}"), |n| format!("{n} (#{id})"))
                })
                .unwrap_or_else(|| "-".into());
            let tokens = r.total_tokens.map_or_else(|| "-".into(), |t| t.to_string());
            let cost = r.cost_usd.map_or_else(|| "-".into(), usd);
            view! {
                <tr>
                    <td data-label="Started (UTC)"><a href=href>{timefmt::date_time(r.started_at_ms)}</a></td>
                    <td data-label="Model">{r.model.clone().unwrap_or_default()}</td>
                    <td class="num" data-label="Status">{r.status.to_string()}</td>
                    <td data-label="Stream">{if r.stream { "yes" } else { "no" }}</td>
                    <td data-label="Key">{key_label(r.answered_key_id, &names)}</td>
                    <td data-label="Proxy key">{proxy}</td>
                    <td class="num" data-label="Attempts">{r.attempts.to_string()}</td>
                    <td class="num" data-label="Tokens">{tokens}</td>
                    <td class="num" data-label="Cost">{cost}</td>
                    <td class="num" data-label="ms">{r.latency_ms.to_string()}</td>
                    <td data-label="Error">{r.error_kind.clone().unwrap_or_default()}</td>
                </tr>
            }
        })
        .collect_view();
    let page_no = f.page();
    let prev = (page_no > 1).then(|| {
        let href = f.link(page_no - 1);
        view! { <a href=href rel="prev">"← Newer"</a> }
    });
    let next = p.has_next.then(|| {
        let href = f.link(page_no + 1);
        view! { <a href=href rel="next">"Older →"</a> }
    });
    let body = view! {
        <h1>"Logs"</h1>
        <form method="get" action="/logs" class="filters">
            <label>"From (UTC)"<input type="datetime-local" name="from" value=f.from.clone()/></label>
            <label>"To (UTC)"<input type="datetime-local" name="to" value=f.to.clone()/></label>
            <label>"Upstream key"<select name="key"><option value="">"any"</option>{key_options}</select></label>
            <label>"Proxy key"<select name="proxy_key"><option value="">"any"</option>{proxy_options}</select></label>
            <label>"Model contains"<input type="text" name="model" value=f.model.clone() placeholder="flash"/></label>
            <label>"Status"<input type="text" name="status" value=f.status.clone() placeholder="429 or 4xx" size="8"/></label>
            <label>"Stream"<select name="stream">{stream_options}</select></label>
            <label>"Prompt hash"<input type="text" name="prompt" value=f.prompt.clone() placeholder="sha256 hex" size="20"/></label>
            <label>"Request id"<input type="text" name="id" value=f.id.clone() size="16"/></label>
            <button type="submit">"Filter"</button>
            <a href="/logs">"Clear"</a>
        </form>
        <table id="logs">
            <tr><th>"Started (UTC)"</th><th>"Model"</th><th>"Status"</th><th>"Stream"</th><th>"Key"</th>
                <th>"Proxy key"</th><th>"Attempts"</th><th>"Tokens"</th><th>"Cost"</th><th>"ms"</th><th>"Error"</th></tr>
            {rows}
        </table>
        <p>{prev}" Page "{page_no.to_string()}" "{next}</p>
    }
    .into_any();
    super::layout::document("Logs", "/logs", Some(csrf), body)
}

/// Every recorded field of one request; `back` is the logs page it was opened from,
/// filters and page kept.
pub fn detail(csrf: &str, r: LogRecord, keys: &[KeyRow], proxy_keys: &[ProxyKeyRow], back: String) -> String {
    let names: HashMap<KeyId, String> = keys.iter().map(|k| (k.id, k.name.clone())).collect();
    let proxy_name = |id: i64| {
        proxy_keys
            .iter()
            .find(|k| k.id == id)
            .map_or_else(|| format!("#{id}"), |k| format!("{} (#{id})", k.name))
    };
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let tried = r
        .upstream_key_ids
        .iter()
        .map(|id| key_label(Some(*id), &names))
        .collect::<Vec<_>>()
        .join(", ");
    let fields: Vec<(&'static str, String)> = vec![
        ("Id", r.id.clone()),
        ("Started (UTC)", timefmt::date_time(r.started_at_ms)),
        ("Proxy key", r.proxy_key_id.map_or_else(|| "-".into(), proxy_name)),
        (
            "Upstream keys tried",
            if tried.is_empty() { "-".into() } else { tried },
        ),
        ("Answered by", key_label(r.answered_key_id, &names)),
        ("Model", text(&r.model)),
        ("Route", r.route.clone()),
        ("API", r.api.clone()),
        ("Stream", r.stream.to_string()),
        ("Status", r.status.to_string()),
        ("Attempts", r.attempts.to_string()),
        ("Latency ms", r.latency_ms.to_string()),
        ("Time to first byte ms", opt(r.ttfb_ms)),
        ("Prompt tokens", opt(r.prompt_tokens)),
        ("Output tokens", opt(r.candidates_tokens)),
        ("Thinking tokens", opt(r.thoughts_tokens)),
        ("Cached tokens", opt(r.cached_tokens)),
        ("Total tokens", opt(r.total_tokens)),
        ("Cost", r.cost_usd.map_or_else(|| "-".into(), usd)),
        ("Finish reason", text(&r.finish_reason)),
        ("Block reason", text(&r.block_reason)),
        ("Error kind", text(&r.error_kind)),
        ("Error message", text(&r.error_message)),
        ("Prompt hash", text(&r.prompt_sha256)),
        ("Client address", text(&r.client_ip)),
        ("User agent", text(&r.user_agent)),
        (
            "Notes",
            if r.notes.is_empty() {
                "-".into()
            } else {
                r.notes.join("; ")
            },
        ),
    ];
    let fields = fields
        .into_iter()
        .map(|(name, value)| view! { <dt>{name}</dt><dd>{value}</dd> })
        .collect_view();
    let request_body = r
        .request_body
        .clone()
        .map(|b| view! { <h2>"Request body"</h2><pre>{b}</pre> });
    let attempts = attempts_table(&r, &names);
    let body = view! {
        <h1>"Request"</h1>
        <p><a href=back id="back-to-logs">"← Back to the logs"</a></p>
        <dl id="log-detail">{fields}</dl>
        <h2>"Attempts"</h2>
        {attempts}
        {request_body}
    }
    .into_any();
    super::layout::document("Request", "/logs", Some(csrf), body)
}

/// Each upstream attempt in order (key, model, outcome, status, ms), so a failover
/// reads as what happened; records from before attempts were kept say so.
fn attempts_table(r: &LogRecord, names: &HashMap<KeyId, String>) -> AnyView {
    if r.attempt_details.is_empty() {
        let why = if r.attempts == 0 {
            "No upstream key was tried."
        } else {
            "This record was written before attempts were kept; it lists the keys tried only."
        };
        return view! { <p id="attempts">{why}</p> }.into_any();
    }
    let rows = r
        .attempt_details
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let status = a.status.map_or_else(|| "-".into(), |s| s.to_string());
            view! {
                <tr>
                    <td class="num" data-label="#">{(i + 1).to_string()}</td>
                    <td data-label="Key">{key_label(Some(a.key_id), names)}</td>
                    <td data-label="Model">{a.model.clone()}</td>
                    <td data-label="Outcome">{a.outcome.clone()}</td>
                    <td class="num" data-label="Status">{status}</td>
                    <td class="num" data-label="ms">{a.ms.to_string()}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table id="attempts">
            <tr><th>"#"</th><th>"Key"</th><th>"Model"</th><th>"Outcome"</th><th>"Status"</th><th>"ms"</th></tr>
            {rows}
        </table>
    }
    .into_any()
}
