//! GET handlers: read the store, render a page.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use proxy_axum::unix_ms;
use proxy_core::admin::{AdminStore, KeyRow, LogQuery, UsageCell, UsageQuery, proxy_key_usage};
use proxy_core::keys::KeyId;
use proxy_core::platform::StoreError;
use serde::Deserialize;

use super::{AppError, render};
use crate::data::{self, Range, Split};
use crate::log_filter::{LogFilters, PAGE_SIZE};
use crate::operator::Operator;
use crate::state::AppState;
use crate::views;

const TOP: usize = 5;

#[derive(Deserialize, Default)]
pub struct OverviewParams {
    range: Option<String>,
    from: Option<String>,
    to: Option<String>,
    split: Option<String>,
}

impl OverviewParams {
    /// The range and split asked for; a refused custom range gives the last day and
    /// the reason.
    pub fn choice(&self) -> (Range, Split, Option<String>) {
        let split = Split::parse(self.split.as_deref());
        match Range::parse(self.range.as_deref(), self.from.as_deref(), self.to.as_deref()) {
            Ok(range) => (range, split, None),
            Err(why) => (Range::Day, split, Some(why)),
        }
    }
}

pub async fn overview(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Query(params): Query<OverviewParams>,
) -> Result<Response, AppError> {
    let (range, split, range_error) = params.choice();
    let overview = overview_data(state.admin.as_ref(), range, split, unix_ms()).await?;
    Ok(render(|| {
        views::overview::page(operator.csrf(), overview, range_error.as_deref())
    }))
}

pub async fn overview_data(
    admin: &dyn AdminStore,
    range: Range,
    split: Split,
    now: u64,
) -> Result<views::overview::Overview, StoreError> {
    let window = data::window(range, now);
    let whole = window.totals();
    let per_bucket = window.per_bucket();
    let per_model = UsageQuery {
        by_model: true,
        ..whole.clone()
    };
    let per_key = UsageQuery {
        by_upstream_key: true,
        ..whole.clone()
    };
    let per_bucket_split = UsageQuery {
        by_model: split == Split::Model,
        by_upstream_key: split == Split::Key,
        ..per_bucket.clone()
    };
    // The charts read the window in buckets once: by time alone, or split.
    let buckets_read = async {
        match split {
            Split::Kind => admin.usage(&per_bucket).await,
            Split::Model | Split::Key => admin.usage(&per_bucket_split).await,
        }
    };
    // Independent reads: on PostgreSQL and Supabase they go out at once.
    let (totals, buckets, models, keys_used, keys) = tokio::join!(
        admin.usage(&whole),
        buckets_read,
        admin.usage(&per_model),
        admin.usage(&per_key),
        admin.list_keys(),
    );
    let buckets = buckets?;
    let keys = keys?;
    let key_count = keys.len();
    let names: HashMap<KeyId, String> = keys.iter().map(|k| (k.id, k.name.clone())).collect();
    let model_label = |c: &UsageCell| c.model.clone().unwrap_or_else(|| "(none)".into());
    let key_label = |c: &UsageCell| data::key_label(c.upstream_key_id, &names);
    let fill = |cells: &[UsageCell]| {
        data::fill_buckets(cells, window.first_bucket_ms(), window.width_ms, window.count)
    };
    let (buckets, series) = match split {
        Split::Kind => (fill(&buckets), Vec::new()),
        // Split cells summed per bucket: counts add up, percentiles do not (0).
        Split::Model => (
            fill(&data::sum_per_bucket(&buckets)),
            data::split_series(&buckets, model_label, &window, TOP),
        ),
        Split::Key => (
            fill(&data::sum_per_bucket(&buckets)),
            data::split_series(&buckets, key_label, &window, TOP),
        ),
    };
    let troubled = keys
        .into_iter()
        .filter(|k| k.invalid_reason.is_some() || k.cooldowns.iter().any(|(_, until)| *until > now))
        .collect();
    Ok(views::overview::Overview {
        range,
        window,
        split,
        totals: totals?.into_iter().next().unwrap_or_default(),
        buckets,
        series,
        top_models: data::busiest(models?, TOP)
            .into_iter()
            .map(|c| (model_label(&c), c))
            .collect(),
        top_keys: data::busiest(keys_used?, TOP)
            .into_iter()
            .map(|c| (key_label(&c), c))
            .collect(),
        troubled,
        key_count,
        now_ms: now,
    })
}

