//! Upstream's response headers the client gets (the list lives in
//! `proxy_core::request`, shared with every platform; the core filters the client's
//! headers going the other way).

use axum::http::HeaderMap;
use proxy_core::request::RETURNED_HEADERS;

pub fn downstream_headers(upstream: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(4);
    for name in RETURNED_HEADERS {
        if let Some(value) = upstream.get(name) {
            out.insert(name, value.clone());
        }
    }
    out
}
