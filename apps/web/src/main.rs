//! `gemini-proxy-web`: the operator dashboard and the proxy route in one process.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use gemini_proxy_web::app::app;
use gemini_proxy_web::bundle::Bundle;
use gemini_proxy_web::config::{WebArgs, check_exposure};
use gemini_proxy_web::state::{AppState, Backing};
use proxy_axum::{ProxyConfig, ProxyRuntime, announce_listening, shutdown_signal, without_nagle};
use store_select::Backend;

fn main() -> std::process::ExitCode {
    let args = WebArgs::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(run(args)),
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

async fn run(args: WebArgs) -> anyhow::Result<()> {
    check_exposure(args.listen, args.admin_password.as_deref()).map_err(anyhow::Error::msg)?;
    let backend = Backend::open(&args.store).await?;
    let config = ProxyConfig {
        upstream_base_url: args.upstream.clone(),
        refresh_interval: Duration::from_millis(args.refresh_ms.max(50)),
        ..ProxyConfig::default()
    };
    let keys = backend.serving_keys(args.key_cache.clone());
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
    tracing::info!(%addr, store = backend.kind, "gemini-proxy-web serving dashboard and proxy");
    let service = app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(without_nagle(listener), service)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server error")?;
    runtime.shutdown().await;
    Ok(())
}
