//! Flags and environment variables. Every option has an env var; the README's
//! configuration table lists them all.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};
use proxy_axum::{ProcessArgs, ProxyArgs};
use proxy_core::policy::BudgetPeriod;
use store_select::StoreArgs;

#[derive(Debug, Parser)]
#[command(name = "gemini-proxy", version, about = "A key-pool proxy for the Gemini API")]
pub struct Cli {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub process: ProcessArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy server.
    Serve(Box<ServeArgs>),
    /// Manage upstream Gemini API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage the keys clients use to call the proxy.
    #[command(subcommand, name = "proxy-keys")]
    ProxyKeys(ProxyKeysCommand),
    /// Read and prune the request log.
    #[command(subcommand)]
    Logs(LogsCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen one is printed).
    #[arg(long, env = "GEMINI_PROXY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub proxy: ProxyArgs,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add upstream keys: as arguments, or `-` to read one per line from stdin.
    Add {
        #[arg(required = true)]
        keys: Vec<String>,
        /// Name for the key (numbered when several are added).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        limits: KeyLimitArgs,
    },
    /// Change a key's limits (for every model, or with --model for one); 0 clears one.
    Update {
        id: i64,
        #[command(flatten)]
        limits: KeyLimitArgs,
    },
    /// List keys (masked) with their state.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a key by id.
    Remove { id: i64 },
    /// Use a key again (also clears an invalid mark and cooldowns).
    Enable { id: i64 },
    /// Stop using a key.
    Disable { id: i64 },
}

/// An upstream key's limits as `keys add` and `keys update` take them. Each given one
/// replaces the key's; 0 clears it.
#[derive(Clone, Debug, Default, Args)]
pub struct KeyLimitArgs {
    /// Requests per minute (0: no limit).
    #[arg(long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
    pub rpm: Option<u64>,
    /// Tokens per minute (0: no limit).
    #[arg(long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
    pub tpm: Option<u64>,
    /// Requests per day, reset at midnight Pacific like Google's (0: no limit).
    #[arg(long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
    pub rpd: Option<u64>,
    /// The model these limits are for (default: every model without its own).
    #[arg(long, value_name = "MODEL", value_parser = parse_model)]
    pub model: Option<String>,
}

impl KeyLimitArgs {
    /// Whether any limit is given (a model alone changes nothing).
    pub fn any(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some() || self.rpd.is_some()
    }
}

#[derive(Debug, Subcommand)]
pub enum ProxyKeysCommand {
    /// Create a client key; the secret is printed once, on the first line of stdout.
    Create {
        #[arg(long)]
        name: String,
        /// May the key use the pass-through routes (files, cachedContents, tunedModels,
        /// batches, operations…)? `deny` limits it to generation, embeddings and models.
        #[arg(long, value_enum, default_value_t = Access::Allow)]
        passthrough: Access,
        #[command(flatten)]
        policy: PolicyArgs,
        #[arg(long)]
        json: bool,
    },
    /// List client keys with their policy.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Change what a client key may do; a running `serve` applies it at its next refresh.
    Update(ProxyKeyUpdateArgs),
    /// Rename a client key.
    Rename { id: i64, name: String },
    /// Delete a client key (its log records stay); its next request is refused.
    Delete { id: i64 },
    /// Revoke a client key by id; its next request is refused.
    Revoke { id: i64 },
    /// Requests, tokens and cost today and this month (UTC), and what each limit leaves.
    Usage {
        /// One key (default: every key).
        id: Option<i64>,
        #[arg(long)]
        json: bool,
    },
}

/// `proxy-keys update ID [--flag …]`: every flag is optional and changes one thing;
/// what is not given stays as it is.
#[derive(Debug, Args)]
pub struct ProxyKeyUpdateArgs {
    pub id: i64,
    /// Allow or deny the pass-through routes (files, cachedContents, tunedModels,
    /// batches, operations…).
    #[arg(long, value_enum)]
    pub passthrough: Option<Access>,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// A proxy key's limits as `create` and `update` take them. In `update`, 0 or `none`
/// clears a limit; in `create` it means no limit.
#[derive(Clone, Debug, Default, Args)]
pub struct PolicyArgs {
    /// Models the key may use, comma-separated: exact names or globs (gemini-2.5-*);
    /// `none` or "": any model.
    #[arg(long, value_name = "A,B", value_parser = parse_models)]
    pub models: Option<Models>,
    /// Requests per minute (0 or none: no limit).
    #[arg(long, value_name = "N", value_parser = parse_limit, allow_negative_numbers = true)]
    pub rpm: Option<Limit>,
    /// Tokens per minute (0 or none: no limit).
    #[arg(long, value_name = "N", value_parser = parse_limit, allow_negative_numbers = true)]
    pub tpm: Option<Limit>,
    /// Tokens per UTC day (0 or none: no limit).
    #[arg(long, value_name = "N", value_parser = parse_limit, allow_negative_numbers = true)]
    pub tokens_per_day: Option<Limit>,
    /// A budget in USD per --budget-period, by the price table (0 or none: no budget).
    #[arg(long, value_name = "USD", value_parser = parse_budget, allow_negative_numbers = true)]
    pub budget_usd: Option<Budget>,
    /// What the budget is counted over: day or month (UTC; default month).
    #[arg(long, value_name = "day|month", value_parser = parse_period)]
    pub budget_period: Option<BudgetPeriod>,
    /// When the key stops working: RFC 3339 (2027-01-31T18:00:00Z) or a date
    /// (2027-01-31, midnight UTC); none: never.
    #[arg(long, value_name = "TIME", value_parser = parse_expiry)]
    pub expires: Option<Expiry>,
}

/// `--models`: the list; empty allows every model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Models(pub Vec<String>);

/// A count limit: `None` for 0 or `none` (no limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit(pub Option<u64>);

/// A budget in USD: `None` for 0 or `none` (no budget); always finite and ≥ 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget(pub Option<f64>);

/// An expiry in unix ms: `None` for `none` (never).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expiry(pub Option<u64>);

fn is_none(text: &str) -> bool {
    text.trim().eq_ignore_ascii_case("none")
}

/// A whole number ≥ 0.
fn parse_count(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<u64>()
        .map_err(|_| format!("{text:?} is not a whole number ≥ 0 (0 clears the limit)"))
}

fn parse_limit(text: &str) -> Result<Limit, String> {
    if is_none(text) {
        return Ok(Limit(None));
    }
    let n = text
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("{text:?} is not a whole number ≥ 0 (0 or none: no limit)"))?;
    Ok(Limit((n > 0).then_some(n)))
}

