//! Fixtures every check (and every store's own tests) share: key secrets, log records,
//! the clock, and small helpers.

use std::time::{SystemTime, UNIX_EPOCH};

use proxy_core::admin::LogQuery;
use proxy_core::log::LogRecord;

use crate::Store;

/// Upstream keys shaped like real ones; "TESTtest" must never show up in listings or
/// error messages.
pub const SECRET_A: &str = "AIzaSyTESTtestTESTtestTESTtestAAAA1111";
pub const SECRET_B: &str = "AIzaSyTESTtestTESTtestTESTtestBBBB2222";

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    u64::try_from(since_epoch.as_millis()).expect("fits in u64")
}

/// A well-formed proxy-key hash: 64 lowercase hex digits, as the Postgres schema demands.
pub fn hash(n: u64) -> String {
    format!("{n:064x}")
}

/// A minimal successful log record.
pub fn record(id: &str, started_at_ms: u64) -> LogRecord {
    LogRecord {
        id: id.into(),
        started_at_ms,
        route: "generateContent".into(),
        api: "gemini".into(),
        status: 200,
        attempts: 1,
        latency_ms: 100,
        model: Some("flash".into()),
        ..LogRecord::default()
    }
}

/// A log record with every optional field set, text that needs escaping included.
pub fn full_record(id: &str, started_at_ms: u64) -> LogRecord {
    LogRecord {
        id: id.into(),
        started_at_ms,
        proxy_key_id: Some(4),
        upstream_key_ids: vec![3, 1],
        answered_key_id: Some(1),
        model: Some("gemini-2.5-flash".into()),
        route: "streamGenerateContent".into(),
        api: "openai".into(),
        stream: true,
        status: 200,
        attempts: 2,
        latency_ms: 1234,
        ttfb_ms: Some(321),
        cost_usd: Some(0.0123),
        prompt_tokens: Some(10),
        candidates_tokens: Some(20),
        thoughts_tokens: Some(5),
        cached_tokens: Some(2),
        total_tokens: Some(35),
        finish_reason: Some("STOP".into()),
        block_reason: Some("SAFETY".into()),
        error_kind: Some("blocked".into()),
        error_message: Some("blocked by \"safety\", 100% sure: \\ ünïcödé\n(really)".into()),
        request_body: Some("{\"contents\":[]}".into()),
        served_model: Some("gemini-2.5-flash-lite".into()),
        cache: Some("miss".into()),
        notes: vec![
            "fallback gemini-2.5-flash → gemini-2.5-flash-lite (upstream 503)".into(),
            "a \"quoted\", {braced} note".into(),
        ],
        prompt_sha256: Some("0f".repeat(32)),
        client_ip: Some("2001:db8::7".into()),
        user_agent: Some("google-genai/1.0 \"quoted\" ünïcode".into()),
        overhead_us: Some(312),
        attempt_details: vec![
            proxy_core::log::AttemptDetail {
                key_id: 3,
                model: "gemini-2.5-pro \"quoted\"".into(),
                outcome: "rate_limited".into(),
                status: Some(429),
                ms: 41,
            },
            proxy_core::log::AttemptDetail {
                key_id: 1,
                model: "gemini-2.5-flash".into(),
                outcome: "ok".into(),
                status: Some(200),
                ms: 1_200,
            },
        ],
        chain_id: Some("w1-2026-12-03".into()),
        chain_seq: Some(7),
        chain_sha256: Some("ab".repeat(32)),
        // Not stored: the metrics' transient fields stay at their defaults.
        ..LogRecord::default()
    }
}

/// The ids of `records`, in order.
pub fn ids(records: &[LogRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

pub(crate) async fn list<S: Store + ?Sized>(store: &S, query: LogQuery) -> Vec<LogRecord> {
    store
        .list_logs(&query)
        .await
        .unwrap_or_else(|e| panic!("list_logs({query:?}) failed: {e}"))
}

pub(crate) fn assert_recent(what: &str, at_ms: u64) {
    assert!(
        at_ms.abs_diff(now_ms()) < 60_000,
        "{what}: created_at_ms {at_ms} is not the time of creation"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_64_lowercase_hex_and_distinct() {
        for n in [0, 1, 0xa, u64::MAX] {
            let h = hash(n);
            assert_eq!(h.len(), 64, "{h}");
            assert!(h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')), "{h}");
        }
        assert_ne!(hash(1), hash(2));
    }

    #[test]
    fn the_full_record_sets_every_optional_field() {
        let full = full_record("x", 1);
        // The stored fields, as serde writes them (the metrics' transient ones are not).
        let text = serde_json::to_string(&full).unwrap_or_default();
        assert!(text.starts_with('{') && !text.contains("null"), "{text}");
        assert!(!full.upstream_key_ids.is_empty() && full.stream);
    }
}
