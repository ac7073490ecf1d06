//! Which database role a request runs as. Real PostgREST verifies a JWT and takes its
//! `role` claim; here the bearer token *is* the role name, which is all a test needs.
//! The Supabase gateway in front of PostgREST also insists on an `apikey` header, so
//! that is checked too: an adapter that forgot it would fail against a real project.

use axum::http::{HeaderMap, StatusCode};

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Anon,
    ServiceRole,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Anon => "anon",
            Role::ServiceRole => "service_role",
        }
    }

    fn from_token(token: &str) -> Option<Role> {
        match token {
            "anon" => Some(Role::Anon),
            "service_role" => Some(Role::ServiceRole),
            _ => None,
        }
    }
}

fn invalid_jwt() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "PGRST301", "JWT could not be decoded")
}

/// The role for a request. No `Authorization` header means the anonymous role, as on
/// Supabase; a token that names neither role is rejected like a bad JWT.
pub(crate) fn role(headers: &HeaderMap) -> Result<Role, ApiError> {
    let apikey = headers.get("apikey").and_then(|v| v.to_str().ok());
    if apikey.and_then(Role::from_token).is_none() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "PGRST301",
            "No API key found in request",
        ));
    }
    let Some(value) = headers.get("authorization") else {
        return Ok(Role::Anon);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(invalid_jwt)?;
    Role::from_token(token.trim()).ok_or_else(invalid_jwt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, axum::http::HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn bearer_token_names_the_role() {
        let both = headers(&[
            ("apikey", "service_role"),
            ("authorization", "Bearer service_role"),
        ]);
        assert_eq!(role(&both), Ok(Role::ServiceRole));
        assert_eq!(role(&headers(&[("apikey", "anon")])), Ok(Role::Anon));
        let other = headers(&[("apikey", "anon"), ("authorization", "Bearer postgres")]);
        assert_eq!(role(&other).map_err(|e| e.status), Err(StatusCode::UNAUTHORIZED));
        let no_key = headers(&[("authorization", "Bearer service_role")]);
        assert_eq!(role(&no_key).map_err(|e| e.status), Err(StatusCode::UNAUTHORIZED));
    }
}
