//! Client authentication with proxy keys.
//!
//! Clients present the key the proxy issued them the way they would present a Gemini
//! key: `x-goog-api-key` (official SDKs), `?key=` (curl examples) or
//! `Authorization: Bearer` (OpenAI clients). Proxy keys are stored as SHA-256 hashes
//! only, so neither a store dump nor this process's memory holds a usable client key.

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::keys::ProxyKey;
use crate::policy::ProxyKeyPolicy;

/// The credential a request carried and how it carried it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub value: String,
    /// Sent as `Authorization: Bearer`; tells OpenAI clients apart on shared paths.
    pub bearer: bool,
}

/// Picks the client's credential: header first, then bearer token, then `?key=`.
pub fn extract_credential(
    goog_api_key: Option<&str>,
    authorization: Option<&str>,
    query_key: Option<&str>,
) -> Option<Credential> {
    let non_empty = |s: &str| !s.trim().is_empty();
    if let Some(value) = goog_api_key.filter(|v| non_empty(v)) {
        return Some(Credential {
            value: value.trim().to_string(),
            bearer: false,
        });
    }
    let bearer = authorization
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
        .filter(|v| non_empty(v));
    if let Some(value) = bearer {
        return Some(Credential {
            value: value.trim().to_string(),
            bearer: true,
        });
    }
    query_key.filter(|v| non_empty(v)).map(|value| Credential {
        value: value.trim().to_string(),
        bearer: false,
    })
}

/// Lowercase hex SHA-256 of a proxy key secret: what the stores keep.
pub fn hash_proxy_key(secret: &str) -> String {
    to_hex(&Sha256::digest(secret.as_bytes()))
}

/// Lowercase hex without a `format!` per byte: this runs on every request.
fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    out
}

/// Prefix of every proxy key we issue, so users can tell them from Gemini keys.
pub const PROXY_KEY_PREFIX: &str = "gp-";

/// How many characters of a proxy key secret the dashboard shows to tell keys apart
/// (`gp-` and 6 of 48 hex digits: 24 of 192 bits, no help to a guess).
pub const SHOWN_PREFIX_CHARS: usize = 9;

/// The start of a proxy key secret that stores keep beside its hash and pages show
/// (`gp-1a2b3c`), so an operator can match a key to the app using it.
pub fn secret_prefix(secret: &str) -> String {
    secret.chars().take(SHOWN_PREFIX_CHARS).collect()
}

/// Turns 24 random bytes into a proxy key secret (`gp-` + 48 hex characters).
pub fn format_proxy_key(random: &[u8; 24]) -> String {
    format!("{PROXY_KEY_PREFIX}{}", to_hex(random))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthOutcome<'a> {
    /// A live key, with the policy admission checks the request against.
    Allowed {
        proxy_key_id: i64,
        policy: &'a Arc<ProxyKeyPolicy>,
    },
    Missing,
    Unknown,
    Revoked {
        proxy_key_id: i64,
    },
}

/// The in-memory table of proxy keys, looked up by hash on every request.
#[derive(Clone, Debug, Default)]
pub struct ProxyKeyTable {
    by_hash: HashMap<String, ProxyKey>,
}

impl ProxyKeyTable {
    pub fn new(keys: Vec<ProxyKey>) -> Self {
        let by_hash = keys.into_iter().map(|k| (k.secret_hash.clone(), k)).collect();
        Self { by_hash }
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    pub fn check(&self, credential: Option<&Credential>) -> AuthOutcome<'_> {
        let Some(credential) = credential else {
            return AuthOutcome::Missing;
        };
        match self.by_hash.get(&hash_proxy_key(&credential.value)) {
            None => AuthOutcome::Unknown,
            Some(key) if key.revoked => AuthOutcome::Revoked { proxy_key_id: key.id },
            Some(key) => AuthOutcome::Allowed {
                proxy_key_id: key.id,
                policy: &key.policy,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_sources_in_order() {
        let c = extract_credential(Some("h"), Some("Bearer b"), Some("q")).map(|c| c.value);
        assert_eq!(c.as_deref(), Some("h"));
        let c = extract_credential(None, Some("Bearer b"), Some("q"));
        assert_eq!(
            c,
            Some(Credential {
                value: "b".into(),
                bearer: true
            })
        );
        let c = extract_credential(Some(" "), Some("Basic zz"), Some("q")).map(|c| c.value);
        assert_eq!(c.as_deref(), Some("q"));
        assert_eq!(extract_credential(None, None, Some("")), None);
    }

    #[test]
    fn table_checks_hash_and_revocation() {
        let ok = format_proxy_key(&[7; 24]);
        let gone = format_proxy_key(&[9; 24]);
        assert!(ok.starts_with("gp-") && ok.len() == 51);
        let table = ProxyKeyTable::new(vec![
            ProxyKey {
                id: 1,
                name: "a".into(),
                secret_hash: hash_proxy_key(&ok),
                revoked: false,
                policy: Arc::new(ProxyKeyPolicy {
                    passthrough: false,
                    ..ProxyKeyPolicy::default()
                }),
            },
            ProxyKey {
                id: 2,
                name: "b".into(),
                secret_hash: hash_proxy_key(&gone),
                revoked: true,
                policy: Arc::default(),
            },
        ]);
        let cred = |v: &str| Credential {
            value: v.into(),
            bearer: false,
        };
        assert_eq!(
            table.check(Some(&cred(&ok))),
            AuthOutcome::Allowed {
                proxy_key_id: 1,
                policy: &Arc::new(ProxyKeyPolicy {
                    passthrough: false,
                    ..ProxyKeyPolicy::default()
                }),
            },
            "a live key comes with its own policy"
        );
        assert_eq!(
            table.check(Some(&cred(&gone))),
            AuthOutcome::Revoked { proxy_key_id: 2 }
        );
        assert_eq!(table.check(Some(&cred("gp-nope"))), AuthOutcome::Unknown);
        assert_eq!(table.check(None), AuthOutcome::Missing);
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash_proxy_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