#[derive(Deserialize, Default)]
pub struct MsgParams {
    msg: Option<String>,
}

/// The keys page's query: a notice code, and after adding keys what became of each
/// line (numbers only, see `actions::AddedKeys`).
#[derive(Deserialize, Default)]
pub struct KeysParams {
    msg: Option<String>,
    added: Option<usize>,
    #[serde(default)]
    stored: String,
    #[serde(default)]
    refused: String,
    #[serde(default)]
    q: String,
    sort: Option<String>,
    /// After "Re-check all": `valid-3.invalid-1`, verdict and count.
    rechecked: Option<String>,
}

pub async fn keys(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Query(params): Query<KeysParams>,
) -> Result<Response, AppError> {
    let now = unix_ms();
    let keys = key_views(state.admin.as_ref(), now).await?;
    let added = match params.msg.as_deref() {
        Some("added") => Some(added_text(
            params.added.unwrap_or(0),
            &params.stored,
            &params.refused,
        )),
        _ => params.rechecked.as_deref().map(rechecked_text),
    };
    let msg = params.msg.as_deref().filter(|m| *m != "added");
    Ok(render(|| {
        let listing = views::keys::Listing {
            q: params.q.clone(),
            sort: views::keys::KeySort::parse(params.sort.as_deref()),
        };
        views::keys::page(operator.csrf(), keys, &listing, now, added, msg, None)
    }))
}

/// "Re-checked 3 keys: 2 valid, 1 rate-limited right now." from `valid-2.rate_limited-1`;
/// only known verdicts and numbers are read (the query is the browser's to change).
pub fn rechecked_text(summary: &str) -> String {
    let words = |verdict: &str| match verdict {
        "valid" => Some("valid"),
        "invalid" => Some("invalid (marked so)"),
        "rate_limited" => Some("rate-limited right now"),
        "unreachable" => Some("unanswered (nothing changed)"),
        "refused" => Some("refused for another reason (nothing changed)"),
        "pending" => Some("not loaded by the proxy yet"),
        "missing" => Some("deleted meanwhile"),
        _ => None,
    };
    let parts: Vec<(usize, &str)> = summary
        .split('.')
        .filter_map(|part| {
            let (verdict, n) = part.rsplit_once('-')?;
            Some((n.parse().ok()?, words(verdict)?))
        })
        .collect();
    let total: usize = parts.iter().map(|(n, _)| n).sum();
    if total == 0 {
        return "Re-checked no keys: none is enabled.".into();
    }
    let listed: Vec<String> = parts.iter().map(|(n, w)| format!("{n} {w}")).collect();
    let keys = if total == 1 { "key" } else { "keys" };
    format!("Re-checked {total} {keys}: {}.", listed.join(", "))
}

/// "Added 2 keys. Already stored: line 1 (as #1). Not a key: line 3." Anything in the
/// lists that is not a number is left out (the query is the browser's to change).
fn added_text(added: usize, stored: &str, refused: &str) -> String {
    let plural = |n: usize, one: &str, many: &str| {
        if n == 1 {
            one.to_string()
        } else {
            format!("{n} {many}")
        }
    };
    let mut text = match added {
        0 => "No key added.".to_string(),
        n => format!("Added {}.", plural(n, "1 key", "keys")),
    };
    let stored: Vec<String> = stored
        .split(',')
        .filter_map(|item| {
            let (line, id) = item.split_once(':').map_or((item, None), |(l, id)| (l, Some(id)));
            let line: usize = line.parse().ok()?;
            Some(match id.and_then(|id| id.parse::<i64>().ok()) {
                Some(id) => format!("line {line} (as #{id})"),
                None => format!("line {line}"),
            })
        })
        .collect();
    if !stored.is_empty() {
        text.push_str(&format!(" Already stored: {}.", stored.join(", ")));
    }
    let refused: Vec<String> = refused
        .split(',')
        .filter_map(|line| line.parse::<usize>().ok())
        .map(|line| format!("line {line}"))
        .collect();
    if !refused.is_empty() {
        text.push_str(&format!(" Not a key: {}.", refused.join(", ")));
    }
    text
}

