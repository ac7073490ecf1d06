//! Errors in PostgREST's shape: a JSON body `{"code","message","details","hint"}` and
//! the HTTP status PostgREST would choose, so the adapter under test sees the same
//! answers it would get from the real thing.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::Role;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub details: Option<String>,
    pub hint: Option<String>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
            details: None,
            hint: None,
        }
    }

    /// PGRST100: the query string could not be parsed.
    pub(crate) fn bad_query(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "PGRST100", message)
    }

    /// PGRST102: the body is not what the request form needs.
    pub(crate) fn bad_body(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "PGRST102", message)
    }

    /// A request form real PostgREST accepts but this stand-in does not implement.
    /// Failing loudly keeps a test from passing on a form nobody checked.
    pub(crate) fn unsupported(what: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "PGRST100",
            format!("{what} is not supported by postgrest-test-server"),
        )
    }

    /// Maps a database error the way PostgREST does (its "HTTP status codes" table).
    pub(crate) fn from_db(err: &tokio_postgres::Error, role: Role) -> Self {
        let Some(db) = err.as_db_error() else {
            // No SQLSTATE: the connection itself failed.
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "PGRST001",
                format!("database connection error: {err}"),
            );
        };
        let code = db.code().code();
        Self {
            status: status_for(code, role),
            code: code.to_string(),
            message: db.message().to_string(),
            details: db.detail().map(str::to_string),
            hint: db.hint().map(str::to_string),
        }
    }
}

fn status_for(code: &str, role: Role) -> StatusCode {
    match code {
        "23503" | "23505" => StatusCode::CONFLICT,
        "25006" => StatusCode::METHOD_NOT_ALLOWED,
        "P0001" => StatusCode::BAD_REQUEST,
        "42883" | "42P01" => StatusCode::NOT_FOUND,
        "42P17" => StatusCode::INTERNAL_SERVER_ERROR,
        // PostgREST: 401 when the request was anonymous, 403 once a JWT named a role.
        "42501" if role == Role::Anon => StatusCode::UNAUTHORIZED,
        "42501" => StatusCode::FORBIDDEN,
        _ => match code.get(..2).unwrap_or("") {
            "08" | "53" => StatusCode::SERVICE_UNAVAILABLE,
            "0L" | "0P" | "28" => StatusCode::FORBIDDEN,
            "09" | "25" | "2D" | "38" | "39" | "3B" | "40" | "54" | "55" | "57" | "58" | "F0" | "HV"
            | "P0" | "XX" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        },
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "code": self.code,
            "message": self.message,
            "details": self.details,
            "hint": self.hint,
        });
        (self.status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_postgrest() {
        assert_eq!(status_for("23505", Role::ServiceRole), StatusCode::CONFLICT);
        assert_eq!(status_for("42501", Role::Anon), StatusCode::UNAUTHORIZED);
        assert_eq!(status_for("42501", Role::ServiceRole), StatusCode::FORBIDDEN);
        assert_eq!(status_for("42P01", Role::Anon), StatusCode::NOT_FOUND);
        assert_eq!(status_for("22P02", Role::Anon), StatusCode::BAD_REQUEST);
        assert_eq!(status_for("57014", Role::Anon), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
