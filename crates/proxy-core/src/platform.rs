//! What each platform provides: the upstream call, the clock, the stores.
//!
//! `Send` is required on native (tokio moves tasks between threads) and impossible on
//! wasm32 (JS values are single-threaded), so it is chosen by target here, in one place,
//! never by a cargo feature (features unify across a workspace).

use async_trait::async_trait;
use bytes::Bytes;

pub use crate::error::StoreError;
use crate::key_state::{KeyState, StateChange};
use crate::keys::{ProxyKey, Secret, UpstreamKey};
use crate::log::LogRecord;
pub use crate::resilience::empty::EmptyCheck;

#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send + Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + Sync + ?Sized> MaybeSend for T {}
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSend for T {}

/// Wall-clock time and sleeping. Native uses tokio; a Worker uses `Date.now()`.
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
pub trait Clock: MaybeSend {
    fn now_ms(&self) -> u64;
    /// A monotonic clock in microseconds, for durations only (the proxy's own time);
    /// platforms without one derive it from [`Clock::now_ms`].
    fn monotonic_us(&self) -> u64 {
        self.now_ms().saturating_mul(1000)
    }
    async fn sleep_ms(&self, ms: u64);
}

/// A request as it will go upstream on every attempt; only the key changes.
#[derive(Clone, Debug)]
pub struct PreparedRequest {
    pub method: String,
    /// Path and query relative to the upstream base URL, with no client credential.
    pub path_and_query: String,
    /// Headers to forward (never the client's credential headers).
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Where the request names its model, so a fallback can name another.
    pub model_in: ModelIn,
    /// Whether (and in which dialect) a 2xx is checked for an empty answer, retried
    /// once on another key (`--retry-empty`).
    pub empty_check: EmptyCheck,
    /// How long a checked stream's start may be held back waiting for an event with
    /// something in it; 0: the attempt's time. Keep-alives cannot be sent before the
    /// answer's headers, so with them on this is their interval.
    pub empty_hold_ms: u64,
    /// The answer streams (never hedged: a second stream would be billed in full).
    pub stream: bool,
}

/// Where a request names its model: Gemini's path (`models/M:generateContent`) or
/// OpenAI's body (`"model": "M"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ModelIn {
    #[default]
    Nowhere,
    Path,
    Body,
}

/// How far [`Upstream::peek_body`] reads: up to `limit` bytes or the body's end, and
/// no further once `decided` says the start read so far is enough.
#[derive(Clone, Copy, Debug)]
pub struct Peek {
    pub limit: usize,
    pub timeout_ms: u64,
    pub decided: fn(&[u8]) -> bool,
    /// Running out of time ends the peek with what was read (a stream then goes on
    /// unchecked) instead of failing it with [`TransportError::Timeout`].
    pub timeout_ends: bool,
}

impl Peek {
    /// Whether reading stops after a start of `read` bytes.
    pub fn enough(&self, start: &[u8]) -> bool {
        start.len() >= self.limit || (self.decided)(start)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// No response headers (or, for an error, no whole body) within the attempt's
    /// time budget.
    Timeout,
    /// Connection refused, reset, DNS or TLS failure.
    Connect(String),
}

/// An upstream answer: its status and whatever the platform needs to stream it on.
#[derive(Debug)]
pub struct UpstreamResponse<R> {
    pub status: u16,
    /// Upstream's `content-type`: an error passed on keeps it, and only JSON and
    /// event streams are read for usage.
    pub content_type: Option<String>,
    pub inner: R,
}

/// The upstream HTTP call. Implementations put the key in the `x-goog-api-key` header,
/// never in the URL, and never log it.
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
pub trait Upstream: MaybeSend {
    type Response: MaybeSend;

    async fn send(
        &self,
        request: &PreparedRequest,
        key: &Secret,
        timeout_ms: u64,
    ) -> Result<UpstreamResponse<Self::Response>, TransportError>;

    /// Reads an error answer's body (at most `limit` bytes) to classify it, within
    /// what is left of the attempt's time: a body that stalls past `timeout_ms` is
    /// [`TransportError::Timeout`], one cut off midway [`TransportError::Connect`].
    async fn read_body(
        &self,
        response: Self::Response,
        limit: usize,
        timeout_ms: u64,
    ) -> Result<Bytes, TransportError>;

    /// Reads the start of a 2xx body as `peek` says, without taking it: `response`
    /// still yields its whole body after. Returns the bytes read and whether they are
    /// the whole body.
    async fn peek_body(
        &self,
        response: &mut Self::Response,
        peek: Peek,
    ) -> Result<(Bytes, bool), TransportError>;
}

/// Everything the request path needs from a store, loaded in one go.
#[derive(Clone, Debug, Default)]
pub struct KeySnapshot {
    pub keys: Vec<(UpstreamKey, KeyState)>,
    pub proxy_keys: Vec<ProxyKey>,
}

/// Where keys come from and where learned key state goes. Read at start and in the
/// background, never on the request path.
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
pub trait KeyStore: MaybeSend {
    async fn load(&self) -> Result<KeySnapshot, StoreError>;
    async fn save_state(&self, changes: &[StateChange]) -> Result<(), StoreError>;
}

/// Where request logs go, a batch at a time, off the request path.
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
pub trait LogSink: MaybeSend {
    async fn write_logs(&self, records: &[LogRecord]) -> Result<(), StoreError>;
}
