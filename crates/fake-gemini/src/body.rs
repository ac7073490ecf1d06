//! Response construction: whole bodies, really-streamed bodies, and errors.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use http::{Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde::Serialize;

use crate::errors::ApiError;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = UnsyncBoxBody<Bytes, BoxError>;
pub type Resp = Response<Body>;

pub const JSON: &str = "application/json; charset=UTF-8";
pub const SSE: &str = "text/event-stream";

/// An error that makes hyper cut the connection: returned from the service
/// (`-reset-` keys, no response at all) or from a body stream (`drop`
/// models, body cut without proper termination).
#[derive(Debug)]
pub struct Abort(pub &'static str);

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Abort {}

fn with_type(status: StatusCode, content_type: &'static str, body: Body) -> Resp {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

pub fn full(status: StatusCode, content_type: &'static str, bytes: impl Into<Bytes>) -> Resp {
    let body = Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync();
    with_type(status, content_type, body)
}

pub fn json_bytes(bytes: impl Into<Bytes>) -> Resp {
    full(StatusCode::OK, JSON, bytes)
}

pub fn json<T: Serialize + ?Sized>(value: &T) -> Resp {
    match serde_json::to_vec(value) {
        Ok(v) => json_bytes(v),
        Err(e) => error(&ApiError::new(500, "INTERNAL", e.to_string()), false),
    }
}

pub fn error(err: &ApiError, openai: bool) -> Resp {
    let status = StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    full(status, JSON, err.body(openai))
}

/// One body frame of a streamed response, optionally delayed.
pub struct Step {
    pub delay: Option<Duration>,
    pub item: Result<Bytes, BoxError>,
}

impl Step {
    pub fn data(delay: Option<Duration>, bytes: impl Into<Bytes>) -> Self {
        Step {
            delay,
            item: Ok(bytes.into()),
        }
    }

    pub fn abort() -> Self {
        Step {
            delay: None,
            item: Err(Box::new(Abort("fake-gemini: stream dropped on purpose"))),
        }
    }
}

/// A 200 response whose body is sent frame by frame (each step is its own
/// frame, waiting for its delay first), so clients see chunk 1 before the
/// last chunk exists.
pub fn streamed(content_type: &'static str, steps: Vec<Step>) -> Resp {
    streamed_with_status(StatusCode::OK, content_type, steps)
}

/// An error whose headers and first half arrive at once and whose rest
/// waits `stall`: a reader of the body must give up on its own deadline.
pub fn stalled_error(err: &ApiError, openai: bool, stall: Duration) -> Resp {
    let status = StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut whole = err.body(openai);
    let rest = whole.split_off(whole.len() / 2);
    let steps = vec![Step::data(None, whole), Step::data(Some(stall), rest)];
    streamed_with_status(status, JSON, steps)
}

/// A `302 Found` to `location`, with the small HTML body Google's front ends
/// send along.
pub fn redirect(location: &str) -> Resp {
    let html = format!(
        "<HTML><HEAD><meta http-equiv=\"content-type\" content=\"text/html;charset=utf-8\">\n\
         <TITLE>302 Moved</TITLE></HEAD><BODY>\n<H1>302 Moved</H1>\nThe document has moved\n\
         <A HREF=\"{location}\">here</A>.\r\n</BODY></HTML>\r\n"
    );
    let mut resp = full(StatusCode::FOUND, "text/html; charset=UTF-8", html);
    if let Ok(value) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(LOCATION, value);
    }
    resp
}

fn streamed_with_status(status: StatusCode, content_type: &'static str, steps: Vec<Step>) -> Resp {
    let frames = stream::unfold(steps.into_iter(), |mut it| async move {
        let step = it.next()?;
        // Returning Pending between frames makes hyper flush what it has,
        // so each chunk goes out on its own (like Google) and a `drop`
        // abort comes after the earlier chunks were really sent.
        match step.delay {
            Some(d) => tokio::time::sleep(d).await,
            None => tokio::task::yield_now().await,
        }
        Some((step.item.map(Frame::data), it))
    });
    with_type(status, content_type, StreamBody::new(frames).boxed_unsync())
}
