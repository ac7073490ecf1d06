//! One HTTP/1.1 keep-alive connection to a target (the mock, nginx or a proxy).
//!
//! We use hyper's low-level `client::conn` API rather than a pooled client so
//! that each load worker owns exactly one connection: the concurrency level
//! is then exactly the number of in-flight requests and open sockets, and no
//! pool bookkeeping sits in the measured path.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Model name in the request path; the fake server accepts any.
const MODEL: &str = "gemini-2.0-flash";

/// A small, realistic generateContent body (same for both calls).
const REQUEST_BODY: &str = r#"{"contents":[{"role":"user","parts":[{"text":"Say hello in one word."}]}]}"#;

/// Where to send requests and with which key.
#[derive(Debug, Clone)]
pub struct Target {
    /// The target's name ("direct", "nginx", "proxy", "governed", "resilient").
    pub label: &'static str,
    pub addr: SocketAddr,
    /// Sent as `x-goog-api-key`: an upstream key for the mock (directly or
    /// through nginx, which forwards it as is), a proxy client key for a proxy.
    api_key: HeaderValue,
    host: HeaderValue,
    /// Send `Cache-Control: no-cache` (the resilient row: every request misses).
    no_cache: bool,
}

impl Target {
    pub fn new(label: &'static str, addr: SocketAddr, api_key: &str) -> anyhow::Result<Self> {
        Ok(Self {
            label,
            addr,
            api_key: HeaderValue::from_str(api_key).context("api key is not a valid header")?,
            host: HeaderValue::from_str(&addr.to_string()).context("bad host header")?,
            no_cache: false,
        })
    }

    /// Every request asks past a response cache, so a proxy's cache takes its miss path.
    pub fn bypassing_cache(mut self) -> Self {
        self.no_cache = true;
        self
    }
}

/// Which Gemini call to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Generate,
    Stream,
}

impl Call {
    fn path(self) -> String {
        match self {
            Call::Generate => format!("/v1beta/models/{MODEL}:generateContent"),
            Call::Stream => format!("/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"),
        }
    }
}

/// An open connection. Dropping it aborts the connection task so sockets do
/// not linger between benchmark rounds.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Conn {
    pub async fn open(target: &Target) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(target.addr)
            .await
            .with_context(|| format!("connect {} ({})", target.addr, target.label))?;
        // Without NODELAY, Nagle + delayed ACK adds ~40 ms stalls to small
        // request/response exchanges and the numbers would measure the kernel.
        stream.set_nodelay(true).context("set TCP_NODELAY")?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("http1 handshake")?;
        let driver = tokio::spawn(async move {
            // The error surfaces to the sender as a failed request; nothing
            // more to do with it here.
            let _ = conn.await;
        });
        Ok(Self { sender, driver })
    }

    /// True when the server closed the connection (e.g. `Connection: close`)
    /// and a new one is needed before the next request.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Sends one request and returns the response once its head arrived.
    /// Non-2xx statuses are errors: the benchmark only counts real answers.
    pub async fn send(&mut self, target: &Target, call: Call) -> anyhow::Result<Response<Incoming>> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(call.path())
            .header(header::HOST, target.host.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-goog-api-key", target.api_key.clone());
        if target.no_cache {
            req = req.header(header::CACHE_CONTROL, "no-cache");
        }
        let req = req
            .body(Full::new(Bytes::from_static(REQUEST_BODY.as_bytes())))
            .context("build request")?;
        self.sender.ready().await.context("connection not ready")?;
        let resp = self.sender.send_request(req).await.context("send request")?;
        let status = resp.status();
        if !status.is_success() {
            // Read a little of the body so the error message says why.
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let snippet = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            bail!("HTTP {status} from {}: {snippet}", target.label);
        }
        Ok(resp)
    }
}

/// Reads a body to the end without concatenating it; returns its length.
pub async fn drain(body: &mut Incoming) -> anyhow::Result<usize> {
    let mut total = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.context("read body")?.into_data() {
            total += data.len();
        }
    }
    Ok(total)
}

/// One `GET path` on a fresh connection; the status and the body as text
/// (for `/healthz`, outside any measurement).
pub async fn get_text(addr: SocketAddr, path: &str) -> anyhow::Result<(http::StatusCode, String)> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("http1 handshake")?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))
        .context("build request")?;
    let resp = sender.send_request(req).await.context("send request");
    let out = match resp {
        Ok(resp) => {
            let status = resp.status();
            let body = resp.into_body().collect().await.context("read body")?.to_bytes();
            Ok((status, String::from_utf8_lossy(&body).into_owned()))
        }
        Err(e) => Err(e),
    };
    driver.abort();
    out
}
