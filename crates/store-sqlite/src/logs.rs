//! Request logs: batched writes from the log sink, filtered listing and pruning.

use std::collections::BTreeMap;

use proxy_core::admin::LogQuery;
use proxy_core::keys::KeyId;
use proxy_core::log::LogRecord;
use proxy_core::platform::StoreError;
use rusqlite::types::Value;
use rusqlite::{Connection, Row, TransactionBehavior, params, params_from_iter};

use crate::convert::{from_sql, opt_from_sql, opt_to_sql, to_sql};
use crate::error::DbResult;
use crate::keys;

/// Listing without a limit returns this many rows; no listing returns more than the cap.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1000;

const COLUMNS: &str = "id, started_at_ms, proxy_key_id, upstream_key_ids, answered_key_id, model, route, \
     api, stream, status, attempts, latency_ms, ttfb_ms, prompt_tokens, candidates_tokens, \
     thoughts_tokens, cached_tokens, total_tokens, finish_reason, block_reason, error_kind, \
     error_message, request_body, cost_usd, served_model, cache, notes, prompt_sha256, client_ip, \
     user_agent, chain_id, chain_seq, chain_sha256, attempt_details, overhead_us";

/// Writes a batch in one transaction. `INSERT OR IGNORE` on the id makes a retried
/// batch (the sink could not tell whether the first try committed) a no-op.
pub(crate) fn write(conn: &mut Connection, records: &[LogRecord]) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    let mut last_used: BTreeMap<KeyId, u64> = BTreeMap::new();
    {
        let mut insert = tx
            .prepare_cached(&format!(
                "INSERT OR IGNORE INTO request_logs ({COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
                 ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35)"
            ))
            .db()?;
        for r in records {
            // A Vec<i64> always serialises; the fallback only keeps `unwrap` out.
            let tried = serde_json::to_string(&r.upstream_key_ids).unwrap_or_else(|_| "[]".into());
            let notes = serde_json::to_string(&r.notes).unwrap_or_else(|_| "[]".into());
            let attempt_details = serde_json::to_string(&r.attempt_details).unwrap_or_else(|_| "[]".into());
            insert
                .execute(params![
                    r.id,
                    to_sql(r.started_at_ms),
                    r.proxy_key_id,
                    tried,
                    r.answered_key_id,
                    r.model,
                    r.route,
                    r.api,
                    r.stream,
                    r.status,
                    r.attempts,
                    to_sql(r.latency_ms),
                    opt_to_sql(r.ttfb_ms),
                    opt_to_sql(r.prompt_tokens),
                    opt_to_sql(r.candidates_tokens),
                    opt_to_sql(r.thoughts_tokens),
                    opt_to_sql(r.cached_tokens),
                    opt_to_sql(r.total_tokens),
                    r.finish_reason,
                    r.block_reason,
                    r.error_kind,
                    r.error_message,
                    r.request_body,
                    r.cost_usd,
                    r.served_model,
                    r.cache,
                    notes,
                    r.prompt_sha256,
                    r.client_ip,
                    r.user_agent,
                    r.chain_id,
                    opt_to_sql(r.chain_seq),
                    r.chain_sha256,
                    attempt_details,
                    opt_to_sql(r.overhead_us),
                ])
                .db()?;
            for key_id in &r.upstream_key_ids {
                let at = last_used.entry(*key_id).or_default();
                *at = (*at).max(r.started_at_ms);
            }
        }
    }
    // The logs are the only place that knows when a key was last tried, so the key's
    // `last_used_ms` is kept up to date from them, in the same transaction.
    keys::touch_last_used(&tx, &last_used)?;
    tx.commit().db()
}

