//! Writing the core's complete answers ([`Reply`]) as Worker responses, in one place.

use proxy_core::request::Reply;
use worker::{Headers, Response};

/// A reply with its status, content type, `Retry-After` and request id.
pub fn reply_response(reply: Reply) -> worker::Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", &reply.content_type)?;
    headers.set("x-request-id", &reply.request_id)?;
    if let Some(secs) = reply.retry_after_secs {
        headers.set("retry-after", &secs.to_string())?;
    }
    Ok(Response::from_bytes(reply.body.to_vec())?
        .with_status(reply.status)
        .with_headers(headers))
}
