//! Client authentication and bad input, answered in the shape the client expects.

use std::time::Duration;

use proxy_core::admin::AdminStore;
use serde_json::Value;

use crate::harness::{FLASH, Harness, key};

async fn json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_unknown_and_revoked_proxy_keys_are_refused() {
    let h = Harness::start(&[key("good")]).await;
    let path = h.url(&format!("/v1beta/models/{FLASH}:generateContent"));
    let (status, body) = json(h.http.post(&path).body("{}").send().await.expect("answer")).await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    let unknown = h
        .http
        .post(&path)
        .header("x-goog-api-key", "gp-nope")
        .body("{}")
        .send()
        .await;
    let (status, body) = json(unknown.expect("answer")).await;
    assert_eq!((status, body["error"]["code"].as_u64()), (401, Some(401)));
    // An upstream Gemini key is not a proxy key either.
    let upstream = h
        .http
        .post(&path)
        .header("x-goog-api-key", key("good"))
        .body("{}")
        .send()
        .await;
    assert_eq!(upstream.expect("answer").status(), 401);
    // OpenAI routes answer in OpenAI's shape.
    let chat = h
        .http
        .post(h.url("/v1beta/openai/chat/completions"))
        .bearer_auth("gp-nope")
        .body("{}")
        .send();
    let (status, body) = json(chat.await.expect("answer")).await;
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (401, Some("authentication_error"))
    );
    assert_eq!(body["error"]["code"], "invalid_api_key");
    // The key in the query works, and is not forwarded.
    let ok = h
        .http
        .post(format!("{path}?key={}", h.proxy_key))
        .body("{}")
        .send()
        .await
        .expect("answer");
    assert_eq!(ok.status(), 200);
    assert!(
        h.fake
            .requests()
            .iter()
            .all(|r| r.query.as_deref().is_none_or(|q| !q.contains("key=")))
    );
    // Revocation takes effect with the next refresh.
    h.store.revoke_proxy_key(1).await.expect("revoked");
    assert_eq!(h.generate_until(403).await, 403);
    let kind = |l: &proxy_core::log::LogRecord, k: &str| l.error_kind.as_deref() == Some(k);
    let rejected = h
        .logs_where(|logs| logs.iter().any(|l| kind(l, "revoked_api_key")))
        .await;
    assert!(rejected.iter().any(|l| kind(l, "missing_api_key")));
    assert!(rejected.iter().any(|l| kind(l, "invalid_api_key")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_a_400_without_an_upstream_call() {
    let h = Harness::start(&[key("good")]).await;
    let (status, body) = json(
        h.post(&format!("/v1beta/models/{FLASH}:generateContent"), "{not json")
            .await,
    )
    .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
    let chat = h
        .http
        .post(h.url("/v1/chat/completions"))
        .bearer_auth(&h.proxy_key)
        .body("[1,")
        .send();
    let (status, body) = json(chat.await.expect("answer")).await;
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (400, Some("invalid_request_error"))
    );
    assert!(h.fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_a_gemini_shaped_404() {
    let h = Harness::start(&[key("good")]).await;
    let (status, body) = json(h.http.get(h.url("/nope")).send().await.expect("answer")).await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (404, Some("NOT_FOUND"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_of_25_mb_passes_through() {
    let h = Harness::start_with(&[key("good")], |c| c.admission.max_body_bytes = 30 * 1024 * 1024).await;
    let image = "A".repeat(25 * 1024 * 1024);
    let body = format!(
        r#"{{"contents":[{{"parts":[{{"inlineData":{{"mimeType":"image/png","data":"{image}"}}}}]}}]}}"#
    );
    let response = h
        .post(&format!("/v1beta/models/{FLASH}:generateContent"), &body)
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(h.fake.requests()[0].body_len, body.len());
}

/// Sends `head` (and `body`) on a fresh connection and reads the response head.
async fn raw_exchange(h: &Harness, head: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = h.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connects");
    stream.write_all(head.as_bytes()).await.expect("head sent");
    stream.write_all(body).await.expect("body sent");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_oversize_body_is_413_before_it_is_read() {
    let h = Harness::start_with(&[key("good")], |c| c.admission.max_body_bytes = 1024).await;
    // The body is announced and never sent: only a check of the header answers.
    let head = format!(
        "POST /v1beta/models/{FLASH}:generateContent HTTP/1.1\r\nhost: x\r\nx-goog-api-key: {}\r\n\
         content-type: application/json\r\ncontent-length: 5000000\r\n\r\n",
        h.proxy_key
    );
    let answer = tokio::time::timeout(Duration::from_secs(30), raw_exchange(&h, &head, b""))
        .await
        .expect("answered without waiting for the body");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(h.fake.requests().is_empty());
    let logged = h.logs(1).await;
    assert_eq!(logged[0].error_kind.as_deref(), Some("body_too_large"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_past_the_limit_is_413() {
    let h = Harness::start_with(&[key("good")], |c| c.admission.max_body_bytes = 1024).await;
    let head = format!(
        "POST /v1beta/models/{FLASH}:generateContent HTTP/1.1\r\nhost: x\r\nx-goog-api-key: {}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
        h.proxy_key
    );
    let chunk = format!("400\r\n{}\r\n", " ".repeat(1024));
    let body = format!("{chunk}{chunk}0\r\n\r\n");
    let answer = raw_exchange(&h, &head, body.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(h.fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_list_paging_and_other_routes_pass_through() {
    let h = Harness::start(&[key("good")]).await;
    let list = h
        .http
        .get(h.url("/v1beta/models?pageSize=1"))
        .header("x-goog-api-key", &h.proxy_key)
        .send();
    let (status, body) = json(list.await.expect("answer")).await;
    assert_eq!(status, 200);
    assert_eq!(body["models"].as_array().map(Vec::len), Some(1));
    assert!(body["nextPageToken"].is_string());
    assert_eq!(h.fake.requests()[0].query.as_deref(), Some("pageSize=1"));
    let get = h
        .http
        .get(h.url(&format!("/v1beta/models/{FLASH}")))
        .header("x-goog-api-key", &h.proxy_key)
        .send();
    let (status, body) = json(get.await.expect("answer")).await;
    assert_eq!(
        (status, body["name"].as_str()),
        (200, Some("models/gemini-2.5-flash"))
    );
    for op in ["countTokens", "embedContent"] {
        let response = h
            .post(&format!("/v1beta/models/{FLASH}:{op}"), r#"{"contents":[]}"#)
            .await;
        assert_eq!(response.status(), 200, "{op}");
    }
    let missing = h
        .http
        .get(h.url("/v1beta/tunedModels/x"))
        .header("x-goog-api-key", &h.proxy_key)
        .send();
    assert_eq!(
        missing.await.expect("answer").status(),
        404,
        "upstream's own 404 passes through"
    );
}

/// A stranger's refusals are counted, and only a sample is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_without_a_proxy_key_are_counted_and_sampled() {
    let h = Harness::start(&[key("good")]).await;
    let path = h.url(&format!("/v1beta/models/{FLASH}:generateContent"));
    for _ in 0..40 {
        let answer = h
            .http
            .post(&path)
            .header("x-goog-api-key", "gp-not-a-key")
            .body("{}")
            .send()
            .await
            .expect("answer");
        assert_eq!(answer.status(), 401);
    }
    assert_eq!(h.generate(FLASH).await.status(), 200);
    // Records are written in order: once the 200 is in, every refusal logged is too.
    let logged = h.logs_where(|rows| rows.iter().any(|r| r.status == 200)).await;
    let refused = logged.iter().filter(|r| r.status == 401).count();
    assert_eq!(refused, proxy_core::request::SAMPLED_PER_SOURCE as usize);
    let health: Value = h
        .http
        .get(h.url("/healthz"))
        .send()
        .await
        .expect("healthz")
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(
        health["refused_without_proxy_key"]["invalid_api_key"], 40,
        "{health}"
    );
    assert_eq!(health["refusals_not_logged"], 35, "{health}");
}
