//! The HTTP listener both native binaries serve from: hyper's connection handling with
//! the limits `axum::serve` lacks. A head must arrive within the header timeout, an
//! idle kept-alive connection closes after the idle timeout, at most
//! `max_connections` are open at once (the rest wait in the kernel's accept queue),
//! and shutdown is bounded: after the grace period whatever still runs is cut, and
//! each cut request is logged as such before this returns, while the log writer
//! still runs.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use futures_util::task::AtomicWaker;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use proxy_core::defaults;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

/// Connection-level limits and the shutdown grace (the binaries' flags fill them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(defaults::HEADER_TIMEOUT_SECS),
            idle_timeout: Duration::from_secs(defaults::IDLE_TIMEOUT_SECS),
            max_connections: defaults::MAX_CONNECTIONS,
            shutdown_grace: Duration::from_secs(defaults::SHUTDOWN_GRACE_SECS),
        }
    }
}

/// How serving ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stopped {
    /// Connections still busy when the grace period ran out, and cut.
    pub cut_connections: usize,
}

/// Serves `app` on `listener` until `shutdown` resolves; then accepts nothing new,
/// lets in-flight requests finish for at most `limits.shutdown_grace`, calls
/// `on_cut` (so the requests about to be dropped know why) and drops the rest. Each
/// request sees its client's address as `ConnectInfo<SocketAddr>`.
pub async fn serve_with_limits(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    on_cut: impl FnOnce(),
) -> io::Result<Stopped> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stopping_tx, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.map_err(io::Error::other)?,
        };
        let (stream, addr) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
        };
        let connection = Connection {
            app: app.clone(),
            addr,
            limits,
            stopping: stopping.clone(),
            _slot: slot,
        };
        connections.spawn(connection.serve(stream));
    }
    drop(listener);
    tracing::info!("shutting down: no new connections; waiting for in-flight requests");
    let _ = stopping_tx.send(true);
    let all_done = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.shutdown_grace, all_done)
        .await
        .is_ok()
    {
        return Ok(Stopped::default());
    }
    let cut_connections = connections.len();
    tracing::warn!(
        grace = ?limits.shutdown_grace,
        cut_connections,
        "grace period over; cutting the remaining requests"
    );
    on_cut();
    // Aborting drops each connection's futures and bodies here, on this side of the
    // log writer's shutdown: their records are queued before it flushes.
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    Ok(Stopped { cut_connections })
}

/// Too many open files, or a connection reset before it was accepted: the listener
/// itself is fine. Waiting a moment lets connections close (as axum::serve does).
async fn accept_failed(error: io::Error) {
    let per_connection = matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused
    );
    if per_connection {
        return;
    }
    tracing::error!(%error, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

struct Connection {
    app: Router,
    addr: SocketAddr,
    limits: ConnectionLimits,
    stopping: watch::Receiver<bool>,
    /// Frees a place under `max_connections` when the connection ends.
    _slot: OwnedSemaphorePermit,
}

/// Sets TCP_NODELAY. Answers are many small writes (SSE chunks); without it, Nagle's
/// algorithm meets the client's delayed ACK and holds them for ~40 ms.
pub(crate) fn set_nodelay(stream: &mut TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
}

impl Connection {
    async fn serve(self, mut stream: TcpStream) {
        let Self {
            app,
            addr,
            limits,
            mut stopping,
            _slot,
        } = self;
        set_nodelay(&mut stream);
        let requests = Arc::new(InFlightRequests::default());
        let io = TokioIo::new(WatchedIo::new(stream, requests.clone(), limits));
        let service = Counted { app, addr, requests };
        let builder = auto::Builder::new(TokioExecutor::new());
        let connection = builder.serve_connection_with_upgrades(io, TowerToHyperService::new(service));
        let mut connection = pin!(connection);
        let stop = async move {
            let _ = stopping.wait_for(|stopping| *stopping).await;
        };
        let result = tokio::select! {
            result = connection.as_mut() => result,
            () = stop => {
                // Idle connections close now; busy ones after their answer.
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(error) = result {
            tracing::debug!(%error, client = %addr, "connection ended with an error");
        }
    }
}

/// Requests of one connection whose answer has not ended yet. While there is one,
/// the connection is busy and no head or idle timer runs; when the last ends, the
/// reader is woken so the idle timer starts.
#[derive(Default)]
struct InFlightRequests {
    count: AtomicUsize,
    reader: AtomicWaker,
}

impl InFlightRequests {
    fn busy(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    fn start(self: &Arc<Self>) -> RequestGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        RequestGuard {
            requests: Some(self.clone()),
        }
    }
}

/// Held from a request's arrival until its answer's body ended or was dropped.
struct RequestGuard {
    requests: Option<Arc<InFlightRequests>>,
}

impl RequestGuard {
    fn end(&mut self) {
        if let Some(requests) = self.requests.take()
            && requests.count.fetch_sub(1, Ordering::AcqRel) == 1
        {
            requests.reader.wake();
        }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.end();
    }
}

/// The app as hyper's service: each request gets its client's address and is marked
/// in flight until its answer's body ends.
#[derive(Clone)]
struct Counted {
    app: Router,
    addr: SocketAddr,
    requests: Arc<InFlightRequests>,
}

impl tower_service::Service<http::Request<hyper::body::Incoming>> for Counted {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower_service::Service::<http::Request<Body>>::poll_ready(&mut self.app, cx)
    }

    fn call(&mut self, request: http::Request<hyper::body::Incoming>) -> Self::Future {
        let guard = self.requests.start();
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(self.addr));
        let answer = self.app.call(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| Body::new(GuardedBody { inner: body, guard })))
        })
    }
}

