//! What every native server binary does around the router: announce where it listens,
//! serve with the connection limits, and know when to stop.

use std::io::Write;
use std::net::SocketAddr;

use axum::Router;

use axum::serve::{ListenerExt, TapIo};
use tokio::net::TcpListener;
use tokio::net::TcpStream;

use crate::connections::{ConnectionLimits, Stopped, fit_to_open_file_limit, serve_with_limits, set_nodelay};
use crate::runtime::{ProxyRuntime, ProxyState};

/// Prints `listening on http://ADDR` on stdout, flushed at once: the line scripts and
/// tests wait for (the port may have been chosen by the OS).
pub fn announce_listening(addr: SocketAddr) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{addr}")?;
    stdout.flush()
}

/// For tests that serve with plain `axum::serve`: sets TCP_NODELAY on every accepted
/// connection, as the binaries' listener does. The concrete type (not `impl
/// Listener`) keeps axum's `ConnectInfo<SocketAddr>` available to the router.
pub fn without_nagle(listener: TcpListener) -> TapIo<TcpListener, fn(&mut TcpStream)> {
    listener.tap_io(set_nodelay as fn(&mut TcpStream))
}

/// Serves `app` until SIGTERM or Ctrl-C; then accepts nothing new and gives in-flight
/// requests, streams included, at most the limits' grace to finish. What still runs
/// then is cut and logged as `cut_at_shutdown` through `proxy`'s log writer, which
/// the caller flushes next (`ProxyRuntime::shutdown`).
pub async fn serve_until_shutdown(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    proxy: &ProxyState,
) -> std::io::Result<Stopped> {
    let limits = ConnectionLimits {
        max_connections: fit_to_open_file_limit(limits.max_connections),
        ..limits
    };
    serve_with_limits(listener, app, limits, shutdown_signal(), || {
        proxy.cut_at_shutdown()
    })
    .await
}

/// A binary's whole serving life: serve until SIGTERM/Ctrl-C (bounded by the grace),
/// then flush the runtime's key state and logs. An error if serving failed or if any
/// log record was lost, so the exit status tells a supervisor.
pub async fn serve_then_stop(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    runtime: ProxyRuntime,
) -> std::io::Result<()> {
    let state = runtime.state();
    let stopped = serve_until_shutdown(listener, app, limits, &state).await;
    let dropped = runtime.shutdown().await;
    let stopped = stopped?;
    if dropped > 0 {
        return Err(std::io::Error::other(format!(
            "{dropped} log records were dropped (the store could not keep up); see the warnings above"
        )));
    }
    tracing::info!(cut = stopped.cut_connections, "stopped; logs flushed");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
