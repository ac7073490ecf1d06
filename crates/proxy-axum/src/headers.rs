//! Which headers cross the proxy, in each direction.
//!
//! Allow-lists, not deny-lists: a header we did not think of (a cookie, a client's own
//! credential under a new name) stays behind rather than travelling to Google.

use axum::http::HeaderMap;

/// Client headers forwarded upstream. Credentials (`x-goog-api-key`, `authorization`)
/// and `accept-encoding` are not: the proxy reads the body to count tokens, so it asks
/// for it uncompressed.
const FORWARD_UPSTREAM: [&str; 6] = [
    "content-type",
    "accept",
    "user-agent",
    "x-goog-api-client",
    "x-server-timeout",
    "x-goog-request-params",
];

/// Upstream headers passed back to the client.
const FORWARD_DOWNSTREAM: [&str; 3] = ["content-type", "content-length", "cache-control"];

pub fn upstream_headers(client: &HeaderMap) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(4);
    for (name, value) in client {
        let name = name.as_str();
        let forwarded = FORWARD_UPSTREAM.contains(&name) || name.starts_with("x-goog-upload-");
        if let (true, Ok(value)) = (forwarded, value.to_str()) {
            out.push((name.to_string(), value.to_string()));
        }
    }
    out
}

pub fn downstream_headers(upstream: &reqwest::header::HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(4);
    for name in FORWARD_DOWNSTREAM {
        if let Some(value) = upstream.get(name) {
            out.insert(name, value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn credentials_and_encodings_stay_behind() {
        let mut client = HeaderMap::new();
        client.insert("x-goog-api-key", HeaderValue::from_static("gp-secret"));
        client.insert("authorization", HeaderValue::from_static("Bearer gp-secret"));
        client.insert("cookie", HeaderValue::from_static("a=b"));
        client.insert("accept-encoding", HeaderValue::from_static("gzip"));
        client.insert("content-type", HeaderValue::from_static("application/json"));
        client.insert("x-goog-upload-protocol", HeaderValue::from_static("resumable"));
        let forwarded = upstream_headers(&client);
        let names: Vec<&str> = forwarded.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.contains(&"content-type") && names.contains(&"x-goog-upload-protocol"));
    }
}
