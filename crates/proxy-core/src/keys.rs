//! Upstream Gemini keys and the secret wrapper that keeps them out of logs.

use std::fmt;

use crate::policy::ProxyKeyPolicy;

/// Row id of an upstream key in whatever store holds it.
pub type KeyId = i64;

/// A secret string that never prints itself: `Debug` and `Display` show a mask.
/// The only way to the raw value is [`Secret::expose`], so every use is greppable.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for the one header that carries it upstream.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn masked(&self) -> String {
        mask_key(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// `AIzaSyA…1234`-style mask: the first four and last four characters survive, which
/// is enough to tell keys apart in a list and far too little to use one. Short strings
/// are masked whole, since four plus four would reveal most of them.
pub fn mask_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 16 {
        return "…****".to_string();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// Rejects what cannot be a key before any store keeps it, with one rule for every
/// store. The error never repeats the value: it may be a real key with a stray space.
pub fn validate_secret(secret: &str) -> Result<(), crate::error::StoreError> {
    let problem = if secret.is_empty() {
        "key is empty"
    } else if secret.chars().any(char::is_whitespace) {
        "key contains whitespace"
    } else if secret.chars().any(char::is_control) {
        "key contains a control character"
    } else {
        return Ok(());
    };
    Err(crate::error::StoreError::Invalid(problem.into()))
}

/// An upstream key as the stores hand it to the pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamKey {
    pub id: KeyId,
    pub name: String,
    pub secret: Secret,
    pub enabled: bool,
}

/// A client ("proxy") key as the pool needs it: only the hash of the secret is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyKey {
    pub id: i64,
    pub name: String,
    pub secret_hash: String,
    pub revoked: bool,
    /// What the key may do beyond being live.
    pub policy: ProxyKeyPolicy,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_four_and_four() {
        let key = "AIzaSyDUMMYdummyDUMMYdummyDUMMYdummy1234";
        assert_eq!(mask_key(key), "AIza…1234");
        assert_eq!(format!("{:?}", Secret::new(key)), "AIza…1234");
        assert_eq!(format!("{}", Secret::new(key)), "AIza…1234");
    }

    #[test]
    fn secrets_are_validated_without_echo() {
        assert!(validate_secret("AIzaSyOk").is_ok());
        for bad in ["", "AIza Sy", "AIza\0x", "AIza\u{7}"] {
            let error = validate_secret(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.starts_with("key "), "{bad:?}: {error}");
            assert!(bad.is_empty() || !error.contains(bad), "{error}");
        }
    }

    #[test]
    fn short_values_are_masked_whole() {
        assert_eq!(mask_key("short-secret"), "…****");
        assert!(!mask_key("AQ.abcdefgh").contains("abc"));
    }
}