fn parse_budget(text: &str) -> Result<Budget, String> {
    if is_none(text) {
        return Ok(Budget(None));
    }
    let bad = || format!("{text:?} is not an amount of USD ≥ 0 (e.g. 25 or 2.50; 0 or none: no budget)");
    let usd = text
        .trim()
        .trim_start_matches('$')
        .parse::<f64>()
        .map_err(|_| bad())?;
    if !usd.is_finite() || usd < 0.0 {
        return Err(bad());
    }
    Ok(Budget((usd > 0.0).then_some(usd)))
}

fn parse_period(text: &str) -> Result<BudgetPeriod, String> {
    BudgetPeriod::parse(text).ok_or_else(|| format!("{text:?} is not a budget period (day or month)"))
}

fn parse_expiry(text: &str) -> Result<Expiry, String> {
    if is_none(text) {
        return Ok(Expiry(None));
    }
    proxy_core::civil::parse_instant(text).map(|ms| Expiry(Some(ms)))
}

fn parse_model(text: &str) -> Result<String, String> {
    let model = text.trim().trim_start_matches("models/");
    if model.is_empty() || model.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{text:?} is not a model name"));
    }
    Ok(model.to_string())
}

fn parse_models(text: &str) -> Result<Models, String> {
    if is_none(text) || text.trim().is_empty() {
        return Ok(Models(Vec::new()));
    }
    let mut models = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let model = parse_model(part)?;
        if !models.contains(&model) {
            models.push(model);
        }
    }
    Ok(Models(models))
}

/// A permission as the flags spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Access {
    Allow,
    Deny,
}

impl Access {
    pub fn allowed(self) -> bool {
        self == Access::Allow
    }
}

/// A SHA-256 in hex, as records show it (either case; kept lower case).
fn parse_sha256(given: &str) -> Result<String, String> {
    let hex = given.trim();
    match hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        true => Ok(hex.to_ascii_lowercase()),
        false => Err("a SHA-256 is 64 hexadecimal digits".into()),
    }
}

#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    /// Recent requests, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only requests newer than this (e.g. 15m, 24h, 7d).
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        model: Option<String>,
        /// Upstream key id (any attempt).
        #[arg(long)]
        key: Option<i64>,
        #[arg(long)]
        proxy_key: Option<i64>,
        #[arg(long)]
        status: Option<u16>,
        /// Only requests with this prompt (the records' `prompt_sha256`: 64 hex digits).
        #[arg(long, value_name = "HEX", value_parser = parse_sha256)]
        prompt_sha256: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Totals per model and per key.
    Stats {
        #[arg(long, default_value = "24h")]
        since: String,
        #[arg(long)]
        json: bool,
    },
    /// Check the log's hash chains: every record as it was written, none removed from
    /// the middle of a chain or slipped in. Exits 1 if a chain is broken.
    Verify {
        /// Only chains written in this span (e.g. 7d); default: the whole log.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Delete records older than the given age (e.g. 30d).
    Prune {
        #[arg(long)]
        older_than: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_budgets_and_dates_parse_or_say_why_not() {
        assert_eq!(parse_limit("60"), Ok(Limit(Some(60))));
        assert_eq!(parse_limit("0"), Ok(Limit(None)));
        assert_eq!(parse_limit("None"), Ok(Limit(None)));
        for bad in ["-5", "1.5", "x", ""] {
            assert!(parse_limit(bad).is_err(), "{bad}");
            assert!(parse_count(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_budget("2.50"), Ok(Budget(Some(2.5))));
        assert_eq!(parse_budget("$3"), Ok(Budget(Some(3.0))));
        assert_eq!(parse_budget("0"), Ok(Budget(None)));
        for bad in ["-1", "NaN", "inf", "ten"] {
            assert!(parse_budget(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_period("Day"), Ok(BudgetPeriod::Day));
        assert!(parse_period("week").is_err());
        assert_eq!(parse_expiry("1970-01-02"), Ok(Expiry(Some(86_400_000))));
        assert_eq!(parse_expiry("none"), Ok(Expiry(None)));
        assert!(parse_expiry("tomorrow").is_err());
        assert_eq!(
            parse_models(" a, models/b ,,a"),
            Ok(Models(vec!["a".into(), "b".into()]))
        );
        assert_eq!(parse_models("none"), Ok(Models(Vec::new())));
        assert_eq!(parse_models(""), Ok(Models(Vec::new())));
        assert!(parse_models("a b").is_err());
    }
}
