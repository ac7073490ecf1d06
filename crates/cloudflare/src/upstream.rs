//! The upstream call through the Worker's `fetch`: the key goes in `x-goog-api-key`,
//! never the URL; redirects are never followed (the key would go along); the URL is
//! the base URL with the route's path appended unchanged; an attempt that gets no
//! response headers (or, for an error, no whole body) in time is aborted.

use std::pin::pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::{Either, select};
use proxy_core::keys::Secret;
use proxy_core::platform::{Peek, PreparedRequest, TransportError, Upstream, UpstreamResponse};
use proxy_core::upstream_url::UpstreamBase;
use worker::{
    AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response,
};

pub struct WorkerUpstream {
    base: UpstreamBase,
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
    type Response = Response;

    async fn send(
        &self,
        request: &PreparedRequest,
        key: &Secret,
        timeout_ms: u64,
    ) -> Result<UpstreamResponse<Response>, TransportError> {
        let fetch = Fetch::Request(self.build(request, key)?);
        let controller = AbortController::default();
        let signal = controller.signal();
        let sending = pin!(fetch.send_with_signal(&signal));
        let deadline = pin!(Delay::from(Duration::from_millis(timeout_ms)));
        match select(sending, deadline).await {
            Either::Left((Ok(response), _)) => Ok(UpstreamResponse {
                status: response.status_code(),
                content_type: response.headers().get("content-type").ok().flatten(),
                inner: response,
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
        mut response: Response,
        limit: usize,
        timeout_ms: u64,
    ) -> Result<Bytes, TransportError> {
        let mut stream = response
            .stream()
            .map_err(|e| TransportError::Connect(format!("cannot read the error body: {e}")))?;
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

    async fn peek_body(&self, response: &mut Response, peek: Peek) -> Result<(Bytes, bool), TransportError> {
        let status = response.status_code();
        let headers = response.headers().clone();
        let mut stream = response
            .stream()
            .map_err(|e| TransportError::Connect(format!("cannot read the answer: {e}")))?;
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
        let start = Bytes::from(start);
        // Put what was read back in front of the rest, keeping status and headers. A
        // stream either way: the handler streams the answer on (`Response::stream`),
        // which a body made from bytes does not give.
        let rest =
            futures_util::stream::iter(chunks.into_iter().map(Ok::<Vec<u8>, worker::Error>)).chain(stream);
        let rebuilt = Response::from_stream(rest);
        let rebuilt = rebuilt.map_err(|e| TransportError::Connect(format!("cannot keep the answer: {e}")))?;
        *response = rebuilt.with_status(status).with_headers(headers);
        Ok((start, whole))
    }
}
