//! Conversions between the core's unsigned numbers and PostgreSQL's signed `bigint`s,
//! and between unix milliseconds and the `timestamptz` text PostgREST speaks.

use crate::error::RestError;
use crate::time;

/// Negative values can only come from a hand-edited row; they read as zero.
pub(crate) fn from_db(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub(crate) fn opt_from_db(value: Option<i64>) -> Option<u64> {
    value.map(from_db)
}

/// A `timestamptz` from a row, as unix milliseconds.
pub(crate) fn timestamp(text: &str) -> Result<u64, RestError> {
    time::parse_ms(text).ok_or_else(|| RestError::Unexpected(format!("unreadable timestamp {text:?}")))
}

pub(crate) fn opt_timestamp(text: Option<&str>) -> Result<Option<u64>, RestError> {
    text.map(timestamp).transpose()
}

/// Unix milliseconds as a `timestamptz` value for a filter or an argument.
pub(crate) fn to_timestamp(ms: u64) -> String {
    time::format_ms(ms)
}

/// The SQL functions cast times with `to_timestamp(ms / 1000.0)`, which fails past
/// year 294276; a bogus far-future value (say from a broken `Retry-After`) must not
/// make a whole batch fail forever, so it is held to the last millisecond of 9999.
pub(crate) fn clamp_ms(ms: u64) -> u64 {
    ms.min(time::MAX_MS)
}