fn read_record(row: &Row<'_>) -> rusqlite::Result<LogRecord> {
    let tried: String = row.get(3)?;
    let upstream_key_ids = serde_json::from_str(&tried).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e))
    })?;
    let notes: String = row.get(26)?;
    let notes = serde_json::from_str(&notes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(26, rusqlite::types::Type::Text, Box::new(e))
    })?;
    let details: String = row.get(33)?;
    let attempt_details = serde_json::from_str(&details).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(33, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(LogRecord {
        id: row.get(0)?,
        started_at_ms: from_sql(row.get(1)?),
        proxy_key_id: row.get(2)?,
        upstream_key_ids,
        answered_key_id: row.get(4)?,
        model: row.get(5)?,
        route: row.get(6)?,
        api: row.get(7)?,
        stream: row.get(8)?,
        status: row.get(9)?,
        attempts: row.get(10)?,
        latency_ms: from_sql(row.get(11)?),
        ttfb_ms: opt_from_sql(row.get(12)?),
        prompt_tokens: opt_from_sql(row.get(13)?),
        candidates_tokens: opt_from_sql(row.get(14)?),
        thoughts_tokens: opt_from_sql(row.get(15)?),
        cached_tokens: opt_from_sql(row.get(16)?),
        total_tokens: opt_from_sql(row.get(17)?),
        cost_usd: row.get(23)?,
        finish_reason: row.get(18)?,
        block_reason: row.get(19)?,
        error_kind: row.get(20)?,
        error_message: row.get(21)?,
        request_body: row.get(22)?,
        served_model: row.get(24)?,
        cache: row.get(25)?,
        notes,
        prompt_sha256: row.get(27)?,
        client_ip: row.get(28)?,
        user_agent: row.get(29)?,
        chain_id: row.get(30)?,
        chain_seq: opt_from_sql(row.get(31)?),
        chain_sha256: row.get(32)?,
        attempt_details,
        overhead_us: opt_from_sql(row.get(34)?),
        ..LogRecord::default()
    })
}

/// The WHERE clause and its parameters for a query; every filter is optional.
fn filters(query: &LogQuery) -> (String, Vec<Value>) {
    let mut clauses: Vec<&str> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if let Some(since) = query.since_ms {
        clauses.push("started_at_ms >= ?");
        values.push(Value::Integer(to_sql(since)));
    }
    if let Some(until) = query.until_ms {
        clauses.push("started_at_ms < ?");
        values.push(Value::Integer(to_sql(until)));
    }
    if let Some(key_id) = query.upstream_key_id {
        // Any key tried counts, not only the one that answered.
        clauses.push("EXISTS (SELECT 1 FROM json_each(upstream_key_ids) WHERE json_each.value = ?)");
        values.push(Value::Integer(key_id));
    }
    if let Some(proxy_key_id) = query.proxy_key_id {
        clauses.push("proxy_key_id = ?");
        values.push(Value::Integer(proxy_key_id));
    }
    if let Some(model) = &query.model {
        clauses.push("model = ?");
        values.push(Value::Text(model.clone()));
    }
    if let Some(hash) = &query.prompt_sha256 {
        clauses.push("prompt_sha256 = ?");
        values.push(Value::Text(hash.to_ascii_lowercase()));
    }
    if let Some(status) = query.status {
        clauses.push("status = ?");
        values.push(Value::Integer(i64::from(status)));
    }
    if let Some(id) = &query.request_id {
        clauses.push("id = ?");
        values.push(Value::Text(id.clone()));
    }
    if let Some(part) = &query.model_contains {
        // instr, not LIKE: the text's % and _ are plain characters.
        clauses.push("instr(lower(model), lower(?)) > 0");
        values.push(Value::Text(part.clone()));
    }
    if let Some(class) = query.status_class {
        clauses.push("status >= ? AND status < ?");
        values.push(Value::Integer(i64::from(class) * 100));
        values.push(Value::Integer(i64::from(class) * 100 + 100));
    }
    if let Some(stream) = query.stream {
        clauses.push("stream = ?");
        values.push(Value::Integer(i64::from(stream)));
    }
    let sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    (sql, values)
}

/// Newest first; ties on the start time fall back to the id, which also sorts by time.
pub(crate) fn list(conn: &mut Connection, query: &LogQuery) -> Result<Vec<LogRecord>, StoreError> {
    let limit = match query.limit {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    };
    let (where_sql, mut values) = filters(query);
    values.push(Value::Integer(i64::from(limit)));
    values.push(Value::Integer(i64::from(query.offset)));
    // Filter combinations are few, so caching each SQL text is cheap.
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM request_logs {where_sql} \
             ORDER BY started_at_ms DESC, id DESC LIMIT ? OFFSET ?"
        ))
        .db()?;
    let rows = stmt.query_map(params_from_iter(values), read_record).db()?;
    rows.map(|row| row.db()).collect()
}

pub(crate) fn prune(conn: &mut Connection, before_ms: u64) -> Result<u64, StoreError> {
    let deleted = conn
        .execute(
            "DELETE FROM request_logs WHERE started_at_ms < ?1",
            [to_sql(before_ms)],
        )
        .db()?;
    Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
}
