//! Request logs: batched writes from the log sink, filtered listing and pruning.

use proxy_core::admin::LogQuery;
use proxy_core::log::{AttemptDetail, LogRecord};
use proxy_core::platform::StoreError;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::convert::{clamp_ms, from_db, opt_from_db, timestamp, to_timestamp};
use crate::error::RestError;
use crate::rest::Rest;

/// Listing without a limit returns this many rows; no listing returns more than the cap
/// (which is also Supabase's `max_rows`).
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1000;

const COLUMNS: &str = "id,started_at,proxy_key_id,upstream_key_ids,answered_key_id,model,route,api,stream,\
     status,attempts,latency_ms,ttfb_ms,prompt_tokens,candidates_tokens,thoughts_tokens,cached_tokens,\
     total_tokens,finish_reason,block_reason,error_kind,error_message,request_body,cost_usd,\
     served_model,cache,notes,prompt_sha256,client_ip,user_agent,chain_id,chain_seq,chain_sha256,\
     attempt_details,overhead_us";

/// A record as `insert_request_logs` takes it: the core's own serde shape, with numbers
/// held to what `bigint` and `to_timestamp` accept so one absurd value cannot fail the
/// batch again on every retry.
fn record_json(record: &LogRecord) -> Result<Value, StoreError> {
    let mut value = serde_json::to_value(record)
        .map_err(|e| StoreError::Invalid(format!("log record does not serialise: {e}")))?;
    if let Some(fields) = value.as_object_mut() {
        for field in fields.values_mut() {
            if field.as_u64().is_some_and(|n| i64::try_from(n).is_err()) {
                *field = json!(i64::MAX);
            }
        }
        fields.insert("started_at_ms".into(), json!(clamp_ms(record.started_at_ms)));
    }
    Ok(value)
}

/// The whole batch in ONE request. The function inserts with `on conflict (id) do
/// nothing` and counts only rows it inserted, so a retried batch (the first try may
/// have committed before the answer was lost) changes nothing.
pub(crate) async fn write(rest: &Rest, records: &[LogRecord]) -> Result<(), StoreError> {
    let records = records.iter().map(record_json).collect::<Result<Vec<_>, _>>()?;
    rest.send(
        rest.rpc("insert_request_logs", &json!({ "records": records })),
        &[],
    )
    .await?;
    Ok(())
}

#[derive(Deserialize)]
struct LogRow {
    id: String,
    started_at: String,
    proxy_key_id: Option<i64>,
    #[serde(default)]
    upstream_key_ids: Vec<i64>,
    answered_key_id: Option<i64>,
    model: Option<String>,
    route: String,
    api: String,
    stream: bool,
    status: i64,
    attempts: i64,
    latency_ms: i64,
    ttfb_ms: Option<i64>,
    prompt_tokens: Option<i64>,
    candidates_tokens: Option<i64>,
    thoughts_tokens: Option<i64>,
    cached_tokens: Option<i64>,
    total_tokens: Option<i64>,
    finish_reason: Option<String>,
    block_reason: Option<String>,
    error_kind: Option<String>,
    error_message: Option<String>,
    request_body: Option<String>,
    cost_usd: Option<f64>,
    served_model: Option<String>,
    cache: Option<String>,
    #[serde(default)]
    notes: Vec<String>,
    #[serde(default)]
    prompt_sha256: Option<String>,
    #[serde(default)]
    client_ip: Option<String>,
    #[serde(default)]
    user_agent: Option<String>,
    #[serde(default)]
    chain_id: Option<String>,
    #[serde(default)]
    chain_seq: Option<i64>,
    #[serde(default)]
    chain_sha256: Option<String>,
    #[serde(default)]
    attempt_details: Vec<AttemptDetail>,
    #[serde(default)]
    overhead_us: Option<i64>,
}

