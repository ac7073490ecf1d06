//! Turning the proxy's own errors and upstream's error bodies into Worker responses.

use proxy_core::{ErrorShape, ProxyError};
use worker::{Headers, Response};

/// An error in the client's dialect, with `Retry-After` when waiting helps.
pub fn error_response(error: &ProxyError, shape: ErrorShape, request_id: &str) -> worker::Result<Response> {
    let headers = json_headers(request_id)?;
    if let Some(secs) = error.retry_after_secs() {
        headers.set("retry-after", &secs.to_string())?;
    }
    let body = error.to_json(shape).into_bytes();
    Ok(Response::from_bytes(body)?
        .with_status(error.status_code())
        .with_headers(headers))
}

/// A JSON body with a status and the request id header.
pub fn json_response(status: u16, body: Vec<u8>, request_id: &str) -> worker::Result<Response> {
    let headers = json_headers(request_id)?;
    Ok(Response::from_bytes(body)?
        .with_status(status)
        .with_headers(headers))
}

fn json_headers(request_id: &str) -> worker::Result<Headers> {
    let headers = Headers::new();
    headers.set("content-type", "application/json; charset=UTF-8")?;
    headers.set("x-request-id", request_id)?;
    Ok(headers)
}
