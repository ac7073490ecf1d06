//! Request logs: batched writes from the log sink, filtered listing and pruning.

use std::borrow::Cow;

use proxy_core::admin::LogQuery;
use proxy_core::keys::KeyId;
use proxy_core::log::{AttemptDetail, LogRecord};
use proxy_core::platform::StoreError;
use serde::Serialize;
use tokio_postgres::Row;
use tokio_postgres::types::{Json, ToSql};

use crate::convert::{
    clean, from_sql, ms_from_ts, opt_clean, opt_from_sql, opt_to_sql, to_sql, ts_from_ms, ts_param,
};
use crate::error::DbResult;
use crate::params::Batch;

/// Listing without a limit returns this many rows; no listing returns more than the cap.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1000;

/// A `LogRecord` as `insert_request_logs` reads it: the same field names as the core's
/// serde form (so a platform without this crate can send its records as they are), with
/// numbers already in PostgreSQL's signed range and text free of U+0000.
#[derive(Serialize)]
struct WireRecord<'a> {
    id: Cow<'a, str>,
    started_at_ms: i64,
    proxy_key_id: Option<i64>,
    upstream_key_ids: &'a [KeyId],
    answered_key_id: Option<KeyId>,
    model: Option<Cow<'a, str>>,
    route: Cow<'a, str>,
    api: Cow<'a, str>,
    stream: bool,
    status: i32,
    attempts: i32,
    latency_ms: i64,
    ttfb_ms: Option<i64>,
    prompt_tokens: Option<i64>,
    candidates_tokens: Option<i64>,
    thoughts_tokens: Option<i64>,
    cached_tokens: Option<i64>,
    total_tokens: Option<i64>,
    finish_reason: Option<Cow<'a, str>>,
    block_reason: Option<Cow<'a, str>>,
    error_kind: Option<Cow<'a, str>>,
    error_message: Option<Cow<'a, str>>,
    request_body: Option<Cow<'a, str>>,
    cost_usd: Option<f64>,
    served_model: Option<Cow<'a, str>>,
    cache: Option<Cow<'a, str>>,
    notes: Vec<Cow<'a, str>>,
    prompt_sha256: Option<Cow<'a, str>>,
    client_ip: Option<Cow<'a, str>>,
    user_agent: Option<Cow<'a, str>>,
    chain_id: Option<Cow<'a, str>>,
    chain_seq: Option<i64>,
    chain_sha256: Option<Cow<'a, str>>,
    attempt_details: Vec<WireAttempt<'a>>,
    overhead_us: Option<i64>,
}

/// An [`AttemptDetail`] as stored: text free of U+0000, `ms` within `bigint`.
#[derive(Serialize)]
struct WireAttempt<'a> {
    key_id: KeyId,
    model: Cow<'a, str>,
    outcome: Cow<'a, str>,
    status: Option<u16>,
    ms: i64,
}

impl<'a> From<&'a LogRecord> for WireRecord<'a> {
    fn from(r: &'a LogRecord) -> Self {
        Self {
            id: clean(&r.id),
            started_at_ms: ts_param(r.started_at_ms),
            proxy_key_id: r.proxy_key_id,
            upstream_key_ids: &r.upstream_key_ids,
            answered_key_id: r.answered_key_id,
            model: opt_clean(&r.model),
            route: clean(&r.route),
            api: clean(&r.api),
            stream: r.stream,
            status: i32::from(r.status),
            attempts: i32::try_from(r.attempts).unwrap_or(i32::MAX),
            latency_ms: to_sql(r.latency_ms),
            ttfb_ms: opt_to_sql(r.ttfb_ms),
            prompt_tokens: opt_to_sql(r.prompt_tokens),
            candidates_tokens: opt_to_sql(r.candidates_tokens),
            thoughts_tokens: opt_to_sql(r.thoughts_tokens),
            cached_tokens: opt_to_sql(r.cached_tokens),
            total_tokens: opt_to_sql(r.total_tokens),
            finish_reason: opt_clean(&r.finish_reason),
            block_reason: opt_clean(&r.block_reason),
            error_kind: opt_clean(&r.error_kind),
            error_message: opt_clean(&r.error_message),
            request_body: opt_clean(&r.request_body),
            // NaN and infinities are no JSON numbers; a price is never one.
            cost_usd: r.cost_usd.filter(|c| c.is_finite()),
            served_model: opt_clean(&r.served_model),
            cache: opt_clean(&r.cache),
            notes: r.notes.iter().map(|n| clean(n)).collect(),
            prompt_sha256: opt_clean(&r.prompt_sha256),
            client_ip: opt_clean(&r.client_ip),
            user_agent: opt_clean(&r.user_agent),
            chain_id: opt_clean(&r.chain_id),
            chain_seq: opt_to_sql(r.chain_seq),
            chain_sha256: opt_clean(&r.chain_sha256),
            attempt_details: r
                .attempt_details
                .iter()
                .map(|a| WireAttempt {
                    key_id: a.key_id,
                    model: clean(&a.model),
                    outcome: clean(&a.outcome),
                    status: a.status,
                    ms: to_sql(a.ms),
                })
                .collect(),
            overhead_us: opt_to_sql(r.overhead_us),
        }
    }
}

