//! Conversions between the core's unsigned numbers and PostgreSQL's signed ones, and the
//! one convention for time: the core speaks unix milliseconds, the schema `timestamptz`.
//!
//! Times cross the wire as `bigint` milliseconds and are converted in SQL, both ways, with
//! the two expressions below, so no date library is needed and no conversion can panic.

use std::borrow::Cow;

/// SQL turning a `bigint` milliseconds parameter (`ts_from_ms!("$1")`) into a
/// `timestamptz`.
macro_rules! ts_from_ms {
    ($param:literal) => {
        concat!("to_timestamp(", $param, "::bigint / 1000.0)")
    };
}
pub(crate) use ts_from_ms;

/// SQL reading a `timestamptz` column as `bigint` milliseconds (`extract` is exact
/// `numeric` since PostgreSQL 14).
macro_rules! ms_from_ts {
    ($column:literal) => {
        concat!("(extract(epoch from ", $column, ") * 1000)::bigint")
    };
}
pub(crate) use ms_from_ts;

/// 9999-12-31T23:59:59.999Z. Later instants are out of `to_timestamp`'s range; "after
/// everything" (say `prune_logs(u64::MAX)`) still means after every stored row.
const MAX_TIMESTAMP_MS: u64 = 253_402_300_799_999;

/// A time parameter for [`ts_from_ms`].
pub(crate) fn ts_param(ms: u64) -> i64 {
    to_sql(ms.min(MAX_TIMESTAMP_MS))
}

/// Values never come near `i64::MAX` in practice; saturating instead of failing keeps one
/// absurd number (say a bogus `Retry-After`) from rejecting a whole batch.
pub(crate) fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn opt_to_sql(value: Option<u64>) -> Option<i64> {
    value.map(to_sql)
}

/// Negative values can only come from a hand-edited row; they read as zero.
pub(crate) fn from_sql(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub(crate) fn opt_from_sql(value: Option<i64>) -> Option<u64> {
    value.map(from_sql)
}

/// PostgreSQL text (and `jsonb`) cannot hold U+0000. One such character in an upstream
/// error message or a logged request body would make the whole batch fail on every retry,
/// so it is replaced instead.
pub(crate) fn clean(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

pub(crate) fn opt_clean(text: &Option<String>) -> Option<Cow<'_, str>> {
    text.as_deref().map(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_saturate_instead_of_failing() {
        assert_eq!(to_sql(u64::MAX), i64::MAX);
        assert_eq!(from_sql(-5), 0);
        assert_eq!(ts_param(u64::MAX), 253_402_300_799_999);
        assert_eq!(ts_param(1_000), 1_000);
    }

    #[test]
    fn nul_is_replaced() {
        assert_eq!(clean("a\0b"), "a\u{FFFD}b");
        assert!(matches!(clean("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn sql_fragments() {
        assert_eq!(ts_from_ms!("$1"), "to_timestamp($1::bigint / 1000.0)");
        assert_eq!(
            ms_from_ts!("l.started_at"),
            "(extract(epoch from l.started_at) * 1000)::bigint"
        );
    }
}
