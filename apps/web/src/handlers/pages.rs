//! GET handlers: read the store, render a page.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use proxy_axum::unix_ms;
use proxy_core::admin::{AdminStore, KeyRow, LogQuery, UsageRow};
use proxy_core::keys::KeyId;
use proxy_core::platform::StoreError;
use serde::Deserialize;

use super::{html, store_error};
use crate::data::{self, Range, Totals};
use crate::log_filter::{LogFilters, PAGE_SIZE};
use crate::operator::Operator;
use crate::state::AppState;
use crate::views;

const TOP: usize = 5;

#[derive(Deserialize, Default)]
pub struct OverviewParams {
    range: Option<String>,
}

pub async fn overview(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Query(params): Query<OverviewParams>,
) -> Response {
    let range = Range::parse(params.range.as_deref());
    match overview_data(state.admin.as_ref(), range, unix_ms()).await {
        Ok(o) => html(views::overview::page(operator.csrf(), o)),
        Err(error) => store_error(error),
    }
}

pub async fn overview_data(
    admin: &dyn AdminStore,
    range: Range,
    now: u64,
) -> Result<views::overview::Overview, StoreError> {
    let (width, count) = range.buckets();
    let since = now.saturating_sub(range.span_ms());
    let logs = data::fetch_logs(admin, since, None).await?;
    let mut totals = Totals::default();
    logs.iter().for_each(|r| totals.add(r));
    let stats = admin.log_stats(since).await?;
    let keys = admin.list_keys().await?;
    let names: HashMap<KeyId, String> = keys.iter().map(|k| (k.id, k.name.clone())).collect();
    let troubled = keys
        .into_iter()
        .filter(|k| k.invalid_reason.is_some() || k.cooldowns.iter().any(|(_, until)| *until > now))
        .collect();
    Ok(views::overview::Overview {
        range,
        truncated: logs.len() >= data::MAX_ROWS,
        buckets: data::buckets(&logs, now, width, count),
        totals,
        top_models: top(stats.by_model, |g| g.to_string()),
        top_keys: top(stats.by_key, |g| match g.parse::<KeyId>() {
            Ok(id) => data::key_label(Some(id), &names),
            Err(_) => g.to_string(),
        }),
        troubled,
        now_ms: now,
    })
}

fn top(mut rows: Vec<UsageRow>, label: impl Fn(&str) -> String) -> Vec<UsageRow> {
    rows.sort_by_key(|r| std::cmp::Reverse(r.requests));
    rows.truncate(TOP);
    for row in &mut rows {
        row.group = label(&row.group);
    }
    rows
}

#[derive(Deserialize, Default)]
pub struct MsgParams {
    msg: Option<String>,
}

pub async fn keys(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Query(params): Query<MsgParams>,
) -> Response {
    match key_views(state.admin.as_ref()).await {
        Ok(keys) => html(views::keys::page(
            operator.csrf(),
            keys,
            unix_ms(),
            params.msg.as_deref(),
        )),
        Err(error) => store_error(error),
    }
}

/// Keys with when each last answered (its newest log record).
pub async fn key_views(admin: &dyn AdminStore) -> Result<Vec<views::keys::KeyView>, StoreError> {
    let rows: Vec<KeyRow> = admin.list_keys().await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let query = LogQuery {
            upstream_key_id: Some(row.id),
            limit: 1,
            ..LogQuery::default()
        };
        let last_used_ms = admin.list_logs(&query).await?.first().map(|r| r.started_at_ms);
        out.push(views::keys::KeyView { row, last_used_ms });
    }
    Ok(out)
}

pub async fn proxy_keys(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Query(params): Query<MsgParams>,
) -> Response {
    match state.admin.list_proxy_keys().await {
        Ok(keys) => html(views::proxy_keys::page(
            operator.csrf(),
            keys,
            None,
            params.msg.as_deref(),
        )),
        Err(error) => store_error(error),
    }
}

pub async fn logs(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Query(filters): Query<LogFilters>,
) -> Response {
    let admin = state.admin.as_ref();
    let result = async {
        let mut records = admin.list_logs(&filters.query()).await?;
        let has_next = records.len() > PAGE_SIZE as usize;
        records.truncate(PAGE_SIZE as usize);
        let keys = admin.list_keys().await?;
        let proxy_keys = admin.list_proxy_keys().await?;
        Ok::<_, StoreError>(views::logs::LogsPage {
            filters: filters.clone(),
            records,
            has_next,
            keys,
            proxy_keys,
        })
    }
    .await;
    match result {
        Ok(page) => html(views::logs::page(operator.csrf(), page)),
        Err(error) => store_error(error),
    }
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
) -> Response {
    let Some(at) = params.at else {
        return (StatusCode::BAD_REQUEST, "missing ?at=<started_at_ms>").into_response();
    };
    let admin = state.admin.as_ref();
    let found = data::find_log(admin, &id, at).await;
    let keys = admin.list_keys().await;
    match (found, keys) {
        (Ok(Some(record)), Ok(keys)) => html(views::logs::detail(operator.csrf(), record, &keys)),
        (Ok(None), _) => (StatusCode::NOT_FOUND, "no such request record").into_response(),
        (Err(error), _) | (_, Err(error)) => store_error(error),
    }
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

async fn usage_rows(
    admin: &dyn AdminStore,
    days: u32,
    now: u64,
) -> Result<Vec<(data::UsageKey, Totals)>, StoreError> {
    // Whole UTC days: today plus the `days - 1` before it.
    let day_ms = 86_400_000;
    let since = (now / day_ms).saturating_sub(u64::from(days) - 1) * day_ms;
    let logs = data::fetch_logs(admin, since, None).await?;
    let names = admin
        .list_keys()
        .await?
        .into_iter()
        .map(|k| (k.id, k.name))
        .collect();
    Ok(data::usage(&logs, &names))
}

pub async fn usage(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Query(params): Query<UsageParams>,
) -> Response {
    match usage_rows(state.admin.as_ref(), params.days(), unix_ms()).await {
        Ok(rows) => {
            let daily = data::per_day(&rows);
            html(views::usage::page(operator.csrf(), params.days(), &rows, &daily))
        }
        Err(error) => store_error(error),
    }
}

pub async fn usage_csv(
    State(state): State<Arc<AppState>>,
    _operator: Operator,
    Query(params): Query<UsageParams>,
) -> Response {
    match usage_rows(state.admin.as_ref(), params.days(), unix_ms()).await {
        Ok(rows) => {
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
            response
        }
        Err(error) => store_error(error),
    }
}
