//! The upstream call through the Worker's `fetch`: the key goes in `x-goog-api-key`,
//! never the URL; redirects are never followed (the key would go along); the URL is
//! the base URL with the route's path appended unchanged; an attempt that gets no
//! response headers (or, for an error, no whole body) in time is aborted.
//!
//! Once a peek has read the start of a body, the rest is read from Rust too
//! ([`UpstreamAnswer::body`]), never wrapped back into a JavaScript stream: a Rust
//! stream turned into a `ReadableStream` and read back again made a stream stall now
//! and then under `wrangler dev` (about one request in 3000, the runtime then reporting
//! the request as hung), and it cost two more crossings per chunk.

use std::pin::pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::{Either, select};
use futures_util::stream::{self, LocalBoxStream};
use proxy_core::keys::Secret;
use proxy_core::platform::{Peek, PreparedRequest, TransportError, Upstream, UpstreamResponse};
use proxy_core::upstream_url::UpstreamBase;
use worker::{
    AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response,
};

pub struct WorkerUpstream {
    base: UpstreamBase,
}

/// Upstream's body as Rust reads it, chunk by chunk.
pub type BodyStream = LocalBoxStream<'static, worker::Result<Vec<u8>>>;

/// An upstream answer: the runtime's response (status and headers) and, once a peek
/// has begun reading it, its body: what the peek read, then the rest.
pub struct UpstreamAnswer {
    pub response: Response,
    read: Option<BodyStream>,
}

impl UpstreamAnswer {
    /// The whole body, from its first byte; `None` when there is none (a 204).
    pub fn body(&mut self) -> Option<BodyStream> {
        if let Some(read) = self.read.take() {
            return Some(read);
        }
        self.response.stream().ok().map(|s| s.boxed_local())
    }
}

impl WorkerUpstream {
    pub fn new(base_url: &str) -> Self {
        Self {
            base: UpstreamBase::new(base_url),
        }
    }

    fn build(&self, request: &PreparedRequest, key: &Secret) -> Result<Request, TransportError> {
        let headers = Headers::new();
        for (name, value) in &request.headers {
            headers
                .append(name, value)
                .map_err(|_| TransportError::Connect(format!("header {name} cannot be forwarded")))?;
        }
        headers
            .set("x-goog-api-key", key.expose())
            .map_err(|_| TransportError::Connect("upstream key is not a valid header value".into()))?;
        let method = Method::from(request.method.clone());
        let mut init = RequestInit::new();
        // Gemini never redirects; `manual` hands a 3xx back to the engine as an answer.
        init.with_method(method.clone())
            .with_headers(headers)
            .with_redirect(RequestRedirect::Manual);
        if !request.body.is_empty() && !matches!(method, Method::Get | Method::Head) {
            init.with_body(Some(js_sys::Uint8Array::from(&request.body[..]).into()));
        }
        let url = self.base.url_for(&request.path_and_query)?;
        Request::new_with_init(url.as_str(), &init)
            .map_err(|e| TransportError::Connect(format!("cannot build the upstream request: {e}")))
    }
}

#[async_trait(?Send)]
impl Upstream for WorkerUpstream {
    type Response = UpstreamAnswer;

    async fn send(
        &self,
        request: &PreparedRequest,
        key: &Secret,
        timeout_ms: u64,
    ) -> Result<UpstreamResponse<UpstreamAnswer>, TransportError> {
        let fetch = Fetch::Request(self.build(request, key)?);
        let controller = AbortController::default();
        let signal = controller.signal();
        let sending = pin!(fetch.send_with_signal(&signal));
        let deadline = pin!(Delay::from(Duration::from_millis(timeout_ms)));
        match select(sending, deadline).await {
            Either::Left((Ok(response), _)) => Ok(UpstreamResponse {
                status: response.status_code(),
                content_type: response.headers().get("content-type").ok().flatten(),
                inner: UpstreamAnswer { response, read: None },
            }),
            // The runtime's message ("Network connection lost", DNS, TLS) names no key:
            // the key is only in a header. The engine scrubs it all the same.
            Either::Left((Err(error), _)) => Err(TransportError::Connect(error.to_string())),
            Either::Right(((), _)) => {
                controller.abort();
                Err(TransportError::Timeout)
            }
        }
    }

    async fn read_body(
        &self,
        mut answer: UpstreamAnswer,
        limit: usize,
        timeout_ms: u64,
    ) -> Result<Bytes, TransportError> {
        let Some(mut stream) = answer.body() else {
            return Ok(Bytes::new());
        };
        let reading = pin!(async {
            let mut body = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| TransportError::Connect(e.to_string()))?;
                let room = limit.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= limit {
                    break;
                }
            }
            Ok(Bytes::from(body))
        });
        let deadline = pin!(Delay::from(Duration::from_millis(timeout_ms)));
        match select(reading, deadline).await {
            Either::Left((read, _)) => read,
            // The unfinished body is dropped with the response; nothing waits on it.
            Either::Right(((), _)) => Err(TransportError::Timeout),
        }
    }

    async fn peek_body(
        &self,
        answer: &mut UpstreamAnswer,
        peek: Peek,
    ) -> Result<(Bytes, bool), TransportError> {
        let Some(mut stream) = answer.body() else {
            return Ok((Bytes::new(), true));
        };
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        let mut start: Vec<u8> = Vec::new();
        let mut deadline = pin!(Delay::from(Duration::from_millis(peek.timeout_ms)));
        // Per chunk, so a stream that runs out of time keeps what it read (a chunk's
        // read dropped before it yields loses nothing).
        let whole = loop {
            if peek.enough(&start) {
                break false;
            }
            match select(stream.next(), deadline.as_mut()).await {
                Either::Left((Some(Ok(chunk)), _)) => {
                    start.extend_from_slice(&chunk);
                    chunks.push(chunk);
                }
                Either::Left((Some(Err(e)), _)) => return Err(TransportError::Connect(e.to_string())),
                Either::Left((None, _)) => break true,
                Either::Right(((), _)) if peek.timeout_ends => break false,
                Either::Right(((), _)) => return Err(TransportError::Timeout),
            }
        };
        // What was read goes back in front of the rest, for whoever reads the body next.
        answer.read = Some(
            stream::iter(chunks.into_iter().map(Ok))
                .chain(stream)
                .boxed_local(),
        );
        let start = Bytes::from(start);
        Ok((start, whole))
    }
}
