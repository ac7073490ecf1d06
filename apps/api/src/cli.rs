//! Flags and environment variables. Every option has an env var; the README's
//! configuration table lists them all.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};
use proxy_axum::{ProcessArgs, ProxyArgs};
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
        /// May the key use the pass-through routes (files, cachedContents, tunedModels,
        /// batches, operations…)? `deny` limits it to generation, embeddings and models.
        #[arg(long, value_enum, default_value_t = Access::Allow)]
        passthrough: Access,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    /// Change what a client key may do; a running `serve` applies it at its next refresh.
    Update(ProxyKeyUpdateArgs),
    /// Revoke a client key by id; its next request is refused.
    Revoke { id: i64 },
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