/// Keys with what each answered today (Pacific).
pub async fn key_views(admin: &dyn AdminStore, now: u64) -> Result<Vec<views::keys::KeyView>, StoreError> {
    let rows: Vec<KeyRow> = admin.list_keys().await?;
    let by_model = |since_ms| UsageQuery {
        since_ms,
        by_upstream_key: true,
        by_model: true,
        ..UsageQuery::default()
    };
    let (day_query, minute_query) = (
        by_model(data::pacific_day_start(now)),
        by_model(now.saturating_sub(60_000)),
    );
    let (day, minute) = tokio::join!(admin.usage(&day_query), admin.usage(&minute_query));
    let (day, minute) = (day?, minute?);
    let of = |cells: &[UsageCell], id: KeyId| -> Vec<UsageCell> {
        cells
            .iter()
            .filter(|c| c.upstream_key_id == Some(id))
            .cloned()
            .collect()
    };
    Ok(rows
        .into_iter()
        .map(|row| {
            let today_by_model = of(&day, row.id);
            // Counts, tokens and cost add up across models (no percentile is shown).
            let mut today = UsageCell::default();
            today_by_model.iter().for_each(|c| today.add(c));
            views::keys::KeyView {
                today,
                today_by_model,
                last_minute_by_model: of(&minute, row.id),
                row,
            }
        })
        .collect())
}

pub async fn proxy_keys(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Query(params): Query<MsgParams>,
) -> Result<Response, AppError> {
    let keys = proxy_key_views(state.admin.as_ref(), unix_ms()).await?;
    let mut msg = params.msg.as_deref();
    let created = match msg {
        Some("created") => {
            let created = state.sessions.take_new_secret(&operator.token);
            // Shown already (a reload): say so instead.
            if created.is_none() {
                msg = Some("created-shown");
            }
            created
        }
        _ => None,
    };
    Ok(render(|| {
        views::proxy_keys::page(operator.csrf(), keys, created, msg, None)
    }))
}

/// Proxy keys with their usage today and this month (UTC) and what their limits leave.
pub async fn proxy_key_views(
    admin: &dyn AdminStore,
    now: u64,
) -> Result<Vec<views::proxy_keys::ProxyKeyView>, StoreError> {
    let mut views = Vec::new();
    for (row, usage) in proxy_key_usage(admin, now).await? {
        let last_used_ms = last_used(admin, row.id).await?;
        views.push(views::proxy_keys::ProxyKeyView {
            row,
            usage,
            last_used_ms,
        });
    }
    Ok(views)
}

/// When a proxy key's newest logged request started: one indexed read of one record
/// per key (the logs are indexed by proxy key and time), instead of a column the
/// request path would have to write.
async fn last_used(admin: &dyn AdminStore, proxy_key_id: i64) -> Result<Option<u64>, StoreError> {
    let newest = LogQuery {
        proxy_key_id: Some(proxy_key_id),
        limit: 1,
        ..LogQuery::default()
    };
    Ok(admin.list_logs(&newest).await?.first().map(|r| r.started_at_ms))
}

pub async fn logs(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Query(filters): Query<LogFilters>,
) -> Result<Response, AppError> {
    let admin = state.admin.as_ref();
    let mut records = admin.list_logs(&filters.query()).await?;
    let has_next = records.len() > PAGE_SIZE as usize;
    records.truncate(PAGE_SIZE as usize);
    let page = views::logs::LogsPage {
        filters,
        records,
        has_next,
        keys: admin.list_keys().await?,
        proxy_keys: admin.list_proxy_keys().await?,
    };
    Ok(render(|| views::logs::page(operator.csrf(), page)))
}

#[derive(Deserialize)]
pub struct DetailParams {
    at: Option<u64>,
}

