//! `gemini-proxy serve`: listen, proxy, and on SIGTERM/Ctrl-C stop accepting, let
//! in-flight streams finish (bounded), then flush logs.

use anyhow::Context;
use proxy_axum::{ProxyRuntime, announce_listening, proxy_router, serve_then_stop};

use crate::cli::ServeArgs;
use store_select::Backend;

pub async fn run(backend: &Backend, args: ServeArgs) -> anyhow::Result<()> {
    let config = args.proxy.config().map_err(anyhow::Error::msg)?;
    let keys = backend.serving_keys(args.proxy.key_cache.clone());
    let runtime = ProxyRuntime::start(keys, backend.logs.clone(), config)
        .await
        .with_context(|| {
            format!(
                "cannot start: no key set from the {} store and no usable key cache",
                backend.kind
            )
        })?;
    backend.forward_changes(runtime.store_changed()).await;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    announce_listening(addr)?;
    let health = runtime.state().health();
    let (keys, available, proxy_keys) = (
        health.upstream_keys,
        health.upstream_keys_available,
        health.proxy_keys,
    );
    tracing::info!(%addr, keys, available, proxy_keys, store = backend.kind, upstream = %args.proxy.upstream, "gemini-proxy serving");
    if keys == 0 {
        tracing::warn!("no upstream keys yet: add one with `gemini-proxy keys add <KEY>`");
    }
    let app = proxy_router(runtime.state());
    serve_then_stop(listener, app, args.proxy.connection_limits(), runtime)
        .await
        .context("stopping")
}
