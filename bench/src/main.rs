//! `gemini-proxy-bench`: latency and throughput of the proxy against the fake
//! Gemini server, direct vs proxied, in one run. See bench/README.md.

mod client;
mod load;
mod machine;
mod procs;
mod report;
mod run;
mod stats;
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
    about = "Benchmark gemini-proxy against a direct path to fake-gemini"
)]
pub struct Args {
    /// The proxy binary (`gemini-proxy`).
    #[arg(long, default_value = "target/release/gemini-proxy")]
    pub proxy_bin: PathBuf,
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
    /// Alternating direct/proxy rounds per level (ABBA order). Several short
    /// rounds average out where the kernel happens to place the threads.
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    /// Sequential streaming requests per path for time-to-first-byte.
    #[arg(long, default_value_t = 300)]
    pub ttfb_requests: usize,
    /// Unrecorded streaming requests per path before the TTFB samples.
    #[arg(long, default_value_t = 30)]
    pub ttfb_warmup: usize,
    /// Threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
    /// Per-request timeout in milliseconds; a timeout counts as an error.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Only measure the direct path (no proxy binary needed).
    #[arg(long)]
    pub direct_only: bool,
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