/// An answer's body that ends its request's guard with it.
struct GuardedBody {
    inner: Body,
    guard: RequestGuard,
}

impl HttpBody for GuardedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.guard.end();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Where a connection is between requests, for its read timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// A request is in flight: no timer (its body has its own pace, its answer may
    /// be silent for minutes while a model thinks).
    Busy,
    /// Waiting for a kept-alive connection's next request: the idle timeout.
    Idle,
    /// A head is on its way (or the connection is new): the header timeout.
    Head,
}

/// The client's socket with the head and idle timers. hyper alone times the wait for
/// a head from the moment a connection is idle, which would make the header timeout
/// the keep-alive timeout too; here each has its own.
struct WatchedIo {
    inner: TcpStream,
    requests: Arc<InFlightRequests>,
    limits: ConnectionLimits,
    phase: Phase,
    /// When the current phase's time is up.
    deadline: Instant,
    /// Armed at or before `deadline`; moved only when it must fire earlier or when it
    /// fires early, so a busy kept-alive connection does not touch the timer wheel
    /// on every request.
    timer: Pin<Box<Sleep>>,
}

impl WatchedIo {
    fn new(inner: TcpStream, requests: Arc<InFlightRequests>, limits: ConnectionLimits) -> Self {
        Self {
            inner,
            requests,
            limits,
            phase: Phase::Head,
            deadline: Instant::now() + limits.header_timeout,
            timer: Box::pin(tokio::time::sleep(limits.header_timeout)),
        }
    }

    fn enter(&mut self, phase: Phase) {
        let wait = match phase {
            Phase::Idle => self.limits.idle_timeout,
            Phase::Head | Phase::Busy => self.limits.header_timeout,
        };
        self.phase = phase;
        self.deadline = Instant::now() + wait;
        if self.deadline < self.timer.deadline() {
            self.timer.as_mut().reset(self.deadline);
        }
    }

    /// True once the phase's deadline passed (re-arming a timer that fired early).
    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        while self.timer.as_mut().poll(cx).is_ready() {
            if Instant::now() >= self.deadline {
                return true;
            }
            let deadline = self.deadline;
            self.timer.as_mut().reset(deadline);
        }
        false
    }
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.requests.busy() {
            this.phase = Phase::Busy;
            this.requests.reader.register(cx.waker());
            // The last request may have ended between the check and the register.
            if this.requests.busy() {
                return polled;
            }
        }
        let got_bytes = buf.filled().len() > before;
        match (this.phase, got_bytes) {
            (Phase::Busy, false) => this.enter(Phase::Idle),
            (Phase::Busy | Phase::Idle, true) => this.enter(Phase::Head),
            (Phase::Idle | Phase::Head, _) => {}
        }
        if polled.is_pending() && this.timed_out(cx) {
            let what = match this.phase {
                Phase::Idle => "idle connection closed",
                _ => "request head not received in time",
            };
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)));
        }
        polled
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The open-file limit decides how many connections can really be open: each proxied
/// request holds its client's socket and an upstream one, and the store, the logs and
/// the listener need a few. Raises the soft limit to the hard one first (as Go's
/// runtime does), then lowers `wanted` to fit, with a warning.
pub fn fit_to_open_file_limit(wanted: usize) -> usize {
    const RESERVED_FILES: u64 = 64;
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::debug!(%error, "cannot read or raise the open-file limit");
            return wanted;
        }
    };
    let fits = usize::try_from(limit.saturating_sub(RESERVED_FILES) / 2).unwrap_or(usize::MAX);
    if fits < wanted {
        tracing::warn!(
            open_file_limit = limit,
            max_connections = fits,
            wanted,
            "the open-file limit allows fewer connections than configured; raise it (ulimit -n) to serve more"
        );
    }
    wanted.min(fits).max(1)
}
