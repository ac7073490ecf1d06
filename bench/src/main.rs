//! `gemini-proxy-bench`: latency, throughput and CPU per request of the proxy
//! against the fake Gemini server, beside a direct path and nginx, all in one
//! run. See bench/README.md.

mod client;
mod load;
mod machine;
mod procs;
mod report;
mod run;
mod stats;
mod targets;
#[cfg(test)]
mod testserver;
mod ttfb;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "gemini-proxy-bench",
    // A later flag wins, so bench/run.sh defaults (--out...) can be overridden.
    args_override_self = true,
    about = "Benchmark gemini-proxy against a direct path to fake-gemini and against nginx"
)]
pub struct Args {
    /// The proxy binary (`gemini-proxy`).
    #[arg(long, default_value = "target/release/gemini-proxy")]
    pub proxy_bin: PathBuf,
    /// The dashboard binary (`gemini-proxy-web`), for the web row.
    #[arg(long, default_value = "target/release/gemini-proxy-web")]
    pub web_bin: PathBuf,
    /// PostgreSQL server for the postgres row: a fresh database is created on it
    /// for the run (and dropped after), the schema's migrations applied with psql.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub postgres_url: String,
    /// The fake Gemini server binary.
    #[arg(long, default_value = "target/release/fake-gemini")]
    pub mock_bin: PathBuf,
    /// Concurrency levels (closed-loop workers, one connection each).
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    pub levels: Vec<usize>,
    /// Measured seconds per target per level, split across the rounds.
    #[arg(long, default_value_t = 6.0)]
    pub duration_secs: f64,
    /// Measure a fixed number of requests per target per level instead of a
    /// duration (split across the rounds).
    #[arg(long)]
    pub requests_per_level: Option<u64>,
    /// Unrecorded warmup before each measured round, in seconds.
    #[arg(long, default_value_t = 0.5)]
    pub warmup_secs: f64,
    /// Rounds per level; each round runs every target once, and each round
    /// rotates which target goes first (two targets: ABBA). Several short rounds
    /// average out where the kernel happens to place the threads.
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    /// Sequential streaming requests per target for time-to-first-byte.
    #[arg(long, default_value_t = 300)]
    pub ttfb_requests: usize,
    /// Unrecorded streaming requests per target before each block of TTFB samples.
    #[arg(long, default_value_t = 30)]
    pub ttfb_warmup: usize,
    /// Threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
    /// Per-request timeout in milliseconds; a timeout counts as an error.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Only measure the direct path (no proxy binary needed); same as `--targets direct`.
    #[arg(long, conflicts_with = "targets")]
    pub direct_only: bool,
    /// Targets to measure, comma-separated (default: all; one that cannot be
    /// started, such as nginx not installed or Redis not answering, is skipped
    /// with a note).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub targets: Option<Vec<targets::Kind>>,
    /// The nginx binary; without a path, looked up on PATH, then /usr/sbin.
    #[arg(long, default_value = "nginx")]
    pub nginx_bin: PathBuf,
    /// Redis for the governed row (`REDIS_URL` of that proxy; a prefix unique to
    /// the run keeps its counts apart).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Governed row without the key limits (Redis only): for a `gemini-proxy`
    /// whose `keys add` / `proxy-keys create` do not take limit flags yet.
    #[arg(long)]
    pub governed_no_limits: bool,
    /// A line for the report's notes (e.g. "machine shared with two builds"); repeatable.
    #[arg(long = "note")]
    pub notes: Vec<String>,
    /// Also write the Markdown report to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run::run(&args) {
        Ok(markdown) => {
            println!("{markdown}");
            if let Some(path) = &args.out {
                if let Err(e) = write_report(path, &markdown) {
                    eprintln!("error: writing {}: {e:#}", path.display());
                    return ExitCode::FAILURE;
                }
                eprintln!("report written to {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn write_report(path: &std::path::Path, markdown: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, markdown)
}
