//! The bytes a record's link hashes: its stored fields (all but `chain_sha256`) as
//! canonical JSON, keys sorted, no whitespace.
//!
//! Written by serde straight from borrowed fields declared in sorted order, not by
//! building a `serde_json::Value` and sorting it: the writer hashes every record, and
//! the `Value` (a map with a `String` per field) was most of that cost. The test
//! below holds it to the `Value` form, which is the definition.

use serde::Serialize;

use crate::keys::KeyId;
use crate::log::{AttemptDetail, LogRecord};

/// `LogRecord`'s serde fields, in byte order of their names. A field added to the
/// record must be added here, in order, or `matches_the_canonical_value_form` fails.
#[derive(Serialize)]
struct Form<'a> {
    answered_key_id: Option<KeyId>,
    api: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    attempt_details: Vec<Attempt<'a>>,
    attempts: u32,
    block_reason: &'a Option<String>,
    cache: &'a Option<String>,
    cached_tokens: Option<u64>,
    candidates_tokens: Option<u64>,
    chain_id: &'a Option<String>,
    chain_seq: Option<u64>,
    client_ip: &'a Option<String>,
    cost_usd: Option<f64>,
    error_kind: &'a Option<String>,
    error_message: &'a Option<String>,
    finish_reason: &'a Option<String>,
    id: &'a str,
    latency_ms: u64,
    model: &'a Option<String>,
    notes: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    overhead_us: Option<u64>,
    prompt_sha256: &'a Option<String>,
    prompt_tokens: Option<u64>,
    proxy_key_id: Option<i64>,
    request_body: &'a Option<String>,
    route: &'a str,
    served_model: &'a Option<String>,
    started_at_ms: u64,
    status: u16,
    stream: bool,
    thoughts_tokens: Option<u64>,
    total_tokens: Option<u64>,
    ttfb_ms: Option<u64>,
    upstream_key_ids: &'a [KeyId],
    user_agent: &'a Option<String>,
}

/// `AttemptDetail`'s fields, in byte order of their names.
#[derive(Serialize)]
struct Attempt<'a> {
    key_id: KeyId,
    model: &'a str,
    ms: u64,
    outcome: &'a str,
    status: Option<u16>,
}

impl<'a> Attempt<'a> {
    fn of(a: &'a AttemptDetail) -> Self {
        Self {
            key_id: a.key_id,
            model: &a.model,
            ms: a.ms,
            outcome: &a.outcome,
            status: a.status,
        }
    }
}

/// Appends the record's hashed bytes to `out`.
pub(super) fn write(record: &LogRecord, out: &mut Vec<u8>) {
    let r = record;
    let form = Form {
        answered_key_id: r.answered_key_id,
        api: &r.api,
        attempt_details: r.attempt_details.iter().map(Attempt::of).collect(),
        attempts: r.attempts,
        block_reason: &r.block_reason,
        cache: &r.cache,
        cached_tokens: r.cached_tokens,
        candidates_tokens: r.candidates_tokens,
        chain_id: &r.chain_id,
        chain_seq: r.chain_seq,
        client_ip: &r.client_ip,
        cost_usd: r.cost_usd,
        error_kind: &r.error_kind,
        error_message: &r.error_message,
        finish_reason: &r.finish_reason,
        id: &r.id,
        latency_ms: r.latency_ms,
        model: &r.model,
        notes: &r.notes,
        overhead_us: r.overhead_us,
        prompt_sha256: &r.prompt_sha256,
        prompt_tokens: r.prompt_tokens,
        proxy_key_id: r.proxy_key_id,
        request_body: &r.request_body,
        route: &r.route,
        served_model: &r.served_model,
        started_at_ms: r.started_at_ms,
        status: r.status,
        stream: r.stream,
        thoughts_tokens: r.thoughts_tokens,
        total_tokens: r.total_tokens,
        ttfb_ms: r.ttfb_ms,
        upstream_key_ids: &r.upstream_key_ids,
        user_agent: &r.user_agent,
    };
    // Into a Vec, a struct of strings and numbers always serialises.
    let _ = serde_json::to_writer(out, &form);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::write_canonical;

    /// The definition: the record's serde form without `chain_sha256`, canonical.
    fn by_value(record: &LogRecord) -> Vec<u8> {
        let mut value = serde_json::to_value(record).unwrap_or_default();
        if let Some(fields) = value.as_object_mut() {
            fields.remove("chain_sha256");
        }
        let mut out = Vec::new();
        write_canonical(&value, &mut out);
        out
    }

    fn direct(record: &LogRecord) -> Vec<u8> {
        let mut out = Vec::new();
        write(record, &mut out);
        out
    }

    /// Every field set (a new one must be set here too), and the defaults.
    #[test]
    fn matches_the_canonical_value_form() {
        let full = LogRecord {
            id: "req-\"1\"".into(),
            started_at_ms: 1_765_000_000_000,
            proxy_key_id: Some(-7),
            upstream_key_ids: vec![3, 1],
            answered_key_id: Some(1),
            model: Some("gemini-2.0-flash".into()),
            served_model: Some("gemini-2.0-flash-lite".into()),
            route: "generateContent".into(),
            api: "gemini".into(),
            stream: true,
            status: 200,
            attempts: 2,
            latency_ms: 412,
            ttfb_ms: Some(90),
            prompt_tokens: Some(12),
            candidates_tokens: Some(7),
            thoughts_tokens: Some(3),
            cached_tokens: Some(2),
            total_tokens: Some(19),
            cost_usd: Some(0.000_125),
            finish_reason: Some("STOP".into()),
            block_reason: Some("SAFETY".into()),
            error_kind: Some("rate_limited".into()),
            error_message: Some("quota \u{e9}t\u{e9} \n\t <x> \u{1F600}".into()),
            request_body: Some("{\"contents\":[]}".into()),
            cache: Some("miss".into()),
            notes: vec!["fallback".into(), "b".into()],
            prompt_sha256: Some("ab".repeat(32)),
            client_ip: Some("203.0.113.9".into()),
            user_agent: Some("sdk/1.0".into()),
            chain_id: Some("w-2026-12-06".into()),
            chain_seq: Some(41),
            chain_sha256: Some("cd".repeat(32)),
            attempt_details: vec![
                AttemptDetail {
                    key_id: 3,
                    model: "gemini-2.0-flash".into(),
                    outcome: "rate_limited".into(),
                    status: Some(429),
                    ms: 40,
                },
                AttemptDetail {
                    key_id: 1,
                    model: "m".into(),
                    outcome: "timeout".into(),
                    status: None,
                    ms: 0,
                },
            ],
            overhead_us: Some(55),
            ..LogRecord::default()
        };
        for record in [full, LogRecord::default()] {
            let (want, got) = (by_value(&record), direct(&record));
            assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
        }
    }
}
