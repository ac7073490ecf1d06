//! Conversions between the core's unsigned numbers and SQLite's signed 64-bit
//! integers, and the wall clock for the `*_at_ms` columns.
//!
//! Values never come near `i64::MAX` in practice; saturating instead of failing keeps
//! one absurd number (say a bogus `Retry-After`) from rejecting a whole batch.

use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn opt_to_sql(value: Option<u64>) -> Option<i64> {
    value.map(to_sql)
}

/// Negative values can only come from a hand-edited file; they read as zero.
pub(crate) fn from_sql(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub(crate) fn opt_from_sql(value: Option<i64>) -> Option<u64> {
    value.map(from_sql)
}

/// Unix milliseconds now. A clock before 1970 reads as 0 rather than failing a write.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
