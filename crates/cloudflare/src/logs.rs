//! Request logs without a database: one JSON line per request on the Worker's console
//! (`wrangler tail`, Workers Logs). The record is the core's [`LogRecord`], which holds
//! key ids, never a key.

use async_trait::async_trait;
use proxy_core::log::LogRecord;
use proxy_core::platform::{LogSink, StoreError};

use crate::diag;

/// The JSON line for one record.
pub fn log_line(record: &LogRecord) -> String {
    serde_json::to_string(record).unwrap_or_else(|e| format!("{{\"log_error\":\"{e}\"}}"))
}

pub struct ConsoleSink;

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl LogSink for ConsoleSink {
    async fn write_logs(&self, records: &[LogRecord]) -> Result<(), StoreError> {
        for record in records {
            diag::line(&log_line(record));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_json_line() {
        let record = LogRecord {
            id: "r1".into(),
            upstream_key_ids: vec![1, 2],
            answered_key_id: Some(2),
            status: 200,
            ..LogRecord::default()
        };
        let line = log_line(&record);
        assert!(!line.contains('\n'));
        let back: Result<LogRecord, _> = serde_json::from_str(&line);
        assert_eq!(back.ok(), Some(record));
    }
}
