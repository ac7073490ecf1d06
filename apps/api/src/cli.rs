//! Flags and environment variables. Every option has an env var; the README's
//! configuration table lists them all.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use store_select::StoreArgs;

#[derive(Debug, Parser)]
#[command(name = "gemini-proxy", version, about = "A key-pool proxy for the Gemini API")]
pub struct Cli {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Log filter, e.g. `info` or `proxy_axum=debug`.
    #[arg(long = "log", env = "GEMINI_PROXY_LOG", default_value = "info", global = true)]
    pub log_filter: String,
    /// Write logs as JSON lines.
    #[arg(long, env = "GEMINI_PROXY_LOG_JSON", global = true)]
    pub log_json: bool,
    /// Worker threads of the async runtime (default: one per CPU).
    #[arg(long, env = "GEMINI_PROXY_WORKER_THREADS", global = true)]
    pub worker_threads: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy server.
    Serve(ServeArgs),
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
    /// Upstream Gemini API base URL (Google's, a Cloudflare AI Gateway, a test server).
    #[arg(
        long,
        env = "GEMINI_BASE_URL",
        default_value = "https://generativelanguage.googleapis.com"
    )]
    pub upstream: String,
    /// Attempts per request, across different keys.
    #[arg(long, env = "GEMINI_PROXY_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,
    /// Total seconds a request may spend on attempts before upstream answers.
    #[arg(long, env = "GEMINI_PROXY_DEADLINE_SECS", default_value_t = 600)]
    pub deadline_secs: u64,
    /// Seconds one attempt may wait for upstream's response headers.
    #[arg(long, env = "GEMINI_PROXY_ATTEMPT_TIMEOUT_SECS", default_value_t = 300)]
    pub attempt_timeout_secs: u64,
    /// Largest request body in MiB.
    #[arg(long, env = "GEMINI_PROXY_MAX_BODY_MB", default_value_t = 64)]
    pub max_body_mb: usize,
    /// Store request bodies (first 64 KiB) in the log.
    #[arg(long, env = "GEMINI_PROXY_LOG_BODIES")]
    pub log_bodies: bool,
    /// Milliseconds between re-reads of keys from the database.
    #[arg(long, env = "GEMINI_PROXY_REFRESH_MS", default_value_t = 2000)]
    pub refresh_ms: u64,
    /// Seconds in-flight requests get to finish after SIGTERM/Ctrl-C.
    #[arg(long, env = "GEMINI_PROXY_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
    /// Where `serve` keeps the last key set read from PostgreSQL/Supabase, to start
    /// while the database is down.
    #[arg(
        long,
        env = "GEMINI_PROXY_KEY_CACHE",
        default_value = "gemini-proxy-keys.cache.json"
    )]
    pub key_cache: PathBuf,
    /// Log records that may wait for the database before new ones are dropped (and counted).
    #[arg(long, env = "GEMINI_PROXY_LOG_QUEUE", default_value_t = 10_000)]
    pub log_queue: usize,
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

#[derive(Debug, Subcommand)]
pub enum ProxyKeysCommand {
    /// Create a client key; the secret is printed once, on the first line of stdout.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a client key by id; its next request is refused.
    Revoke { id: i64 },
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
    /// Delete records older than the given age (e.g. 30d).
    Prune {
        #[arg(long)]
        older_than: String,
    },
}
