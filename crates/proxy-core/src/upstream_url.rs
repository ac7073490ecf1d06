//! Where a request goes upstream: the base URL (Google's, or an AI Gateway's with its
//! path prefix) with the route's path appended unchanged. Both platforms build their
//! URL here, with the WHATWG URL rules `fetch` itself applies (the `url` crate), so a
//! path a URL parser would normalise can never take a key out of the base path.

use url::Url;

use crate::platform::TransportError;
use crate::route::keeps_upstream_path;

#[derive(Clone, Debug)]
pub struct UpstreamBase {
    base_url: String,
    /// The base URL's path (an AI Gateway's prefix): every request stays under it.
    base_path: String,
}

impl UpstreamBase {
    /// An unparsable base URL fails every request at [`UpstreamBase::url_for`].
    pub fn new(base_url: &str) -> Self {
        let base_url = base_url.trim_end_matches('/').to_string();
        let base_path = Url::parse(&base_url)
            .map(|url| url.path().to_string())
            .unwrap_or_default();
        Self { base_url, base_path }
    }

    /// The URL for `path_and_query`, refused if URL parsing changed its path (dot
    /// segments resolved, characters re-encoded): what goes upstream is what the
    /// core's route produced, under the base path.
    pub fn url_for(&self, path_and_query: &str) -> Result<Url, TransportError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_stay_under_the_base_path() {
        let base = UpstreamBase::new("https://gateway.example/v1/acct/gw/google-ai-studio/");
        let url = base.url_for("/v1beta/models/m:generateContent?alt=sse");
        assert_eq!(
            url.map(|u| u.to_string()).ok().as_deref(),
            Some(
                "https://gateway.example/v1/acct/gw/google-ai-studio/v1beta/models/m:generateContent?alt=sse"
            )
        );
        let query = base.url_for("/v1beta/models?pageSize=1&alt=a%20b");
        assert_eq!(
            query.map(|u| u.to_string()).ok().as_deref(),
            Some("https://gateway.example/v1/acct/gw/google-ai-studio/v1beta/models?pageSize=1&alt=a%20b")
        );
        for escape in [
            "/v1beta/../../../x",
            "/v1/%2e%2e/%2e%2e/x",
            "/v1/a\\..\\..\\x",
            "/v1/a b",
        ] {
            assert!(base.url_for(escape).is_err(), "{escape}");
        }
        assert!(UpstreamBase::new("not a url").url_for("/v1beta/models").is_err());
    }
}
