//! What a proxy-key holder must not reach through the proxy: paths outside the API
//! (or outside the upstream base URL's prefix), the key on a redirect, a stalled
//! error body that outlives the attempt's deadline, the credential in disguise.

use std::time::Duration;

use fake_gemini::FakeGemini;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{FLASH, Harness, key};

/// Status and body of a GET sent byte for byte: HTTP clients normalise `..` and
/// `%2e%2e` before sending, which would hide exactly what is under test.
async fn raw_get(h: &Harness, path: &str) -> (u16, String) {
    let addr = h.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.expect("proxy accepts");
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nx-goog-api-key: {}\r\nconnection: close\r\n\r\n",
        h.proxy_key
    );
    stream.write_all(request.as_bytes()).await.expect("request sent");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("answer read");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_and_encoded_slashes_never_leave_the_base_path() {
    let h = Harness::start_with(&[key("good")], |c| c.upstream_base_url.push_str("/prefix")).await;
    h.fake.set_base_path("/prefix");
    let attacks = [
        "/v1/%2e%2e/%2e%2e/escaped",
        "/v1beta/../../escaped",
        "/v1beta/models/.%2E/.%2e/%2e./escaped",
        "/v1beta/%2E%2E/%2e%2E/escaped",
        "/v1beta/files/%2e",
        "/v1beta/./models",
        "/v1beta/files%2F..%2F..%2Fescaped",
        "/v1beta/files%2f..%2f..%2fescaped",
        "/v1beta/files/x%5C..%5C..%5Cescaped",
        "/v1beta/files/x%5c..%5c..%5cescaped",
    ];
    for path in attacks {
        let (status, body) = raw_get(&h, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        let error: Value = serde_json::from_str(&body).unwrap_or_default();
        assert_eq!(error["error"]["status"], "INVALID_ARGUMENT", "{path}: {body}");
    }
    // A raw backslash is refused too (by the HTTP server or by the route).
    let (status, _) = raw_get(&h, "/v1beta/files/x\\..\\..\\escaped").await;
    assert_eq!(status, 400);
    assert_eq!(h.fake.requests(), [], "nothing reached upstream");

    // Ordinary paths still go upstream, under the prefix.
    assert_eq!(h.generate(FLASH).await.status(), 200);
    assert_eq!(raw_get(&h, "/v1beta/models/gemini-2.5-flash").await.0, 200);
    let paths: Vec<String> = h.fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            format!("/prefix/v1beta/models/{FLASH}:generateContent"),
            format!("/prefix/v1beta/models/{FLASH}"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_the_key_param_is_a_credential_and_never_forwarded() {
    let h = Harness::start(&[key("good")]).await;
    let list = "/v1beta/models";
    for param in ["%6Bey", "%6bey", "%6B%65%79", "$key", "%24key", "KEY", "Key"] {
        let response = h
            .http
            .get(h.url(&format!("{list}?pageSize=1&{param}={}", h.proxy_key)))
            .send()
            .await
            .expect("proxy answers");
        assert_eq!(response.status(), 200, "{param} carries the proxy key");
    }
    // Beside a header credential, any spelling is stripped all the same.
    let response = h
        .http
        .get(h.url(&format!("{list}?%6Bey=x&pageSize=1&%24key=y&KEY=z")))
        .header("x-goog-api-key", &h.proxy_key)
        .send()
        .await
        .expect("proxy answers");
    assert_eq!(response.status(), 200);
    let queries: Vec<Option<String>> = h.fake.requests().into_iter().map(|r| r.query).collect();
    assert_eq!(queries, vec![Some("pageSize=1".to_string()); 8]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_never_followed_and_the_key_stays_home() {
    let elsewhere = FakeGemini::start().await.expect("second server starts");
    let keys = [key("a-r302-"), key("good")];
    let h = Harness::start(&keys).await;
    h.fake.set_redirect_target(&format!(
        "{}/v1beta/models/{FLASH}:generateContent",
        elsewhere.base_url()
    ));
    let response = h.generate(FLASH).await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap_or_default();
    assert_eq!(body["error"]["code"], 502, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("302")),
        "{body}"
    );
    assert_eq!(elsewhere.requests(), [], "the other origin got nothing, no key");
    assert_eq!(h.keys_used(), [keys[0].clone()], "not retried on other keys");
    let log = &h.logs(1).await[0];
    assert_eq!(
        (log.status, log.error_kind.as_deref()),
        (502, Some("upstream_redirect"))
    );
    let message = log.error_message.clone().unwrap_or_default();
    assert!(
        message.contains("302") && !message.contains("127.0.0.1"),
        "{message}"
    );
    let rows = h.settled_key_rows().await;
    assert!(
        rows.iter()
            .all(|r| r.invalid_reason.is_none() && r.cooldowns.is_empty())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_error_body_times_out_the_attempt_and_fails_over() {
    let keys = [key("s-stallbody-"), key("good")];
    let h = Harness::start_with(&keys, |c| c.engine.attempt_timeout_ms = 1_000).await;
    // The fake stalls for two minutes; far less than that proves the attempt's
    // deadline cut the body read short.
    let response = tokio::time::timeout(Duration::from_secs(60), h.generate(FLASH))
        .await
        .expect("the proxy answers before the stalled body would have ended");
    assert_eq!(response.status(), 200);
    let log = &h.logs(1).await[0];
    assert_eq!((log.attempts, log.answered_key_id), (2, Some(2)));
    let rows = h.settled_key_rows().await;
    assert!(
        rows.iter()
            .all(|r| r.invalid_reason.is_none() && r.cooldowns.is_empty()),
        "a timed-out attempt says nothing about the key: {rows:?}"
    );
}
