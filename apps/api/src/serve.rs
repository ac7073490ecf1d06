//! `gemini-proxy serve`: listen, proxy, and on SIGTERM/Ctrl-C stop accepting, let
//! in-flight streams finish (bounded), then flush logs.

use std::time::Duration;

use anyhow::Context;
use proxy_axum::{
    ProxyConfig, ProxyRuntime, announce_listening, proxy_router, shutdown_signal, without_nagle,
};
use proxy_core::EngineConfig;
use proxy_core::retry::RetryPolicy;
use tokio::sync::watch;

use crate::cli::ServeArgs;
use store_select::Backend;

pub async fn run(backend: &Backend, args: ServeArgs) -> anyhow::Result<()> {
    let config = proxy_config(&args);
    let keys = backend.serving_keys(args.key_cache.clone());
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
    let (keys, available, proxy_keys) = runtime.state().counts();
    tracing::info!(%addr, keys, available, proxy_keys, store = backend.kind, upstream = %args.upstream, "gemini-proxy serving");
    if keys == 0 {
        tracing::warn!("no upstream keys yet: add one with `gemini-proxy keys add <KEY>`");
    }

    let (stopping_tx, mut stopping_rx) = watch::channel(false);
    let app = proxy_router(runtime.state());
    let server = axum::serve(without_nagle(listener), app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: no new connections; waiting for in-flight requests");
        let _ = stopping_tx.send(true);
    });
    let grace = Duration::from_secs(args.shutdown_grace_secs);
    tokio::select! {
        result = server => result.context("server error")?,
        () = async {
            let _ = stopping_rx.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!(?grace, "grace period over; closing the remaining connections"),
    }
    runtime.shutdown().await;
    tracing::info!("stopped; logs flushed");
    Ok(())
}

fn proxy_config(args: &ServeArgs) -> ProxyConfig {
    let retry = RetryPolicy {
        max_attempts: args.max_attempts.max(1),
        deadline_ms: args.deadline_secs.saturating_mul(1000),
        ..RetryPolicy::default()
    };
    let engine = EngineConfig {
        retry,
        attempt_timeout_ms: args.attempt_timeout_secs.saturating_mul(1000),
        ..EngineConfig::default()
    };
    ProxyConfig {
        upstream_base_url: args.upstream.clone(),
        engine,
        max_body_bytes: args.max_body_mb.saturating_mul(1024 * 1024),
        log_bodies: args.log_bodies,
        refresh_interval: Duration::from_millis(args.refresh_ms.max(50)),
        log_queue_capacity: args.log_queue.max(1),
        ..ProxyConfig::default()
    }
}
