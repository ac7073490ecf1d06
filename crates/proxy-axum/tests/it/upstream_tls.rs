//! The upstream client over TLS, as it talks to Google: certificates are verified
//! (a server the roots do not vouch for is a connect error, and the key never goes
//! out), ALPN picks HTTP/2, and the key and the body arrive as sent.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use proxy_axum::HyperUpstream;
use proxy_core::keys::Secret;
use proxy_core::platform::{ModelIn, PreparedRequest, TransportError, Upstream};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const KEY: &str = "AIzaTlsTestKey000000000000000000000000001";

/// What the TLS server saw of a request.
#[derive(Debug)]
struct Seen {
    version: http::Version,
    path: String,
    key: Option<String>,
    body: Bytes,
}

/// A TLS server for `localhost` (h2 and HTTP/1.1) answering every request with a
/// fixed JSON; returns its port, its certificate and what it saw.
async fn tls_server() -> (u16, CertificateDer<'static>, mpsc::UnboundedReceiver<Seen>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (seen_tx, seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let seen_tx = seen_tx.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake here.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
                    let seen_tx = seen_tx.clone();
                    async move {
                        let version = request.version();
                        let path = request.uri().path().to_string();
                        let key = request
                            .headers()
                            .get("x-goog-api-key")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string);
                        let body = request
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let _ = seen_tx.send(Seen {
                            version,
                            path,
                            key,
                            body,
                        });
                        let answer = http::Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from_static(br#"{"ok":true}"#)))
                            .expect("response");
                        Ok::<_, Infallible>(answer)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, cert, seen)
}

fn request() -> PreparedRequest {
    PreparedRequest {
        method: "POST".into(),
        path_and_query: "/v1beta/models/gemini-2.0-flash:generateContent".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: Bytes::from_static(br#"{"contents":[]}"#),
        model_in: ModelIn::Path,
        empty_check: Default::default(),
        empty_hold_ms: 0,
        stream: false,
    }
}

#[tokio::test]
async fn a_trusted_server_gets_http2_with_the_key_and_the_body() {
    let (port, cert, mut seen) = tls_server().await;
    let base = format!("https://localhost:{port}/gw/");
    let upstream =
        HyperUpstream::with_extra_roots(&base, std::time::Duration::from_secs(5), &[cert]).expect("client");
    let answer = upstream
        .send(&request(), &Secret::new(KEY), 10_000)
        .await
        .expect("answered");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type.as_deref(), Some("application/json"));
    let body = upstream
        .read_body(answer.inner, 1 << 20, 10_000)
        .await
        .expect("body");
    assert_eq!(&body[..], br#"{"ok":true}"#);
    let got = seen.recv().await.expect("the server saw the request");
    assert_eq!(got.version, http::Version::HTTP_2, "ALPN offers h2 first");
    assert_eq!(got.path, "/gw/v1beta/models/gemini-2.0-flash:generateContent");
    assert_eq!(got.key.as_deref(), Some(KEY));
    assert_eq!(&got.body[..], br#"{"contents":[]}"#);
}

#[tokio::test]
async fn a_server_the_roots_do_not_vouch_for_never_sees_the_key() {
    let (port, _cert, mut seen) = tls_server().await;
    let base = format!("https://localhost:{port}");
    let upstream = HyperUpstream::new(&base, std::time::Duration::from_secs(5)).expect("client");
    let result = upstream.send(&request(), &Secret::new(KEY), 10_000).await;
    match result {
        Err(TransportError::Connect(text)) => {
            assert!(!text.contains(KEY));
            assert!(text.to_lowercase().contains("certificate"), "{text}");
        }
        Err(other) => panic!("expected a connect error, got {other:?}"),
        Ok(answer) => panic!("an untrusted server answered {}", answer.status),
    }
    assert!(seen.try_recv().is_err(), "no request reached the server");
}
