//! What every native server binary does around the router: announce where it listens,
//! keep small writes unbuffered, and know when to stop.

use std::io::Write;
use std::net::SocketAddr;

use axum::serve::{ListenerExt, TapIo};
use tokio::net::TcpListener;
use tokio::net::TcpStream;

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
