//! The Worker's settings, read from its vars and secrets.
//!
//! Two ways to give it keys:
//! - without a database: the secrets `GEMINI_API_KEYS` and `PROXY_KEYS`, comma (or
//!   newline) separated. Upstream keys get the ids 1, 2, … by position; proxy keys are
//!   hashed here, so the isolate keeps only their SHA-256 (an entry written as
//!   `sha256:<64 hex>` is taken as an already hashed key);
//! - with Supabase: the var `SUPABASE_URL` and the secret `SUPABASE_SERVICE_ROLE_KEY`.
//!
//! The limits use the same names as the native binary's environment, and the same
//! defaults: `proxy_core::defaults`, which both read.

use proxy_core::EngineConfig;
use proxy_core::auth::hash_proxy_key;
use proxy_core::defaults;
use proxy_core::governance::prices::PriceTable;
use proxy_core::keys::Secret;
use proxy_core::request::AdmissionRules;
use proxy_core::resilience::{ResilienceConfig, ResilienceSettings};

/// Where the keys come from, and so where logs and learned key state go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// Keys from secrets; key state lives in the isolate, logs go to the console.
    Secrets {
        /// Upstream keys with their stable id (1-based position in `GEMINI_API_KEYS`).
        upstream_keys: Vec<(i64, Secret)>,
        /// Proxy key hashes with their id (1-based position in `PROXY_KEYS`).
        proxy_key_hashes: Vec<(i64, String)>,
    },
    /// Keys, key state and logs in a Supabase project (PostgREST).
    Supabase { url: String, service_role_key: Secret },
}