/// The whole batch as one JSON parameter to one function call: one round trip, one
/// transaction. The function skips ids already stored (a retried batch is a no-op) and
/// adds the inserted rows to the per-key counters in the same statement.
pub(crate) async fn write(
    client: &deadpool_postgres::Client,
    records: &[LogRecord],
) -> Result<u64, StoreError> {
    let wire = Batch(records.iter().map(WireRecord::from).collect::<Vec<_>>());
    let stmt = client
        .prepare_cached("SELECT insert_request_logs($1::jsonb)")
        .await
        .db()?;
    let row = client.query_one(&stmt, &[&Json(&wire)]).await.db()?;
    let inserted: i32 = row.try_get(0).db()?;
    Ok(u64::try_from(inserted).unwrap_or(0))
}

const COLUMNS: &str = concat!(
    "id, ",
    ms_from_ts!("started_at"),
    " AS started_at_ms, proxy_key_id, upstream_key_ids, answered_key_id, model, route, api, \
     stream, status, attempts, latency_ms, ttfb_ms, prompt_tokens, candidates_tokens, \
     thoughts_tokens, cached_tokens, total_tokens, finish_reason, block_reason, error_kind, \
     error_message, request_body, cost_usd, served_model, cache, notes, prompt_sha256, client_ip, \
     user_agent, chain_id, chain_seq, chain_sha256, attempt_details, overhead_us"
);

fn read_record(row: &Row) -> Result<LogRecord, StoreError> {
    let status: i32 = row.try_get("status").db()?;
    let attempts: i32 = row.try_get("attempts").db()?;
    Ok(LogRecord {
        id: row.try_get("id").db()?,
        started_at_ms: from_sql(row.try_get("started_at_ms").db()?),
        proxy_key_id: row.try_get("proxy_key_id").db()?,
        upstream_key_ids: row.try_get("upstream_key_ids").db()?,
        answered_key_id: row.try_get("answered_key_id").db()?,
        model: row.try_get("model").db()?,
        route: row.try_get("route").db()?,
        api: row.try_get("api").db()?,
        stream: row.try_get("stream").db()?,
        // Out-of-range values can only come from hand-edited rows; they read as zero.
        status: u16::try_from(status).unwrap_or(0),
        attempts: u32::try_from(attempts).unwrap_or(0),
        latency_ms: from_sql(row.try_get("latency_ms").db()?),
        ttfb_ms: opt_from_sql(row.try_get("ttfb_ms").db()?),
        prompt_tokens: opt_from_sql(row.try_get("prompt_tokens").db()?),
        candidates_tokens: opt_from_sql(row.try_get("candidates_tokens").db()?),
        thoughts_tokens: opt_from_sql(row.try_get("thoughts_tokens").db()?),
        cached_tokens: opt_from_sql(row.try_get("cached_tokens").db()?),
        total_tokens: opt_from_sql(row.try_get("total_tokens").db()?),
        cost_usd: row.try_get("cost_usd").db()?,
        finish_reason: row.try_get("finish_reason").db()?,
        block_reason: row.try_get("block_reason").db()?,
        error_kind: row.try_get("error_kind").db()?,
        error_message: row.try_get("error_message").db()?,
        request_body: row.try_get("request_body").db()?,
        served_model: row.try_get("served_model").db()?,
        cache: row.try_get("cache").db()?,
        notes: row.try_get("notes").db()?,
        prompt_sha256: row.try_get("prompt_sha256").db()?,
        client_ip: row.try_get("client_ip").db()?,
        user_agent: row.try_get("user_agent").db()?,
        chain_id: row.try_get("chain_id").db()?,
        chain_seq: opt_from_sql(row.try_get("chain_seq").db()?),
        chain_sha256: row.try_get("chain_sha256").db()?,
        attempt_details: row
            .try_get::<_, Json<Vec<AttemptDetail>>>("attempt_details")
            .db()?
            .0,
        overhead_us: opt_from_sql(row.try_get("overhead_us").db()?),
        ..LogRecord::default()
    })
}

