//! `gemini-proxy`: the self-hosted Gemini Proxy. A thin binary: it parses flags and
//! environment into typed config and hands them to the libraries.

mod cli;
mod keys_cmd;
mod logs_cmd;
mod output;
mod proxy_keys_cmd;
mod serve;

use clap::Parser;

/// mimalloc, not glibc's malloc: a proxied request allocates and frees a few hundred
/// small blocks across threads, and glibc spent 15% of the proxy's CPU on them
/// (the README's performance section has the before and after).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use crate::cli::{Cli, Command};
use store_select::Backend;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let process = cli.process.clone();
    process.run_main(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // A command that could do nothing is refused before a store is opened (or created).
    match &cli.command {
        Command::ProxyKeys(command) => proxy_keys_cmd::check(command)?,
        Command::Keys(command) => keys_cmd::check(command)?,
        _ => {}
    }
    let backend = Backend::open(&cli.store).await?;
    let admin = backend.admin.as_ref();
    match cli.command {
        Command::Serve(args) => serve::run(&backend, *args).await,
        Command::Keys(command) => keys_cmd::run(admin, command).await,
        Command::ProxyKeys(command) => proxy_keys_cmd::run(admin, command).await,
        Command::Logs(command) => logs_cmd::run(admin, command).await,
    }
}
