//! Streams pass through as they arrive, and their usage and errors are logged.

use std::time::{Duration, Instant};

use crate::harness::{FLASH, Harness, key};

const PROMPT: &str = r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#;

fn stream_path(model: &str, sse: bool) -> String {
    let alt = if sse { "?alt=sse" } else { "" };
    format!("/v1beta/models/{model}:streamGenerateContent{alt}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_and_json_array_streams_pass_through_with_usage() {
    let h = Harness::start(&[key("good")]).await;
    let sse = h.post(&stream_path(FLASH, true), PROMPT).await;
    assert_eq!(sse.status(), 200);
    assert!(
        sse.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .contains("text/event-stream")
    );
    let text = sse.text().await.expect("body");
    assert_eq!(text.matches("data: ").count(), 3, "{text}");
    let array = h
        .post(&stream_path(FLASH, false), PROMPT)
        .await
        .text()
        .await
        .expect("body");
    let parsed: serde_json::Value = serde_json::from_str(&array).expect("a complete JSON array");
    assert_eq!(parsed.as_array().map(Vec::len), Some(3));
    for log in h.logs(2).await {
        assert!(log.stream);
        assert_eq!(
            (log.prompt_tokens, log.candidates_tokens, log.total_tokens),
            (Some(12), Some(9), Some(21))
        );
        assert_eq!(log.finish_reason.as_deref(), Some("STOP"));
        assert!(log.error_kind.is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_chunk_arrives_before_the_last_one_is_produced() {
    let h = Harness::start(&[key("good")]).await;
    let mut response = h.post(&stream_path("gemini-slowstream", true), PROMPT).await;
    let mut arrivals = Vec::new();
    let start = Instant::now();
    while let Some(chunk) = response.chunk().await.expect("chunk") {
        if !chunk.is_empty() {
            arrivals.push(start.elapsed());
        }
    }
    assert!(arrivals.len() >= 3, "{arrivals:?}");
    // Chunks are produced 300 ms apart; buffering would deliver them together.
    let spread = arrivals[arrivals.len() - 1] - arrivals[0];
    assert!(spread >= Duration::from_millis(400), "{arrivals:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mid_stream_error_is_passed_on_and_logged() {
    let h = Harness::start(&[key("good")]).await;
    let body = h
        .post(&stream_path("gemini-midstream", false), PROMPT)
        .await
        .text()
        .await
        .expect("body");
    assert!(body.contains("INTERNAL"), "{body}");
    let log = &h.logs(1).await[0];
    assert_eq!(log.status, 200);
    assert_eq!(log.error_kind.as_deref(), Some("upstream_stream_error"));
    assert_eq!(log.candidates_tokens, Some(6), "usage up to the failure is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_cut_mid_stream_is_not_retried_and_is_logged() {
    let h = Harness::start(&[key("a"), key("b")]).await;
    let response = h.post(&stream_path("gemini-drop", true), PROMPT).await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.is_err(), "the client sees the cut");
    let log = &h.logs(1).await[0];
    assert_eq!(log.error_kind.as_deref(), Some("upstream_stream_interrupted"));
    assert_eq!(log.attempts, 1, "no retry once bytes went to the client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_is_logged() {
    let h = Harness::start(&[key("good")]).await;
    let mut response = h.post(&stream_path("gemini-slowstream", true), PROMPT).await;
    let first = response.chunk().await.expect("first chunk");
    assert!(first.is_some());
    drop(response);
    let log = &h.logs(1).await[0];
    assert_eq!(log.error_kind.as_deref(), Some("client_disconnected"));
    assert!(log.ttfb_ms.is_some());
}

/// A client gone before upstream answered: the call upstream still has a log row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_before_upstream_answers_is_logged() {
    let h = Harness::start(&[key("a-hang-")]).await;
    let request = h
        .http
        .post(h.url(&format!("/v1beta/models/{FLASH}:generateContent")))
        .header("x-goog-api-key", &h.proxy_key)
        .body(PROMPT)
        .send();
    let client = tokio::spawn(request);
    while h.fake.requests().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    client.abort();
    let log = &h.logs(1).await[0];
    assert_eq!(log.error_kind.as_deref(), Some("client_disconnected"), "{log:?}");
    assert_eq!(log.status, 499);
    assert_eq!(log.upstream_key_ids.len(), 1, "the key called is recorded");
    assert_eq!(log.answered_key_id, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_stream_usage_comes_from_the_final_chunk() {
    let h = Harness::start(&[key("good")]).await;
    let body = r#"{"model":"gemini-2.5-flash","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
    let response = h
        .http
        .post(h.url("/v1/chat/completions"))
        .bearer_auth(&h.proxy_key)
        .body(body)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("body");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let log = &h.logs(1).await[0];
    assert_eq!(
        (log.api.as_str(), log.route.as_str()),
        ("openai", "chat.completions")
    );
    assert_eq!(log.model.as_deref(), Some(FLASH));
    assert!(log.stream);
    assert_eq!((log.prompt_tokens, log.total_tokens), (Some(12), Some(21)));
    assert_eq!(h.fake.requests()[0].path, "/v1beta/openai/chat/completions");
}

/// A client that did not ask for usage gets none, and the log has the tokens anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_stream_without_include_usage_is_logged_with_tokens() {
    let h = Harness::start(&[key("good")]).await;
    let body = r#"{"model":"gemini-2.5-flash","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let response = h
        .http
        .post(h.url("/v1/chat/completions"))
        .bearer_auth(&h.proxy_key)
        .body(body)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("body");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(text.contains("chat.completion.chunk"), "{text}");
    assert!(
        !text.contains("\"usage\":{"),
        "the client asked for no usage: {text}"
    );
    let log = &h.logs(1).await[0];
    assert_eq!((log.prompt_tokens, log.total_tokens), (Some(12), Some(21)));
    let sent = &h.fake.requests()[0];
    assert!(sent.body_len > body.len(), "upstream was asked for usage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_flushes_queued_logs() {
    let h = Harness::start(&[key("good")]).await;
    for _ in 0..20 {
        assert_eq!(h.generate(FLASH).await.status(), 200);
    }
    let store = h.shutdown().await;
    let query = proxy_core::admin::LogQuery {
        limit: 100,
        ..Default::default()
    };
    let records = proxy_core::admin::AdminStore::list_logs(store.as_ref(), &query)
        .await
        .expect("logs");
    assert_eq!(records.len(), 20);
}
