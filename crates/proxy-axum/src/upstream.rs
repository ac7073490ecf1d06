//! The upstream call over reqwest: the key goes in `x-goog-api-key`, never the URL;
//! redirects are never followed (the key would go along), and the URL sent is the
//! base URL with the route's path appended unchanged.

use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use proxy_core::keys::Secret;
use proxy_core::platform::{Peek, PreparedRequest, TransportError, Upstream, UpstreamResponse};
use proxy_core::upstream_url::UpstreamBase;
use reqwest::header::{HeaderName, HeaderValue};

#[derive(Clone, Debug)]
pub struct ReqwestUpstream {
    client: reqwest::Client,
    base: UpstreamBase,
}

impl ReqwestUpstream {
    pub fn new(base_url: &str, connect_timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            // Gemini never redirects; following one would carry `x-goog-api-key` to
            // wherever it points. A 3xx comes back to the engine as an answer.
            .redirect(reqwest::redirect::Policy::none())
            // Streams may sit silent for minutes while a model thinks; only the
            // per-attempt header deadline applies, never a whole-response timeout.
            .build()?;
        Ok(Self {
            client,
            base: UpstreamBase::new(base_url),
        })
    }
}

#[async_trait]
impl Upstream for ReqwestUpstream {
    type Response = reqwest::Response;

    async fn send(
        &self,
        request: &PreparedRequest,
        key: &Secret,
        timeout_ms: u64,
    ) -> Result<UpstreamResponse<reqwest::Response>, TransportError> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| TransportError::Connect("unsupported method".into()))?;
        let url = self.base.url_for(&request.path_and_query)?;
        let mut builder = self.client.request(method, url).body(request.body.clone());
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let mut key_header = HeaderValue::from_str(key.expose())
            .map_err(|_| TransportError::Connect("upstream key is not a valid header value".into()))?;
        key_header.set_sensitive(true);
        builder = builder.header(HeaderName::from_static("x-goog-api-key"), key_header);
        let sent = tokio::time::timeout(Duration::from_millis(timeout_ms), builder.send()).await;
        match sent {
            Err(_) => Err(TransportError::Timeout),
            Ok(Err(error)) if error.is_timeout() => Err(TransportError::Timeout),
            // reqwest's Display never includes headers, so the key cannot appear here;
            // the URL can, but it never carries a key.
            Ok(Err(error)) => Err(TransportError::Connect(error.without_url().to_string())),
            Ok(Ok(response)) => Ok(UpstreamResponse {
                status: response.status().as_u16(),
                content_type: response
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                inner: response,
            }),
        }
    }

    async fn read_body(
        &self,
        response: reqwest::Response,
        limit: usize,
        timeout_ms: u64,
    ) -> Result<Bytes, TransportError> {
        let reading = async {
            let mut body = BytesMut::new();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| TransportError::Connect(e.without_url().to_string()))?;
                let room = limit.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= limit {
                    break;
                }
            }
            Ok(body.freeze())
        };
        tokio::time::timeout(Duration::from_millis(timeout_ms), reading)
            .await
            .unwrap_or(Err(TransportError::Timeout))
    }

    async fn peek_body(
        &self,
        response: &mut reqwest::Response,
        peek: Peek,
    ) -> Result<(Bytes, bool), TransportError> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(peek.timeout_ms);
        let mut chunks: Vec<Bytes> = Vec::new();
        // The chunks in one piece, copied only once there are two.
        let mut joined = BytesMut::new();
        let whole = loop {
            let start: &[u8] = match &chunks[..] {
                [] => &[],
                [one] => one,
                _ => &joined,
            };
            if peek.enough(start) {
                break false;
            }
            // Per chunk, so a stream that runs out of time keeps what it read (a
            // chunk's read dropped before it yields loses nothing).
            match tokio::time::timeout_at(deadline, response.chunk()).await {
                Ok(Ok(Some(chunk))) => {
                    if let [first] = &chunks[..] {
                        joined.extend_from_slice(first);
                    }
                    if !chunks.is_empty() {
                        joined.extend_from_slice(&chunk);
                    }
                    chunks.push(chunk);
                }
                Ok(Ok(None)) => break true,
                Ok(Err(e)) => return Err(TransportError::Connect(e.without_url().to_string())),
                Err(_) if peek.timeout_ends => break false,
                Err(_) => return Err(TransportError::Timeout),
            }
        };
        let start = match &chunks[..] {
            [] => Bytes::new(),
            [one] => one.clone(),
            _ => joined.freeze(),
        };
        // Put what was read back in front of the rest, keeping status and headers.
        let mut rebuilt = http::Response::builder()
            .status(response.status())
            .version(response.version());
        if let Some(headers) = rebuilt.headers_mut() {
            *headers = response.headers().clone();
        }
        let body = match whole {
            true => reqwest::Body::from(start.clone()),
            false => {
                let taken = std::mem::replace(response, http::Response::new(reqwest::Body::from("")).into());
                let rest = futures_util::stream::iter(chunks.into_iter().map(Ok)).chain(taken.bytes_stream());
                reqwest::Body::wrap_stream(rest)
            }
        };
        let rebuilt = rebuilt
            .body(body)
            .map_err(|e| TransportError::Connect(format!("cannot keep the answer: {e}")))?;
        *response = rebuilt.into();
        Ok((start, whole))
    }
}
