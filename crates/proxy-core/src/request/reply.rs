//! Complete answers the proxy gives itself (its own errors, upstream's final error),
//! as plain data every platform writes out the same way.

use bytes::Bytes;

use crate::error::{ErrorShape, ProxyError};
use crate::log::LogRecord;

/// The content type of the proxy's own JSON answers.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=UTF-8";

/// A whole response: status, `content-type`, body, and `Retry-After` when waiting
/// helps. Platforms add `x-request-id: request_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Bytes,
    pub retry_after_secs: Option<u64>,
    pub request_id: String,
}

impl Reply {
    /// The proxy's own error in the client's dialect.
    pub fn error(error: &ProxyError, shape: ErrorShape, request_id: &str) -> Self {
        Self {
            status: error.status_code(),
            content_type: JSON_CONTENT_TYPE.to_string(),
            body: Bytes::from(error.to_json(shape)),
            retry_after_secs: error.retry_after_secs(),
            request_id: request_id.to_string(),
        }
    }

    /// A JSON body the proxy built (e.g. `/healthz`).
    pub fn json(status: u16, body: impl Into<Bytes>, request_id: &str) -> Self {
        Self {
            status,
            content_type: JSON_CONTENT_TYPE.to_string(),
            body: body.into(),
            retry_after_secs: None,
            request_id: request_id.to_string(),
        }
    }
}

/// A request refused before or instead of reaching upstream: what the client gets,
/// and the record to log (its latency is set when the platform submits it). Boxed:
/// a refusal travels in every step's `Err`, which should stay small.
#[derive(Debug)]
pub struct Refusal {
    pub reply: Reply,
    pub record: Box<LogRecord>,
}