type Param = Box<dyn ToSql + Sync + Send>;

/// The WHERE clause and its parameters; every filter is optional. Each one matches an
/// index of the migration.
fn filters(query: &LogQuery) -> (String, Vec<Param>) {
    let mut clauses: Vec<String> = Vec::new();
    let mut values: Vec<Param> = Vec::new();
    // `?` in a clause becomes the value's `$n`.
    let mut add = |clause: &str, value: Param| {
        values.push(value);
        clauses.push(clause.replace('?', &format!("${}", values.len())));
    };
    if let Some(since) = query.since_ms {
        add(
            concat!("started_at >= ", ts_from_ms!("?")),
            Box::new(ts_param(since)),
        );
    }
    if let Some(until) = query.until_ms {
        add(
            concat!("started_at < ", ts_from_ms!("?")),
            Box::new(ts_param(until)),
        );
    }
    if let Some(key_id) = query.upstream_key_id {
        // Any key tried counts, not only the one that answered (GIN index on the array).
        add("upstream_key_ids @> ARRAY[?::bigint]", Box::new(key_id));
    }
    if let Some(proxy_key_id) = query.proxy_key_id {
        add("proxy_key_id = ?", Box::new(proxy_key_id));
    }
    if let Some(model) = &query.model {
        add("model = ?", Box::new(model.clone()));
    }
    if let Some(hash) = &query.prompt_sha256 {
        add("prompt_sha256 = ?", Box::new(hash.to_ascii_lowercase()));
    }
    if let Some(status) = query.status {
        add("status = ?", Box::new(i32::from(status)));
    }
    if let Some(id) = &query.request_id {
        add("id = ?", Box::new(id.clone()));
    }
    if let Some(part) = &query.model_contains {
        // strpos, not LIKE: the text's % and _ are plain characters.
        add("strpos(lower(model), lower(?)) > 0", Box::new(part.clone()));
    }
    if let Some(class) = query.status_class {
        add("status >= ?", Box::new(i32::from(class) * 100));
        add("status < ?", Box::new(i32::from(class) * 100 + 100));
    }
    if let Some(stream) = query.stream {
        add("stream = ?", Box::new(stream));
    }
    let sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    (sql, values)
}

/// Newest first; ties on the start time fall back to the id, which also sorts by time.
pub(crate) async fn list(
    client: &deadpool_postgres::Client,
    query: &LogQuery,
) -> Result<Vec<LogRecord>, StoreError> {
    let limit = match query.limit {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    };
    let (where_sql, mut values) = filters(query);
    values.push(Box::new(i64::from(limit)));
    values.push(Box::new(i64::from(query.offset)));
    let (limit_at, offset_at) = (values.len() - 1, values.len());
    // Filter combinations are few, so caching each SQL text per connection is cheap.
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM request_logs {where_sql} \
             ORDER BY started_at DESC, id DESC LIMIT ${limit_at} OFFSET ${offset_at}"
        ))
        .await
        .db()?;
    let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref() as &(dyn ToSql + Sync)).collect();
    let rows = client.query(&stmt, &params).await.db()?;
    rows.iter().map(read_record).collect()
}

/// Uses the absolute-time variant of the prune function: the caller's cutoff is a
/// point in time, and turning it into an interval would add the clocks' skew.
pub(crate) async fn prune(client: &deadpool_postgres::Client, before_ms: u64) -> Result<u64, StoreError> {
    let stmt = client
        .prepare_cached(concat!(
            "SELECT prune_request_logs_before(",
            ts_from_ms!("$1"),
            ")"
        ))
        .await
        .db()?;
    let row = client.query_one(&stmt, &[&ts_param(before_ms)]).await.db()?;
    Ok(from_sql(row.try_get(0).db()?))
}
