//! Tiny in-process HTTP/1.1 server for the load generator's own tests, so
//! they run without the fake-gemini or proxy binaries.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Answers every request with `status`; SSE-looking body for stream calls.
pub async fn start(status: StatusCode) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| answer(req, status));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

async fn answer(req: Request<Incoming>, status: StatusCode) -> Result<Response<Full<Bytes>>, Infallible> {
    let has_key = req.headers().contains_key("x-goog-api-key");
    let stream = req.uri().path().ends_with(":streamGenerateContent");
    // Read the request body fully, as a real server would.
    let _ = req.into_body().collect().await;
    let status = if has_key { status } else { StatusCode::UNAUTHORIZED };
    let body = if stream {
        "data: {\"candidates\":[]}\r\n\r\ndata: {\"candidates\":[]}\r\n\r\n"
    } else {
        "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hello\"}]}}]}"
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    Ok(resp)
}