pub async fn log_detail(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Path(id): Path<String>,
    Query(params): Query<DetailParams>,
    // The logs page's filters, carried in the same query for the way back.
    Query(filters): Query<LogFilters>,
) -> Result<Response, AppError> {
    let Some(at) = params.at else {
        return Ok((StatusCode::BAD_REQUEST, "missing ?at=<started_at_ms>").into_response());
    };
    let admin = state.admin.as_ref();
    let Some(record) = data::find_log(admin, &id, at).await? else {
        return Ok((StatusCode::NOT_FOUND, "no such request record").into_response());
    };
    let keys = admin.list_keys().await?;
    let proxy_keys = admin.list_proxy_keys().await?;
    let back = filters.link(filters.page());
    Ok(render(|| {
        views::logs::detail(operator.csrf(), record, &keys, &proxy_keys, back)
    }))
}

#[derive(Deserialize, Default)]
pub struct UsageParams {
    days: Option<u32>,
}

impl UsageParams {
    fn days(&self) -> u32 {
        self.days.unwrap_or(7).clamp(1, 366)
    }
}

/// The usage table (day x model x key, newest day first) and the chart's days (every
/// day of the range, oldest first, summed from the same cells), for today plus the
/// `days - 1` UTC days before it.
pub async fn usage_data(
    admin: &dyn AdminStore,
    days: u32,
    now: u64,
) -> Result<(Vec<data::UsageLine>, Vec<UsageCell>), StoreError> {
    let day = data::DAY_MS;
    let since = (now / day).saturating_sub(u64::from(days) - 1) * day;
    let split = UsageQuery {
        since_ms: since,
        bucket_ms: day,
        by_model: true,
        by_upstream_key: true,
        ..UsageQuery::default()
    };
    let names = admin
        .list_keys()
        .await?
        .into_iter()
        .map(|k| (k.id, k.name))
        .collect();
    let cells = admin.usage(&split).await?;
    let per_day = data::fill_buckets(&data::sum_per_bucket(&cells), since, day, days as usize);
    let lines = data::usage_lines(cells, &names);
    Ok((lines, per_day))
}

pub async fn usage(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Query(params): Query<UsageParams>,
) -> Result<Response, AppError> {
    let (rows, daily) = usage_data(state.admin.as_ref(), params.days(), unix_ms()).await?;
    Ok(render(|| {
        views::usage::page(operator.csrf(), params.days(), &rows, &daily)
    }))
}

pub async fn usage_csv(
    State(state): State<Arc<AppState>>,
    _operator: Operator,
    Query(params): Query<UsageParams>,
) -> Result<Response, AppError> {
    let (rows, _) = usage_data(state.admin.as_ref(), params.days(), unix_ms()).await?;
    let mut response = views::usage::csv(&rows).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"gemini-proxy-usage.csv\""),
    );
    Ok(response)
}

/// The dashboard's own 404: a page, with the navigation when logged in (the path is
/// shown as text, never as markup).
pub fn not_found(state: &AppState, headers: &axum::http::HeaderMap, path: &str) -> Response {
    let operator = Operator::from_headers(state, headers);
    let mut response = render(|| views::not_found::page(operator.as_ref().map(Operator::csrf), path));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

/// The browser's tab icon (asked for on every page), cached for a day.
pub async fn favicon() -> Response {
    const ICON: &str = "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'>\
<rect width='32' height='32' rx='7' fill='#1a73e8'/>\
<path d='M16 5l3 8 8 3-8 3-3 8-3-8-8-3 8-3z' fill='#fff'/></svg>";
    let mut response = ICON.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::rechecked_text;

    #[test]
    fn a_recheck_summary_reads_only_known_verdicts() {
        assert_eq!(
            rechecked_text("valid-2.rate_limited-1"),
            "Re-checked 3 keys: 2 valid, 1 rate-limited right now."
        );
        assert_eq!(
            rechecked_text("invalid-1.<script>-4.valid-x"),
            "Re-checked 1 key: 1 invalid (marked so)."
        );
        assert_eq!(rechecked_text(""), "Re-checked no keys: none is enabled.");
    }
}