#[derive(Clone, Debug, PartialEq)]
pub struct WorkerConfig {
    pub upstream_base_url: String,
    pub source: KeySource,
    pub engine: EngineConfig,
    /// Body limit and body logging, applied by the core's admission.
    pub admission: AdmissionRules,
    /// How often the isolate re-reads keys from Supabase (checked lazily per request).
    pub refresh_ms: u64,
    /// What each model costs: the built-in table, with the var `PRICES` (the TOML of
    /// `--prices`) laid over it.
    pub prices: PriceTable,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "the Worker has no keys: set the secrets GEMINI_API_KEYS and PROXY_KEYS, or SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY"
    )]
    NoKeySource,
    #[error("{0} is set but empty")]
    Empty(&'static str),
    #[error("SUPABASE_URL is set but the secret SUPABASE_SERVICE_ROLE_KEY is not")]
    MissingServiceRoleKey,
    #[error("{name} must be a whole number, got {value:?}")]
    NotANumber { name: &'static str, value: String },
    #[error("{name} must start with http:// or https://")]
    NotAUrl { name: &'static str },
    #[error("PROXY_KEYS entry {position} starts with sha256: but is not 64 hex digits")]
    BadHash { position: usize },
    #[error("PRICES: {0}")]
    BadPrices(String),
    #[error("GEMINI_PROXY_FALLBACK: {0}")]
    BadFallback(String),
}

impl WorkerConfig {
    /// Reads the settings through `get` (a var or secret by name; `None` when unset).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let upstream_base_url = match get("GEMINI_BASE_URL") {
            Some(url) => checked_url("GEMINI_BASE_URL", &url)?,
            None => defaults::UPSTREAM_BASE_URL.to_string(),
        };
        let source = match get("SUPABASE_URL") {
            Some(url) => KeySource::Supabase {
                url: checked_url("SUPABASE_URL", &url)?,
                service_role_key: Secret::new(
                    get("SUPABASE_SERVICE_ROLE_KEY").ok_or(ConfigError::MissingServiceRoleKey)?,
                ),
            },
            None => secrets_source(get("GEMINI_API_KEYS"), get("PROXY_KEYS"))?,
        };
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(value) => value
                    .parse::<u64>()
                    .map_err(|_| ConfigError::NotANumber { name, value }),
            }
        };
        let max_attempts = u32::try_from(number(
            "GEMINI_PROXY_MAX_ATTEMPTS",
            u64::from(defaults::MAX_ATTEMPTS),
        )?)
        .unwrap_or(u32::MAX);
        let mut engine = EngineConfig::from_limits(
            max_attempts,
            number("GEMINI_PROXY_DEADLINE_SECS", defaults::DEADLINE_SECS)?,
            number(
                "GEMINI_PROXY_ATTEMPT_TIMEOUT_SECS",
                defaults::ATTEMPT_TIMEOUT_SECS,
            )?,
        );
        let flag = |name: &str, default: bool| match get(name) {
            Some(v) => matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"),
            None => default,
        };
        let small = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        let fallback = get("GEMINI_PROXY_FALLBACK");
        let settings = ResilienceSettings {
            fallbacks: fallback.as_deref().into_iter().collect(),
            breaker_failures: small(number(
                "GEMINI_PROXY_BREAKER_FAILURES",
                u64::from(defaults::BREAKER_FAILURES),
            )?),
            breaker_pause_secs: number("GEMINI_PROXY_BREAKER_PAUSE_SECS", defaults::BREAKER_PAUSE_SECS)?,
            breaker_max_pause_secs: number(
                "GEMINI_PROXY_BREAKER_MAX_PAUSE_SECS",
                defaults::BREAKER_MAX_PAUSE_SECS,
            )?,
            retry_budget_percent: small(number(
                "GEMINI_PROXY_RETRY_BUDGET_PERCENT",
                u64::from(defaults::RETRY_BUDGET_PERCENT),
            )?),
            retry_budget_floor: small(number(
                "GEMINI_PROXY_RETRY_BUDGET_FLOOR",
                u64::from(defaults::RETRY_BUDGET_FLOOR),
            )?),
            queue_wait_secs: number("GEMINI_PROXY_QUEUE_WAIT_SECS", defaults::QUEUE_WAIT_SECS)?,
            queue_max: usize::try_from(number("GEMINI_PROXY_QUEUE_MAX", defaults::QUEUE_MAX as u64)?)
                .unwrap_or(usize::MAX),
            cache_ttl_secs: number("GEMINI_PROXY_CACHE_TTL_SECS", defaults::CACHE_TTL_SECS)?,
            cache_max_mb: number("GEMINI_PROXY_CACHE_MAX_MB", defaults::CACHE_MAX_MB)?,
            cache_shared: flag("GEMINI_PROXY_CACHE_SHARED", defaults::CACHE_SHARED),
            hedge_after_ms: number("GEMINI_PROXY_HEDGE_AFTER_MS", defaults::HEDGE_AFTER_MS)?,
        };
        engine.resilience = ResilienceConfig::from_settings(&settings).map_err(ConfigError::BadFallback)?;
        let log_bodies = flag("GEMINI_PROXY_LOG_BODIES", defaults::LOG_BODIES);
        let admission = AdmissionRules {
            max_body_bytes: defaults::mib_to_bytes(number(
                "GEMINI_PROXY_MAX_BODY_MB",
                defaults::MAX_BODY_MB,
            )?),
            log_bodies,
            sse_heartbeat_ms: number("GEMINI_PROXY_SSE_HEARTBEAT_SECS", defaults::SSE_HEARTBEAT_SECS)?
                .saturating_mul(1000),
            retry_empty: flag("GEMINI_PROXY_RETRY_EMPTY", defaults::RETRY_EMPTY),
        };
        Ok(Self {
            upstream_base_url,
            source,
            engine,
            admission,
            refresh_ms: number("GEMINI_PROXY_REFRESH_MS", defaults::WORKER_REFRESH_MS)?
                .max(defaults::REFRESH_FLOOR_MS),
            prices: match get("PRICES") {
                Some(text) => PriceTable::from_toml(&text).map_err(ConfigError::BadPrices)?,
                None => PriceTable::builtin(),
            },
        })
    }
}

fn checked_url(name: &'static str, url: &str) -> Result<String, ConfigError> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(url.trim_end_matches('/').to_string())
    } else {
        Err(ConfigError::NotAUrl { name })
    }
}

