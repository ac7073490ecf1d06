//! `--sse-heartbeat-secs`: keep-alives while upstream is quiet (a blank line on Gemini's
//! SSE, a `: keep-alive` comment on OpenAI's), on SSE answers only, between events
//! only; nothing before upstream's headers.

use std::time::Instant;

use crate::harness::{Harness, key};

const COMMENT: &str = ": keep-alive\n\n";
const BODY: &str = r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#;

async fn heartbeat_proxy() -> Harness {
    Harness::start_with(&[key("a")], |config| config.admission.sse_heartbeat_ms = 1_000).await
}

/// The texts of a Gemini SSE body's `data:` events, joined.
fn sse_text(body: &str) -> String {
    body.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<serde_json::Value>(data).ok())
        .filter_map(|v| {
            v["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_gemini_sse_stream_gets_blank_lines_between_its_events() {
    let h = heartbeat_proxy().await;
    let response = h
        .post("/v1beta/models/gemini-silent:streamGenerateContent?alt=sse", BODY)
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("content-length").is_none());
    let body = response.text().await.expect("body");
    assert!(
        !body.contains(COMMENT),
        "google-genai fails on comment lines: {body:?}"
    );
    let log = &h.logs(1).await[0];
    assert_eq!(log.status, 200);
    assert_eq!(log.candidates_tokens, Some(9), "usage still read");
    let sent: usize = log
        .notes
        .first()
        .and_then(|n| n.strip_prefix("sent "))
        .and_then(|n| n.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // Five quiet seconds, one keep-alive after each quiet second.
    assert!((1..=6).contains(&sent), "{:?}", log.notes);
    assert_eq!(
        log.notes,
        vec![format!("sent {sent} keep-alive(s) while upstream was quiet")]
    );
    // All of them right after the first event, where the silence was.
    let between = format!("\r\n\r\n{}data: ", "\n".repeat(sent));
    assert_eq!(body.matches(&between).count(), 1, "{body:?}");
    assert_eq!(sse_text(&body), fake_gemini::FULL_TEXT, "the events are whole");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_streams_get_them_too() {
    let h = heartbeat_proxy().await;
    let response = h
        .http
        .post(h.url("/v1beta/openai/chat/completions"))
        .bearer_auth(&h.proxy_key)
        .json(&serde_json::json!({
            "model": "gemini-silent",
            "stream": true,
            "messages": [{"role": "user", "content": "hi"}],
        }))
        .send()
        .await
        .expect("answers");
    let body = response.text().await.expect("body");
    assert!(body.contains(COMMENT), "{body:?}");
    for (at, _) in body.match_indices(COMMENT) {
        assert!(
            body[..at].ends_with("\n\n"),
            "a comment inside an event: {body:?}"
        );
    }
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_array_stream_never_gets_one() {
    let h = heartbeat_proxy().await;
    let response = h
        .post("/v1beta/models/gemini-silent:streamGenerateContent", BODY)
        .await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.expect("body");
    assert!(!body.contains("keep-alive"), "{body:?}");
    let chunks: Vec<serde_json::Value> = serde_json::from_str(&body).expect("still one JSON array");
    assert_eq!(chunks.len(), 3);
    assert!(h.logs(1).await[0].notes.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_sent_before_upstreams_headers() {
    let h = heartbeat_proxy().await;
    let sent = Instant::now();
    let response = h
        .post(
            "/v1beta/models/gemini-slowheaders:streamGenerateContent?alt=sse",
            BODY,
        )
        .await;
    // Upstream held its headers back for two seconds, twice the interval: the client's
    // head waited for them (no early 200 with comments), and its body starts with
    // upstream's first event.
    assert!(
        sent.elapsed() >= fake_gemini::SLOW_HEADERS,
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(response.status(), 200);
    let body = response.text().await.expect("body");
    assert!(body.starts_with("data: "), "{body:?}");
    assert!(
        !body.contains(COMMENT) && !body.contains("\r\n\r\n\n"),
        "{body:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_by_default() {
    let h = Harness::start(&[key("a")]).await;
    let response = h
        .post("/v1beta/models/gemini-silent:streamGenerateContent?alt=sse", BODY)
        .await;
    let body = response.text().await.expect("body");
    assert!(
        !body.contains("keep-alive") && !body.contains("\r\n\r\n\n"),
        "{body:?}"
    );
    assert_eq!(sse_text(&body), fake_gemini::FULL_TEXT);
}
