//! Turning the proxy's own errors into HTTP responses, in one place.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use proxy_core::{ErrorShape, ProxyError};

/// An error in the client's dialect, with `Retry-After` when waiting helps.
pub(crate) fn error_response(error: &ProxyError, shape: ErrorShape, request_id: &str) -> Response {
    let mut response = json_response(error.status_code(), error.to_json(shape).into(), request_id);
    if let Some(secs) = error.retry_after_secs() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// A JSON body with a status and the request id header.
pub(crate) fn json_response(status: u16, body: Body, request_id: &str) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    set_request_id(headers, request_id);
    response
}

pub(crate) fn set_request_id(headers: &mut axum::http::HeaderMap, request_id: &str) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", value);
    }
}
