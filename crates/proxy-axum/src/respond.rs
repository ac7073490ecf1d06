//! Writing the core's complete answers ([`Reply`]) as axum responses, in one place.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use proxy_core::request::Reply;

/// A reply with its status, content type, `Retry-After` and request id.
pub(crate) fn reply_response(reply: Reply) -> Response {
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = response.headers_mut();
    let content_type = HeaderValue::from_str(&reply.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    if let Some(secs) = reply.retry_after_secs {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    set_request_id(headers, &reply.request_id);
    response
}

pub(crate) fn set_request_id(headers: &mut HeaderMap, request_id: &str) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", value);
    }
}

/// The headers the core adds to an answer (`Settlement::headers`); a value that is no
/// valid header (a model name with a control character) is left out.
pub(crate) fn add_headers(headers: &mut HeaderMap, added: &[(&'static str, String)]) {
    for (name, value) in added {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(*name, value);
        }
    }
}
