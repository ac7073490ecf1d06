//! GET handlers: read the store, render a page.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use proxy_axum::unix_ms;
use proxy_core::admin::{AdminStore, KeyRow, UsageCell, UsageQuery, proxy_key_usage};
use proxy_core::keys::KeyId;
use proxy_core::platform::StoreError;
use serde::Deserialize;

use super::{AppError, render};
use crate::data::{self, Range};
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
) -> Result<Response, AppError> {
    let range = Range::parse(params.range.as_deref());
    let overview = overview_data(state.admin.as_ref(), range, unix_ms()).await?;
    Ok(render(|| views::overview::page(operator.csrf(), overview)))
}

pub async fn overview_data(
    admin: &dyn AdminStore,
    range: Range,
    now: u64,
) -> Result<views::overview::Overview, StoreError> {
    let (since, width, count) = data::window(range, now);
    let whole = data::window_totals(range, now);
    let per_bucket = UsageQuery {
        bucket_ms: width,
        ..whole.clone()
    };
    let per_model = UsageQuery {
        by_model: true,
        ..whole.clone()
    };
    let per_key = UsageQuery {
        by_upstream_key: true,
        ..whole.clone()
    };
    // Independent reads: on PostgreSQL and Supabase they go out at once.
    let (totals, buckets, models, keys_used, keys) = tokio::join!(
        admin.usage(&whole),
        admin.usage(&per_bucket),
        admin.usage(&per_model),
        admin.usage(&per_key),
        admin.list_keys(),
    );
    let keys = keys?;
    let names: HashMap<KeyId, String> = keys.iter().map(|k| (k.id, k.name.clone())).collect();
    let troubled = keys
        .into_iter()
        .filter(|k| k.invalid_reason.is_some() || k.cooldowns.iter().any(|(_, until)| *until > now))
        .collect();
    Ok(views::overview::Overview {
        range,
        totals: totals?.into_iter().next().unwrap_or_default(),
        buckets: data::fill_buckets(&buckets?, since, width, count),
        top_models: data::busiest(models?, TOP)
            .into_iter()
            .map(|c| (c.model.clone().unwrap_or_else(|| "(none)".into()), c))
            .collect(),
        top_keys: data::busiest(keys_used?, TOP)
            .into_iter()
            .map(|c| (data::key_label(c.upstream_key_id, &names), c))
            .collect(),
        troubled,
        now_ms: now,
    })
}

#[derive(Deserialize, Default)]
pub struct MsgParams {
    msg: Option<String>,
}

pub async fn keys(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Query(params): Query<MsgParams>,
) -> Result<Response, AppError> {
    let now = unix_ms();
    let keys = key_views(state.admin.as_ref(), now).await?;
    Ok(render(|| {
        views::keys::page(operator.csrf(), keys, now, params.msg.as_deref(), None)
    }))
}

/// Keys with what each answered today (Pacific).
pub async fn key_views(admin: &dyn AdminStore, now: u64) -> Result<Vec<views::keys::KeyView>, StoreError> {
    let rows: Vec<KeyRow> = admin.list_keys().await?;
    let today = per_id(
        admin,
        UsageQuery {
            since_ms: data::pacific_day_start(now),
            by_upstream_key: true,
            ..UsageQuery::default()
        },
        |c| c.upstream_key_id,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| views::keys::KeyView {
            today: today.get(&row.id).cloned().unwrap_or_default(),
            row,
        })
        .collect())
}

pub async fn proxy_keys(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    Query(params): Query<MsgParams>,
) -> Result<Response, AppError> {
    let keys = proxy_key_views(state.admin.as_ref(), unix_ms()).await?;
    Ok(render(|| {
        views::proxy_keys::page(operator.csrf(), keys, None, params.msg.as_deref(), None)
    }))
}

/// Proxy keys with their usage today and this month (UTC) and what their limits leave.
pub async fn proxy_key_views(
    admin: &dyn AdminStore,
    now: u64,
) -> Result<Vec<views::proxy_keys::ProxyKeyView>, StoreError> {
    Ok(proxy_key_usage(admin, now)
        .await?
        .into_iter()
        .map(|(row, usage)| views::proxy_keys::ProxyKeyView { row, usage })
        .collect())
}

/// One usage query's cells by the id they were grouped by.
async fn per_id(
    admin: &dyn AdminStore,
    query: UsageQuery,
    id: fn(&UsageCell) -> Option<i64>,
) -> Result<HashMap<i64, UsageCell>, StoreError> {
    Ok(admin
        .usage(&query)
        .await?
        .into_iter()
        .filter_map(|c| id(&c).map(|id| (id, c)))
        .collect())
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
) -> Result<Response, AppError> {
    let Some(at) = params.at else {
        return Ok((StatusCode::BAD_REQUEST, "missing ?at=<started_at_ms>").into_response());
    };
    let admin = state.admin.as_ref();
    let Some(record) = data::find_log(admin, &id, at).await? else {
        return Ok((StatusCode::NOT_FOUND, "no such request record").into_response());
    };
    let keys = admin.list_keys().await?;
    Ok(render(|| views::logs::detail(operator.csrf(), record, &keys)))
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
