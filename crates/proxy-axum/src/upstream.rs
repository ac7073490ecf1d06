//! The upstream call over hyper's pooled client: the key goes in `x-goog-api-key`,
//! never the URL; redirects are never followed (hyper's client follows none, and the
//! key would go along), and the URI sent is the base URL with the route's path
//! appended byte for byte.
//!
//! Why hyper and not reqwest: reqwest parsed a URL (with IDNA) and ran its redirect,
//! retry and timeout layers on every request, about 8% of the proxy's CPU. Here the
//! base URL's scheme, authority and path are parsed once, and each request builds its
//! URI from them.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderName, HeaderValue, Method, Uri};
use http_body::Body;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use proxy_core::keys::Secret;
use proxy_core::platform::{Peek, PreparedRequest, TransportError, Upstream, UpstreamResponse};
use proxy_core::route::keeps_upstream_path;

/// Upstream's answer: its head, and a body that can give back what a peek read.
pub type UpstreamReply = http::Response<UpstreamBody>;

#[derive(Clone, Debug)]
pub struct HyperUpstream {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: Option<Base>,
}

/// The base URL, parsed once.
#[derive(Clone, Debug)]
struct Base {
    scheme: Scheme,
    authority: Authority,
    /// Without its trailing `/`: an AI Gateway's prefix, every request stays under it.
    path: String,
}

impl Base {
    fn parse(base_url: &str) -> Option<Self> {
        let uri: Uri = base_url.trim_end_matches('/').parse().ok()?;
        let parts = uri.into_parts();
        let scheme = parts
            .scheme
            .filter(|s| *s == Scheme::HTTP || *s == Scheme::HTTPS)?;
        let authority = parts.authority?;
        let path = parts
            .path_and_query
            .filter(|pq| pq.query().is_none())
            .map(|pq| pq.path().trim_end_matches('/').to_string())
            .unwrap_or_default();
        Some(Self {
            scheme,
            authority,
            path,
        })
    }

    /// The URI for `path_and_query`, refused unless it keeps the path exactly under
    /// the base path (the route already refused dot segments and encoded slashes).
    fn uri_for(&self, path_and_query: &str) -> Result<Uri, TransportError> {
        let full = format!("{}{path_and_query}", self.path);
        let pq = PathAndQuery::from_maybe_shared(full)
            .map_err(|e| TransportError::Connect(format!("invalid upstream URL: {e}")))?;
        if !keeps_upstream_path(&self.path, path_and_query, pq.path()) {
            return Err(TransportError::Connect(
                "the request path would leave the upstream base URL's path".into(),
            ));
        }
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|e| TransportError::Connect(format!("invalid upstream URL: {e}")))
    }
}

impl HyperUpstream {
    /// An unparsable base URL (or one that is not `http`/`https`) fails every request.
    pub fn new(base_url: &str, connect_timeout: Duration) -> Result<Self, String> {
        Self::with_extra_roots(base_url, connect_timeout, &[])
    }

    /// The same, trusting `extra_roots` (DER certificates) besides the web's roots.
    pub fn with_extra_roots(
        base_url: &str,
        connect_timeout: Duration,
        extra_roots: &[rustls::pki_types::CertificateDer<'static>],
    ) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for cert in extra_roots {
            roots
                .add(cert.clone())
                .map_err(|e| format!("CA certificate rejected: {e}"))?;
        }
        // The provider is named rather than taken from the process default, which
        // panics when none was installed and more than one is compiled in.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup failed: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        // ALPN offers h2 first: Google answers HTTP/2, a plain-HTTP test server HTTP/1.1.
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        // Streams may sit silent for minutes while a model thinks: only the engine's
        // per-attempt deadline applies (to the head), never a whole-response timeout.
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(Self {
            client,
            base: Base::parse(base_url),
        })
    }
}

/// A transport failure as the engine sees it: a connect timeout is a timeout; the
/// text is hyper's and its causes', which never hold a header (so never the key).
fn transport_error(error: &hyper_util::client::legacy::Error) -> TransportError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    let mut text = error.to_string();
    while let Some(cause) = source {
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return TransportError::Timeout;
        }
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    TransportError::Connect(text)
}

#[async_trait]
impl Upstream for HyperUpstream {
    type Response = UpstreamReply;

