//! Operator sessions: a random token in an HttpOnly, SameSite=Strict cookie, and a
//! per-session CSRF token that every form posts back. Kept in memory: a restart logs
//! the operator out, which is acceptable for a single-process dashboard.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::HeaderMap;

use crate::password::constant_time_eq;

pub const COOKIE_NAME: &str = "gp_session";
const TTL_MS: u64 = 12 * 60 * 60 * 1000;

#[derive(Clone, Debug)]
pub struct Session {
    pub csrf: String,
    expires_ms: u64,
    /// A new proxy key's name and secret, until the page after its creation shows them
    /// once (post, redirect, get: a reload never creates a second key).
    new_secret: Option<(String, String)>,
}

impl Session {
    pub fn csrf_matches(&self, posted: &str) -> bool {
        constant_time_eq(self.csrf.as_bytes(), posted.as_bytes())
    }
}

#[derive(Default)]
pub struct Sessions {
    by_token: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// A new session; returns its cookie token.
    pub fn create(&self, now_ms: u64) -> Result<String, getrandom::Error> {
        let token = random_hex()?;
        let session = Session {
            csrf: random_hex()?,
            expires_ms: now_ms + TTL_MS,
            new_secret: None,
        };
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        // Dropping expired sessions here keeps the map bounded without a timer task.
        map.retain(|_, s| s.expires_ms > now_ms);
        map.insert(token.clone(), session);
        Ok(token)
    }

    pub fn get(&self, token: &str, now_ms: u64) -> Option<Session> {
        let map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        map.get(token).filter(|s| s.expires_ms > now_ms).cloned()
    }

    /// Keeps a new proxy key's `name` and `secret` for the session's next page.
    pub fn keep_new_secret(&self, token: &str, name: String, secret: String) {
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(session) = map.get_mut(token) {
            session.new_secret = Some((name, secret));
        }
    }

    /// The kept secret, once: the next call finds none.
    pub fn take_new_secret(&self, token: &str) -> Option<(String, String)> {
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        map.get_mut(token)?.new_secret.take()
    }

    pub fn remove(&self, token: &str) {
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(token);
    }
}

fn random_hex() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The session token from the request's `Cookie` headers, if any.
pub fn token_from_headers(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_string())
}

/// `Set-Cookie` value; `secure` when TLS is in front (configured or forwarded).
pub fn cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        TTL_MS / 1000
    )
}

pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_csrf_is_checked() {
        let sessions = Sessions::default();
        let token = sessions.create(1_000).expect("random");
        let session = sessions.get(&token, 2_000).expect("live session");
        assert!(session.csrf_matches(&session.csrf.clone()));
        assert!(!session.csrf_matches("forged"));
        assert!(sessions.get(&token, 1_000 + TTL_MS).is_none());
        sessions.remove(&token);
        assert!(sessions.get(&token, 2_000).is_none());
    }

    #[test]
    fn reads_the_cookie_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            "a=b; gp_session=abc123; c=d".parse().expect("header"),
        );
        assert_eq!(token_from_headers(&headers).as_deref(), Some("abc123"));
        assert!(cookie("t", true).contains("Secure"));
        assert!(cookie("t", false).contains("SameSite=Strict; Max-Age"));
    }
}
