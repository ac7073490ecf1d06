//! What every native server binary does around the router: announce where it listens,
//! keep small writes unbuffered, and know when to stop.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;

use axum::serve::{ListenerExt, TapIo};
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Prints `listening on http://ADDR` on stdout, flushed at once: the line scripts and
/// tests wait for (the port may have been chosen by the OS).
pub fn announce_listening(addr: SocketAddr) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{addr}")?;
    stdout.flush()
}

/// Sets TCP_NODELAY on every accepted connection. Answers are many small writes (SSE
/// chunks); without it, Nagle's algorithm meets the client's delayed ACK and holds
/// them for ~40 ms. The concrete type (not `impl Listener`) keeps axum's
/// `ConnectInfo<SocketAddr>` available to the router.
pub fn without_nagle(listener: TcpListener) -> TapIo<TcpListener, fn(&mut TcpStream)> {
    listener.tap_io(set_nodelay as fn(&mut TcpStream))
}

fn set_nodelay(stream: &mut TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
}

/// Serves `app` (with the client's address as `ConnectInfo<SocketAddr>`) until SIGTERM
/// or Ctrl-C; then accepts nothing new and gives in-flight requests, streams included,
/// at most `grace` to finish.
pub async fn serve_until_shutdown(
    listener: TcpListener,
    app: Router,
    grace: Duration,
) -> std::io::Result<()> {
    let (stopping_tx, mut stopping_rx) = watch::channel(false);
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(without_nagle(listener), service).with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: no new connections; waiting for in-flight requests");
        let _ = stopping_tx.send(true);
    });
    tokio::select! {
        result = server => result,
        () = async {
            let _ = stopping_rx.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(?grace, "grace period over; closing the remaining connections");
            Ok(())
        }
    }
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