impl LogRow {
    fn into_record(self) -> Result<LogRecord, RestError> {
        Ok(LogRecord {
            id: self.id,
            started_at_ms: timestamp(&self.started_at)?,
            proxy_key_id: self.proxy_key_id,
            upstream_key_ids: self.upstream_key_ids,
            answered_key_id: self.answered_key_id,
            model: self.model,
            route: self.route,
            api: self.api,
            stream: self.stream,
            status: u16::try_from(self.status).unwrap_or(0),
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            latency_ms: from_db(self.latency_ms),
            ttfb_ms: opt_from_db(self.ttfb_ms),
            prompt_tokens: opt_from_db(self.prompt_tokens),
            candidates_tokens: opt_from_db(self.candidates_tokens),
            thoughts_tokens: opt_from_db(self.thoughts_tokens),
            cached_tokens: opt_from_db(self.cached_tokens),
            total_tokens: opt_from_db(self.total_tokens),
            cost_usd: self.cost_usd,
            finish_reason: self.finish_reason,
            block_reason: self.block_reason,
            error_kind: self.error_kind,
            error_message: self.error_message,
            request_body: self.request_body,
            served_model: self.served_model,
            cache: self.cache,
            notes: self.notes,
            prompt_sha256: self.prompt_sha256,
            client_ip: self.client_ip,
            user_agent: self.user_agent,
            chain_id: self.chain_id,
            chain_seq: opt_from_db(self.chain_seq),
            chain_sha256: self.chain_sha256,
            attempt_details: self.attempt_details,
            overhead_us: opt_from_db(self.overhead_us),
            ..LogRecord::default()
        })
    }
}

/// Newest first; ties on the start time fall back to the id, which also sorts by time.
pub(crate) async fn list(rest: &Rest, query: &LogQuery) -> Result<Vec<LogRecord>, RestError> {
    let limit = match query.limit {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    };
    let mut request = rest.table("request_logs").select(COLUMNS);
    if let Some(since) = query.since_ms {
        request = request.gte("started_at", to_timestamp(since));
    }
    if let Some(until) = query.until_ms {
        request = request.lt("started_at", to_timestamp(until));
    }
    if let Some(key_id) = query.upstream_key_id {
        // Any key tried counts, not only the one that answered (GIN-indexed `@>`).
        request = request.cs("upstream_key_ids", format!("{{{key_id}}}"));
    }
    if let Some(proxy_key_id) = query.proxy_key_id {
        request = request.eq("proxy_key_id", proxy_key_id.to_string());
    }
    if let Some(model) = &query.model {
        request = request.eq("model", model);
    }
    if let Some(hash) = &query.prompt_sha256 {
        request = request.eq("prompt_sha256", hash.to_ascii_lowercase());
    }
    if let Some(status) = query.status {
        request = request.eq("status", status.to_string());
    }
    if let Some(id) = &query.request_id {
        request = request.eq("id", id);
    }
    if let Some(part) = &query.model_contains {
        request = request.ilike("model", format!("*{}*", like_literal(part)));
    }
    if let Some(class) = query.status_class {
        let from = u32::from(class) * 100;
        request = request
            .gte("status", from.to_string())
            .lt("status", (from + 100).to_string());
    }
    if let Some(stream) = query.stream {
        request = request.eq("stream", stream.to_string());
    }
    let request = request.order("started_at.desc,id.desc");
    let page = [("limit", limit.to_string()), ("offset", query.offset.to_string())];
    let rows: Vec<LogRow> = rest.fetch(request, &page).await?;
    rows.into_iter().map(LogRow::into_record).collect()
}

/// `text` matched as itself inside an `ilike` pattern: LIKE's `%`, `_` and `\` escaped,
/// and PostgREST's wildcard `*` dropped (it would match anything).
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().filter(|c| *c != '*') {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Deletes records that started before `before_ms` in one call; returns how many.
pub(crate) async fn prune(rest: &Rest, before_ms: u64) -> Result<u64, RestError> {
    let args = json!({ "before_at": to_timestamp(before_ms) });
    let deleted: i64 = rest
        .fetch(rest.rpc("prune_request_logs_before", &args), &[])
        .await?;
    Ok(from_db(deleted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_numbers_are_held_to_what_the_database_takes() {
        let record = LogRecord {
            id: "x".into(),
            started_at_ms: u64::MAX,
            latency_ms: u64::MAX,
            ttfb_ms: Some(7),
            ..LogRecord::default()
        };
        let value = record_json(&record).expect("serialises");
        assert_eq!(value["started_at_ms"], json!(crate::time::MAX_MS));
        assert_eq!(value["latency_ms"], json!(i64::MAX));
        assert_eq!(value["ttfb_ms"], json!(7));
        assert_eq!(value["upstream_key_ids"], json!([]));
    }
}
