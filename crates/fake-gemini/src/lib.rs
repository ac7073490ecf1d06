//! A fake of Google's Gemini API (generativelanguage.googleapis.com) that
//! speaks the real wire format: native `/v1beta` + `/v1` endpoints and the
//! OpenAI-compatible `/v1beta/openai` ones.
//!
//! Behaviour is chosen per request without setup: markers in the upstream
//! API key select failures (`-r429m-`, `-r429d-`, `-r429off-` (quota `limit: 0`), `-invalid-`,
//! `-suspended-`, `-r503-`, `-r500-`, `-r504-`, `-hang-`, `-reset-`,
//! `-r302-` (a redirect to [`FakeGemini::set_redirect_target`]), `-stallbody-`
//! (a 429 whose body stops halfway for two minutes), `-empty-` (a generate or chat
//! answer with nothing in it, streamed or not), `-once429-` (the key's first request
//! gets a 429 retrying after 2 s, later ones are answered), `-slowkey-` (every answer
//! after [`SLOW_HEADERS`])), and
//! substrings of the model name select response shapes (`thinking`,
//! `blocked`, `overloaded`, `slowstream`, `longstream` (a minute of chunks; a generate answer pauses that long halfway),
//! `midstream`, `drop`, `big`,
//! `cached`, `silent` (a stream quiet for [`SILENCE`] after its first chunk),
//! `slowheaders` (any answer after [`SLOW_HEADERS`])).
//!
//! Like Google, it echoes client-chosen text into errors: an unknown top-level field
//! of a generate request (400 `Unknown name "…"`), a file name in `GET files/{name}`
//! (403, decoded), and it refuses API keys on OAuth-only `corpora` (401
//! `CREDENTIALS_MISSING`), so tests can show such answers never mark a key.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let fake = fake_gemini::FakeGemini::start().await?;
//! let url = format!("{}/v1beta/models/gemini-2.5-flash:generateContent", fake.base_url());
//! // ... send requests with header `x-goog-api-key` ...
//! assert!(fake.requests().len() <= 1);
//! # drop(url); Ok(()) }
//! ```

mod body;
mod errors;
mod models;
mod native;
mod openai;
mod route;
mod scenario;
mod service;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

pub use scenario::{
    CACHED_TOKENS, CANDIDATE_TOKENS, FULL_TEXT, PROMPT_TOKENS, SILENCE, SLOW_CHUNK_DELAY, SLOW_HEADERS,
    STREAM_TEXTS, THOUGHT_TOKENS,
};
pub use service::MAX_BODY;

use service::State;

/// One request as the fake received it (also served as JSON by
/// `GET /__fake/requests`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    pub query: Option<String>,
    /// From `x-goog-api-key`, else from `Authorization: Bearer`.
    pub api_key: Option<String>,
    pub body_len: usize,
}

/// A running fake server. Serving stops when this is dropped (or on
/// [`FakeGemini::shutdown`]); in-flight connections are cut too.
pub struct FakeGemini {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl FakeGemini {
    /// Bind 127.0.0.1:0 and serve in a background tokio task.
    pub async fn start() -> std::io::Result<FakeGemini> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Bind `addr` and serve in a background tokio task (on the current
    /// runtime). Recording is on.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<FakeGemini> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        state.recording.store(true, Ordering::Relaxed);
        let task = tokio::spawn(serve(listener, state.clone()));
        Ok(FakeGemini { addr, state, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received (except `/__fake/*`), in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests().clone()
    }

    /// Trace batches an OTLP/HTTP exporter posted to `/v1/traces` (taken, not kept).
    pub fn otlp_batches(&self) -> u64 {
        self.state.otlp_batches.load(Ordering::Relaxed)
    }

    pub fn clear_requests(&self) {
        self.state.requests().clear();
    }

    /// Turn request recording on or off (off for benchmarks).
    pub fn set_recording(&self, on: bool) {
        self.state.recording.store(on, Ordering::Relaxed);
    }

    /// Serve the API only under `base_path` (e.g. `/prefix`), as a Cloudflare
    /// AI Gateway does; requests elsewhere are recorded and get 404.
    pub fn set_base_path(&self, base_path: &str) {
        self.state.set_base_path(base_path);
    }

    /// Where keys with `-r302-` are redirected (an absolute URL, e.g. another
    /// fake's, which then records whether the key came along).
    pub fn set_redirect_target(&self, url: &str) {
        self.state.set_redirect_target(url);
    }

    /// Stop serving now; same as dropping.
    pub fn shutdown(self) {}
}

impl Drop for FakeGemini {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every
        // connection task (including `-hang-` sleepers).
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    // auto = HTTP/1.1, plus HTTP/2 for clients using prior knowledge.
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Streams and small answers must not wait for Nagle.
                    let _ = stream.set_nodelay(true);
                    let builder = builder.clone();
                    let state = state.clone();
                    conns.spawn(async move {
                        let svc = service_fn(move |req| service::handle(state.clone(), req));
                        // Errors here are client disconnects or our own
                        // deliberate aborts: nothing to report.
                        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                    });
                }
                // e.g. out of file descriptors: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            // Reap finished connections so the set does not grow forever.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}
