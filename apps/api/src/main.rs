//! `gemini-proxy`: the self-hosted Gemini Proxy. A thin binary: it parses flags and
//! environment into typed config and hands them to the libraries.

mod cli;
mod keys_cmd;
mod logs_cmd;
mod output;
mod proxy_keys_cmd;
mod serve;

use clap::Parser;

use crate::cli::{Cli, Command};
use store_select::Backend;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log_filter, cli.log_json);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = cli.worker_threads.filter(|n| *n > 0) {
        runtime.worker_threads(threads);
    }
    let result = match runtime.enable_all().build() {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(error) => Err(anyhow::anyhow!("cannot start the async runtime: {error}")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let backend = Backend::open(&cli.store).await?;
    let admin = backend.admin.as_ref();
    match cli.command {
        Command::Serve(args) => serve::run(&backend, args).await,
        Command::Keys(command) => keys_cmd::run(admin, command).await,
        Command::ProxyKeys(command) => proxy_keys_cmd::run(admin, command).await,
        Command::Logs(command) => logs_cmd::run(admin, command).await,
    }
}

/// Logs go to stderr so stdout stays for command output (and `listening on …`).
fn init_tracing(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
