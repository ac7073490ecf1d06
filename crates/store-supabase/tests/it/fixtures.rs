//! Values shared by the tests.

use std::time::{SystemTime, UNIX_EPOCH};

use proxy_core::log::LogRecord;

pub const SECRET_A: &str = "AIzaSyTESTtestTESTtestTESTtestAAAA1111";
pub const SECRET_B: &str = "AIzaSyTESTtestTESTtestTESTtestBBBB2222";

pub fn now_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    u64::try_from(since_epoch.as_millis()).expect("fits in u64")
}

/// A well-formed proxy key hash (the schema wants 64 lowercase hex digits).
pub fn hash(n: u64) -> String {
    format!("{n:064x}")
}

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

pub fn ids(records: &[LogRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}