fn secrets_source(keys: Option<String>, proxy_keys: Option<String>) -> Result<KeySource, ConfigError> {
    let (Some(keys), Some(proxy_keys)) = (keys, proxy_keys) else {
        return Err(ConfigError::NoKeySource);
    };
    let upstream_keys: Vec<(i64, Secret)> = positioned(&keys)
        .map(|(id, key)| (id, Secret::new(key)))
        .collect();
    if upstream_keys.is_empty() {
        return Err(ConfigError::Empty("GEMINI_API_KEYS"));
    }
    let mut proxy_key_hashes = Vec::new();
    for (id, entry) in positioned(&proxy_keys) {
        let hash = match entry.strip_prefix("sha256:") {
            Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                hex.to_ascii_lowercase()
            }
            Some(_) => {
                return Err(ConfigError::BadHash {
                    position: id as usize,
                });
            }
            None => hash_proxy_key(entry),
        };
        proxy_key_hashes.push((id, hash));
    }
    if proxy_key_hashes.is_empty() {
        return Err(ConfigError::Empty("PROXY_KEYS"));
    }
    Ok(KeySource::Secrets {
        upstream_keys,
        proxy_key_hashes,
    })
}

/// Entries of a comma or newline separated list with their 1-based position among the
/// non-empty entries; a repeat keeps its number unused, so later ids do not move.
fn positioned(list: &str) -> impl Iterator<Item = (i64, &str)> {
    let mut seen = Vec::new();
    list.split([',', '\n', '\r'])
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .enumerate()
        .filter(move |(_, entry)| {
            let fresh = !seen.contains(entry);
            seen.push(*entry);
            fresh
        })
        .map(|(index, entry)| (index as i64 + 1, entry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<WorkerConfig, ConfigError> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        WorkerConfig::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn secrets_give_positional_ids_and_hashed_proxy_keys() {
        let hashed = hash_proxy_key("gp-two");
        let proxy_keys = format!("gp-one, sha256:{}", hashed.to_uppercase());
        let Ok(config) = config(&[
            ("GEMINI_API_KEYS", " AIzaA ,\nAIzaB,,AIzaA, AIzaC "),
            ("PROXY_KEYS", &proxy_keys),
        ]) else {
            panic!("config should parse");
        };
        assert_eq!(config.upstream_base_url, defaults::UPSTREAM_BASE_URL);
        assert_eq!(config.refresh_ms, defaults::WORKER_REFRESH_MS);
        assert_eq!(config.engine, EngineConfig::default());
        assert_eq!(config.admission, AdmissionRules::default());
        let KeySource::Secrets {
            upstream_keys,
            proxy_key_hashes,
        } = config.source
        else {
            panic!("expected keys from secrets");
        };
        let ids: Vec<(i64, &str)> = upstream_keys.iter().map(|(id, s)| (*id, s.expose())).collect();
        assert_eq!(ids, vec![(1, "AIzaA"), (2, "AIzaB"), (4, "AIzaC")]);
        assert_eq!(proxy_key_hashes, vec![(1, hash_proxy_key("gp-one")), (2, hashed)]);
    }

    #[test]
    fn prices_come_from_the_prices_var_over_the_built_in_table() {
        let base = [("GEMINI_API_KEYS", "AIzaA"), ("PROXY_KEYS", "gp-one")];
        let builtin = config(&base).map(|c| c.prices).ok();
        assert_eq!(builtin, Some(PriceTable::builtin()));
        let mut vars = base.to_vec();
        vars.push(("PRICES", "[models.\"my-model\"]\ninput = 1\noutput = 3\n"));
        let prices = config(&vars).map(|c| c.prices).ok();
        assert_eq!(
            prices
                .as_ref()
                .and_then(|p| p.price("my-model"))
                .map(|p| p.output),
            Some(3.0)
        );
        assert!(
            prices
                .as_ref()
                .and_then(|p| p.price("gemini-2.5-flash"))
                .is_some()
        );
        vars.pop();
        vars.push(("PRICES", "[models.x]\ninput = -2\n"));
        let error = config(&vars).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.starts_with("PRICES: ") && error.contains("≥ 0"), "{error}");
    }

    #[test]
    fn resilience_comes_from_the_binarys_variable_names() {
        let mut vars = vec![
            ("GEMINI_API_KEYS", "AIzaA"),
            ("PROXY_KEYS", "gp-one"),
            (
                "GEMINI_PROXY_FALLBACK",
                "gemini-2.5-pro=gemini-2.5-flash, gemini-2.5-flash=gemini-2.5-flash-lite",
            ),
            ("GEMINI_PROXY_BREAKER_FAILURES", "3"),
            ("GEMINI_PROXY_RETRY_BUDGET_PERCENT", "50"),
        ];
        let resilience = config(&vars).map(|c| c.engine.resilience).unwrap_or_default();
        assert_eq!(
            resilience.fallbacks.chain("gemini-2.5-pro"),
            vec!["gemini-2.5-flash", "gemini-2.5-flash-lite"]
        );
        assert_eq!(resilience.breaker.failures, 3);
        assert_eq!(resilience.retry_budget.percent, 50);
        let config_of = |extra: (&'static str, &'static str)| {
            let mut vars = vec![("GEMINI_API_KEYS", "AIzaA"), ("PROXY_KEYS", "gp-one"), extra];
            vars.dedup();
            config(&vars).map(|c| c.admission).unwrap_or_default()
        };
        assert!(!config_of(("GEMINI_PROXY_RETRY_EMPTY", "false")).retry_empty);
        assert_eq!(
            config_of(("GEMINI_PROXY_SSE_HEARTBEAT_SECS", "30")).sse_heartbeat_ms,
            30_000
        );
        vars.push(("GEMINI_PROXY_FALLBACK", "a=b,b=a"));
        vars.swap_remove(2);
        let error = config(&vars).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            error.starts_with("GEMINI_PROXY_FALLBACK: ") && error.contains("loop"),
            "{error}"
        );
    }

    #[test]
    fn supabase_wins_and_needs_its_key() {
        let vars = [
            ("SUPABASE_URL", "https://x.supabase.co/"),
            (
                "GEMINI_BASE_URL",
                "https://gateway.ai.cloudflare.com/v1/a/b/google-ai-studio/",
            ),
            ("GEMINI_PROXY_MAX_ATTEMPTS", "3"),
        ];
        assert_eq!(config(&vars), Err(ConfigError::MissingServiceRoleKey));
        let mut with_key = vars.to_vec();
        with_key.push(("SUPABASE_SERVICE_ROLE_KEY", "service"));
        let Ok(config) = config(&with_key) else {
            panic!("config should parse");
        };
        assert_eq!(
            config.source,
            KeySource::Supabase {
                url: "https://x.supabase.co".into(),
                service_role_key: Secret::new("service"),
            }
        );
        assert_eq!(
            config.upstream_base_url,
            "https://gateway.ai.cloudflare.com/v1/a/b/google-ai-studio"
        );
        assert_eq!(config.engine.retry.max_attempts, 3);
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(config(&[]), Err(ConfigError::NoKeySource));
        assert_eq!(
            config(&[("GEMINI_API_KEYS", ", ,"), ("PROXY_KEYS", "p")]),
            Err(ConfigError::Empty("GEMINI_API_KEYS"))
        );
        assert_eq!(
            config(&[("GEMINI_API_KEYS", "k"), ("PROXY_KEYS", "sha256:abc")]),
            Err(ConfigError::BadHash { position: 1 })
        );
        assert!(matches!(
            config(&[
                ("GEMINI_API_KEYS", "k"),
                ("PROXY_KEYS", "p"),
                ("GEMINI_PROXY_DEADLINE_SECS", "soon")
            ]),
            Err(ConfigError::NotANumber { .. })
        ));
        assert_eq!(
            config(&[
                ("GEMINI_API_KEYS", "k"),
                ("PROXY_KEYS", "p"),
                ("GEMINI_BASE_URL", "ftp://x")
            ]),
            Err(ConfigError::NotAUrl {
                name: "GEMINI_BASE_URL"
            })
        );
    }
}
