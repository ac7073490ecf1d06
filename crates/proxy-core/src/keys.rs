//! Upstream Gemini keys and the secret wrapper that keeps them out of logs.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

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
    /// The operator's limits, so the pool rotates before Google answers 429.
    pub limits: KeyLimits,
}

/// Limits of one upstream key for one model. `None`: no limit of that kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Requests per minute.
    pub rpm: Option<u64>,
    /// Tokens per minute (what answers used).
    pub tpm: Option<u64>,
    /// Requests per day, reset at midnight Pacific like Google's.
    pub rpd: Option<u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none() && self.rpd.is_none()
    }

    /// Each of `self`'s limits, else `fallback`'s.
    pub fn or(self, fallback: Limits) -> Limits {
        Limits {
            rpm: self.rpm.or(fallback.rpm),
            tpm: self.tpm.or(fallback.tpm),
            rpd: self.rpd.or(fallback.rpd),
        }
    }
}

/// An upstream key's limits: one set for every model (each model counted apart, as
/// Google's quotas are per project and model), and model-specific ones over it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyLimits {
    /// For every model without its own.
    pub all_models: Limits,
    /// Model name -> limits that replace `all_models`' one by one.
    pub models: BTreeMap<String, Limits>,
}

impl KeyLimits {
    /// The limits that hold for `model`.
    pub fn for_model(&self, model: &str) -> Limits {
        match self.models.get(model.trim_start_matches("models/")) {
            Some(specific) => specific.or(self.all_models),
            None => self.all_models,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.all_models.is_empty() && self.models.values().all(Limits::is_empty)
    }

    /// Sets the limits for `model` (every model when `None`): each given field replaces
    /// the one there, and a 0 clears it. An emptied model entry is removed.
    pub fn update(&mut self, model: Option<&str>, rpm: Option<u64>, tpm: Option<u64>, rpd: Option<u64>) {
        let target = match model {
            Some(model) => self
                .models
                .entry(model.trim_start_matches("models/").to_string())
                .or_default(),
            None => &mut self.all_models,
        };
        for (field, value) in [
            (&mut target.rpm, rpm),
            (&mut target.tpm, tpm),
            (&mut target.rpd, rpd),
        ] {
            if let Some(value) = value {
                *field = (value > 0).then_some(value);
            }
        }
        self.models.retain(|_, limits| !limits.is_empty());
    }
}

/// A client ("proxy") key as the pool needs it: only the hash of the secret is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyKey {
    pub id: i64,
    pub name: String,
    pub secret_hash: String,
    pub revoked: bool,
    /// What the key may do beyond being live (shared: admission hands it on per request).
    pub policy: Arc<ProxyKeyPolicy>,
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
    fn model_limits_replace_the_general_ones_field_by_field() {
        let mut limits = KeyLimits::default();
        limits.update(None, Some(10), Some(1_000), None);
        limits.update(Some("models/gemini-2.5-pro"), Some(2), None, Some(50));
        assert_eq!(
            limits.for_model("gemini-2.5-pro"),
            Limits {
                rpm: Some(2),
                tpm: Some(1_000),
                rpd: Some(50)
            }
        );
        assert_eq!(limits.for_model("gemini-2.5-flash").rpm, Some(10));
        // 0 clears; a model left without limits is forgotten.
        limits.update(Some("gemini-2.5-pro"), Some(0), None, Some(0));
        assert!(limits.models.is_empty());
        limits.update(None, Some(0), Some(0), None);
        assert!(limits.is_empty());
        // Stored as JSON; an old row without the field reads as no limits.
        let old: KeyLimits = serde_json::from_str("{}").unwrap_or_else(|e| panic!("{e}"));
        assert!(old.is_empty());
    }

    #[test]
    fn short_values_are_masked_whole() {
        assert_eq!(mask_key("short-secret"), "…****");
        assert!(!mask_key("AQ.abcdefgh").contains("abc"));
    }
}
