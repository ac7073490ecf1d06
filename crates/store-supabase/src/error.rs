//! What a failed REST call means for the core.
//!
//! PostgREST answers errors as `{"code","message","details","hint"}`. Only `code` and
//! `message` are used: for a unique violation PostgreSQL puts the clashing value in
//! `details` ("Key (secret)=(AIza…) already exists."), so `details` never leaves this
//! module. Messages are also scrubbed of the service role key and anything key-shaped.

use proxy_core::platform::StoreError;
use proxy_core::redact;
use serde::Deserialize;

/// The longest piece of a non-JSON error body (a gateway's HTML page, say) kept.
const SNIPPET: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RestError {
    /// No answer: connection refused, DNS, TLS, timeout, or the body broke off.
    Transport(String),
    /// PostgREST (or the gateway in front of it) answered with an error status.
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// A success status with a body that is not what the request asks for.
    Unexpected(String),
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<String>,
    message: Option<String>,
}

impl RestError {
    pub(crate) fn from_response(status: u16, body: &str, hide: &[&str]) -> RestError {
        let (code, message) = match serde_json::from_str::<ErrorBody>(body) {
            Ok(parsed) => (
                parsed.code.unwrap_or_default(),
                parsed.message.unwrap_or_default(),
            ),
            Err(_) => (String::new(), body.chars().take(SNIPPET).collect()),
        };
        RestError::Api {
            status,
            code,
            message: redact::scrub(&message, hide),
        }
    }

    /// PostgreSQL's `unique_violation`: the row is already there.
    pub(crate) fn is_unique_violation(&self) -> bool {
        matches!(self, RestError::Api { code, .. } if code == "23505")
    }
}

/// A constraint (class 23) or data error (class 22) is the caller's mistake and will
/// fail the same way again; anything else (down, refused, misconfigured) is the store
/// not being able to serve right now.
fn is_caller_mistake(status: u16, code: &str) -> bool {
    (400..500).contains(&status) && (code.starts_with("23") || code.starts_with("22"))
}

impl From<RestError> for StoreError {
    fn from(err: RestError) -> StoreError {
        match err {
            RestError::Transport(message) => {
                StoreError::Unavailable(format!("cannot reach Supabase: {message}"))
            }
            RestError::Api {
                status,
                code,
                message,
            } if is_caller_mistake(status, &code) => {
                StoreError::Invalid(format!("rejected by the database: {message}"))
            }
            RestError::Api {
                status,
                code,
                message,
            } => StoreError::Unavailable(format!("Supabase answered {status} {code}: {message}")),
            RestError::Unexpected(message) => {
                StoreError::Unavailable(format!("unexpected answer from Supabase: {message}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "AIzaSyTESTtestTESTtestTESTtestAAAA1111";

    #[test]
    fn details_and_secrets_never_surface() {
        let body = format!(
            r#"{{"code":"23505","message":"duplicate key value violates unique constraint \"upstream_keys_secret_key\"","details":"Key (secret)=({SECRET}) already exists.","hint":null}}"#
        );
        let err = RestError::from_response(409, &body, &["service-key"]);
        assert!(err.is_unique_violation());
        let store: StoreError = err.into();
        assert!(matches!(store, StoreError::Invalid(_)));
        assert!(!store.to_string().contains(SECRET), "{store}");

        let echoed = format!(r#"{{"code":"P0001","message":"bad key {SECRET} and service-key-123"}}"#);
        let store: StoreError = RestError::from_response(400, &echoed, &["service-key-123"]).into();
        let text = store.to_string();
        assert!(
            !text.contains(SECRET) && !text.contains("service-key-123"),
            "{text}"
        );
        assert!(matches!(store, StoreError::Unavailable(_)));
    }

    #[test]
    fn outages_and_misconfiguration_are_unavailable() {
        let gateway = RestError::from_response(502, "<html>bad gateway</html>", &[]);
        assert!(matches!(StoreError::from(gateway), StoreError::Unavailable(m) if m.contains("bad gateway")));
        let denied = RestError::from_response(401, r#"{"code":"42501","message":"permission denied"}"#, &[]);
        assert!(matches!(StoreError::from(denied), StoreError::Unavailable(_)));
        let check = RestError::from_response(400, r#"{"code":"23514","message":"violates check"}"#, &[]);
        assert!(matches!(StoreError::from(check), StoreError::Invalid(_)));
    }
}
