//! The upstream call over reqwest: the key goes in `x-goog-api-key`, never the URL;
//! redirects are never followed (the key would go along), and the URL sent is the
//! base URL with the route's path appended unchanged.

use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use proxy_core::keys::Secret;
use proxy_core::platform::{PreparedRequest, TransportError, Upstream, UpstreamResponse};
use proxy_core::route::keeps_upstream_path;
use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue};

#[derive(Clone, Debug)]
pub struct ReqwestUpstream {
    client: reqwest::Client,
    base_url: String,
    /// The base URL's path (an AI Gateway's prefix): every request stays under it.
    base_path: String,
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
        let base_url = base_url.trim_end_matches('/').to_string();
        // An unparsable base URL fails every request at `url_for` instead.
        let base_path = Url::parse(&base_url)
            .map(|url| url.path().to_string())
            .unwrap_or_default();
        Ok(Self {
            client,
            base_url,
            base_path,
        })
    }

    /// The URL for `path_and_query`, refused if URL parsing changed its path (dot
    /// segments resolved, characters re-encoded): what goes upstream is what the core's
    /// route produced, under the base path.
    fn url_for(&self, path_and_query: &str) -> Result<Url, TransportError> {
        let url = Url::parse(&format!("{}{}", self.base_url, path_and_query))
            .map_err(|e| TransportError::Connect(format!("invalid upstream URL: {e}")))?;
        if !keeps_upstream_path(&self.base_path, path_and_query, url.path()) {
            return Err(TransportError::Connect(
                "the request path would leave the upstream base URL's path".into(),
            ));
        }
        Ok(url)
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
        let url = self.url_for(&request.path_and_query)?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The second line of defence, should a path ever slip past the core's route check.
    #[test]
    fn urls_that_parsing_would_rewrite_are_refused() {
        let upstream = ReqwestUpstream::new("http://127.0.0.1:9/prefix/", Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("client builds: {e}"));
        let url = upstream.url_for("/v1beta/models?pageSize=1&alt=a%20b");
        assert_eq!(
            url.map(|u| u.to_string()),
            Ok("http://127.0.0.1:9/prefix/v1beta/models?pageSize=1&alt=a%20b".to_string())
        );
        for path in ["/v1/%2e%2e/%2e%2e/x", "/v1/../x", "/v1/a\\..\\..\\x", "/v1/a b"] {
            assert!(upstream.url_for(path).is_err(), "{path}");
        }
    }
}
