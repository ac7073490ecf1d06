//! Turning tokio-postgres and pool errors into the core's `StoreError`.
//!
//! PostgreSQL's DETAIL line repeats the offending values (`Key (secret)=(AIza…) already
//! exists`), so it is never passed on: only the SQLSTATE and the primary message, which
//! name tables, columns and constraints but not values we bind as parameters.

use deadpool_postgres::PoolError;
use proxy_core::platform::StoreError;

/// Data exceptions (class 22) and broken constraints (class 23) are the caller's mistake
/// (`Invalid`); anything else (connection lost, server shutting down, missing schema,
/// no permission) means the store cannot serve right now.
pub(crate) fn map(err: tokio_postgres::Error) -> StoreError {
    match err.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            let message = format!("{} (SQLSTATE {code})", db.message());
            if code.starts_with("22") || code.starts_with("23") {
                StoreError::Invalid(message)
            } else {
                StoreError::Unavailable(message)
            }
        }
        // Connection, TLS and protocol errors carry no server text, hence no values.
        None => StoreError::Unavailable(format!("postgres: {}", describe(&err))),
    }
}

/// The error and its causes: tokio-postgres's own text is generic ("error performing TLS
/// handshake"); the causes say what went wrong ("invalid peer certificate: UnknownIssuer").
pub(crate) fn describe(err: &tokio_postgres::Error) -> String {
    let mut message = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(inner) = cause {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        cause = inner.source();
    }
    message
}

pub(crate) fn pool(err: PoolError) -> StoreError {
    match err {
        PoolError::Backend(e) => map(e),
        other => StoreError::Unavailable(format!("postgres pool: {other}")),
    }
}

/// `.db()?` on a tokio-postgres result: the orphan rule forbids `From<tokio_postgres::Error>`
/// for `StoreError` here, so this is the shortest way to use `?`.
pub(crate) trait DbResult<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T> DbResult<T> for Result<T, tokio_postgres::Error> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(map)
    }
}
