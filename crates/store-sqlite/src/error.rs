//! Turning rusqlite errors into the core's `StoreError`.
//!
//! Statements always bind values as parameters, so SQLite's own messages name tables
//! and columns but never a secret; that is what makes passing them on safe.

use proxy_core::platform::StoreError;
use rusqlite::ErrorCode;

/// A broken constraint is the caller's mistake (`Invalid`); anything else (I/O, a lock
/// held too long, a corrupt file) means the store cannot serve right now.
pub(crate) fn map(err: rusqlite::Error) -> StoreError {
    match &err {
        rusqlite::Error::SqliteFailure(e, _) if e.code == ErrorCode::ConstraintViolation => {
            StoreError::Invalid(format!("constraint violated: {err}"))
        }
        _ => StoreError::Unavailable(err.to_string()),
    }
}

/// `.db()?` on a rusqlite result: the orphan rule forbids `From<rusqlite::Error>` for
/// `StoreError` here, so this is the shortest way to use `?`.
pub(crate) trait DbResult<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T> DbResult<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(map)
    }
}
