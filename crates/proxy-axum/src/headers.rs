//! Which headers cross the proxy, in each direction (the lists live in
//! `proxy_core::request`, shared with every platform).

use axum::http::HeaderMap;
use proxy_core::request::{RETURNED_HEADERS, forwards_header};

pub fn upstream_headers(client: &HeaderMap) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(4);
    for (name, value) in client {
        if let (true, Ok(value)) = (forwards_header(name.as_str()), value.to_str()) {
            out.push((name.as_str().to_string(), value.to_string()));
        }
    }
    out
}

pub fn downstream_headers(upstream: &reqwest::header::HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(4);
    for name in RETURNED_HEADERS {
        if let Some(value) = upstream.get(name) {
            out.insert(name, value.clone());
        }
    }
    out
}
