//! `gemini-proxy-web`: the operator dashboard and the proxy route in one process.

use anyhow::Context;
use clap::Parser;
use gemini_proxy_web::app::app;
use gemini_proxy_web::bundle::Bundle;
use gemini_proxy_web::config::{WebArgs, check_exposure};
use gemini_proxy_web::state::{AppState, Backing};
use proxy_axum::{ProxyRuntime, announce_listening, serve_then_stop};
use store_select::Backend;

/// The same allocator as `gemini-proxy`, for the same reason (its proxy route is
/// the same code).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = WebArgs::parse();
    let process = args.process.clone();
    process.run_main(run(args))
}

async fn run(args: WebArgs) -> anyhow::Result<()> {
    check_exposure(args.listen, args.admin_password.as_deref()).map_err(anyhow::Error::msg)?;
    let config = args.proxy.config().map_err(anyhow::Error::msg)?;
    let backend = Backend::open(&args.store).await?;
    let keys = backend.serving_keys(args.proxy.key_cache.clone());
    let runtime = ProxyRuntime::start(keys, backend.logs.clone(), config)
        .await
        .with_context(|| format!("cannot start: no key set from the {} store", backend.kind))?;
    backend.forward_changes(runtime.store_changed()).await;
    let backing = Backing {
        admin: backend.admin.clone(),
        key_store: backend.keys.clone(),
        proxy: runtime.state(),
        refresh: runtime.store_changed(),
    };
    let state = AppState::new(
        backing,
        args.admin_password.as_deref(),
        args.secure_cookies,
        Bundle::load(&args.site_root),
    );
    if !state.password.required() {
        tracing::warn!("no GEMINI_PROXY_ADMIN_PASSWORD: the dashboard is open to anyone on this machine");
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    announce_listening(addr)?;
    tracing::info!(%addr, store = backend.kind, upstream = %args.proxy.upstream, "gemini-proxy-web serving dashboard and proxy");
    serve_then_stop(listener, app(state), args.proxy.connection_limits(), runtime)
        .await
        .context("stopping")
}