    async fn send(
        &self,
        request: &PreparedRequest,
        key: &Secret,
        timeout_ms: u64,
    ) -> Result<UpstreamResponse<UpstreamReply>, TransportError> {
        let base = self
            .base
            .as_ref()
            .ok_or_else(|| TransportError::Connect("invalid upstream base URL".into()))?;
        let method = Method::from_bytes(request.method.as_bytes())
            .map_err(|_| TransportError::Connect("unsupported method".into()))?;
        let mut builder = http::Request::builder()
            .method(method)
            .uri(base.uri_for(&request.path_and_query)?);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let mut key_header = HeaderValue::from_str(key.expose())
            .map_err(|_| TransportError::Connect("upstream key is not a valid header value".into()))?;
        key_header.set_sensitive(true);
        builder = builder.header(HeaderName::from_static("x-goog-api-key"), key_header);
        let outgoing = builder
            .body(Full::new(request.body.clone()))
            .map_err(|_| TransportError::Connect("a forwarded header is not valid".into()))?;
        let sent =
            tokio::time::timeout(Duration::from_millis(timeout_ms), self.client.request(outgoing)).await;
        match sent {
            Err(_) => Err(TransportError::Timeout),
            Ok(Err(error)) => Err(transport_error(&error)),
            Ok(Ok(response)) => {
                let status = response.status().as_u16();
                let content_type = response
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                Ok(UpstreamResponse {
                    status,
                    content_type,
                    inner: response.map(UpstreamBody::new),
                })
            }
        }
    }

    async fn read_body(
        &self,
        response: UpstreamReply,
        limit: usize,
        timeout_ms: u64,
    ) -> Result<Bytes, TransportError> {
        let reading = async {
            let mut body = BytesMut::new();
            let mut stream = response.into_body();
            while let Some(chunk) = stream.data().await {
                let chunk = chunk.map_err(|e| TransportError::Connect(e.to_string()))?;
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
        response: &mut UpstreamReply,
        peek: Peek,
    ) -> Result<(Bytes, bool), TransportError> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(peek.timeout_ms);
        let body = response.body_mut();
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
            match tokio::time::timeout_at(deadline, body.data()).await {
                Ok(Some(Ok(chunk))) => {
                    if let [first] = &chunks[..] {
                        joined.extend_from_slice(first);
                    }
                    if !chunks.is_empty() {
                        joined.extend_from_slice(&chunk);
                    }
                    chunks.push(chunk);
                }
                Ok(None) => break true,
                Ok(Some(Err(e))) => return Err(TransportError::Connect(e.to_string())),
                Err(_) if peek.timeout_ends => break false,
                Err(_) => return Err(TransportError::Timeout),
            }
        };
        let start = match &chunks[..] {
            [] => Bytes::new(),
            [one] => one.clone(),
            _ => joined.freeze(),
        };
        // What was read goes back in front of the rest; status and headers stay.
        body.unread(chunks, whole);
        Ok((start, whole))
    }
}

/// Upstream's body, with the chunks a peek read put back in front of it.
#[derive(Debug)]
pub struct UpstreamBody {
    unread: VecDeque<Bytes>,
    /// `None` once upstream's body is known to be over.
    rest: Option<Incoming>,
}

impl UpstreamBody {
    fn new(incoming: Incoming) -> Self {
        Self {
            unread: VecDeque::new(),
            rest: Some(incoming),
        }
    }

    /// Puts `chunks` back to be read first; `ended`: upstream's body has nothing more.
    fn unread(&mut self, chunks: Vec<Bytes>, ended: bool) {
        self.unread.extend(chunks);
        if ended {
            self.rest = None;
        }
    }

    /// The body's length when it is known: the whole of it (a peek read it all), or
    /// upstream's `content-length` while nothing was put back.
    pub fn exact_len(&self) -> Option<u64> {
        let unread: u64 = self.unread.iter().map(|c| c.len() as u64).sum();
        match &self.rest {
            None => Some(unread),
            Some(rest) if self.unread.is_empty() => rest.size_hint().exact(),
            Some(_) => None,
        }
    }

    /// The next data chunk (trailers are skipped: Gemini sends none, and the client's
    /// framing is hyper's).
    pub fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, hyper::Error>>> {
        if let Some(chunk) = self.unread.pop_front() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        loop {
            let Some(rest) = self.rest.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(&mut *rest).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => return Poll::Ready(Some(Ok(data))),
                    Err(_trailers) => continue,
                },
                Poll::Ready(None) => {
                    self.rest = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    async fn data(&mut self) -> Option<Result<Bytes, hyper::Error>> {
        std::future::poll_fn(|cx| self.poll_data(cx)).await
    }
}
