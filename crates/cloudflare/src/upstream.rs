//! The upstream call through the Worker's `fetch`: the key goes in `x-goog-api-key`,
//! never the URL; an attempt that gets no response headers in time is aborted.

use std::pin::pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::{Either, select};
use proxy_core::keys::Secret;
use proxy_core::platform::{PreparedRequest, TransportError, Upstream, UpstreamResponse};
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, Response};

pub struct WorkerUpstream {
    base_url: String,
}

impl WorkerUpstream {
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
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
        init.with_method(method.clone()).with_headers(headers);
        if !request.body.is_empty() && !matches!(method, Method::Get | Method::Head) {
            init.with_body(Some(js_sys::Uint8Array::from(&request.body[..]).into()));
        }
        let url = format!("{}{}", self.base_url, request.path_and_query);
        Request::new_with_init(&url, &init)
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

    async fn read_body(&self, mut response: Response, limit: usize) -> Bytes {
        let Ok(mut stream) = response.stream() else {
            return Bytes::new();
        };
        let mut body = Vec::new();
        while let Some(Ok(chunk)) = stream.next().await {
            let room = limit.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= limit {
                break;
            }
        }
        Bytes::from(body)
    }
}
