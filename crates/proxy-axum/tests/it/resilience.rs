//! Fallback, breaker and retry budget seen from outside, against the fake's
//! `overloaded` models (every key answers 503 for them), counted in its request log.

use proxy_core::resilience::{Fallbacks, RetryBudgetConfig};
use proxy_core::retry::RetryPolicy;

use crate::harness::{FLASH, Harness, key};

const OVERLOADED: &str = "gemini-overloaded";

/// The `x-gemini-proxy-model` of an answer.
fn served_model(response: &reqwest::Response) -> Option<&str> {
    response
        .headers()
        .get("x-gemini-proxy-model")
        .and_then(|v| v.to_str().ok())
}

fn fallback(pairs: &[&str]) -> Fallbacks {
    Fallbacks::parse(pairs.iter().copied()).expect("valid fallbacks")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_model_is_served_by_its_fallback_on_both_dialects() {
    let keys = [key("a"), key("b")];
    let h = Harness::start_with(&keys, |config| {
        config.engine.resilience.fallbacks = fallback(&[&format!("{OVERLOADED}={FLASH}")]);
        config.engine.resilience.breaker.failures = 0;
    })
    .await;
    let response = h.generate(OVERLOADED).await;
    assert_eq!(response.status(), 200);
    assert_eq!(served_model(&response), Some(FLASH));
    let paths: Vec<String> = h.fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths.len(),
        3,
        "both keys for the overloaded model, then one: {paths:?}"
    );
    assert!(
        paths[2].ends_with(&format!("/models/{FLASH}:generateContent")),
        "{paths:?}"
    );
    let log = &h.logs(1).await[0];
    assert_eq!(log.model.as_deref(), Some(OVERLOADED), "the model asked for");
    assert_eq!(
        log.served_model.as_deref(),
        Some(FLASH),
        "the model that answered"
    );
    assert_eq!(log.status, 200);
    assert_eq!(log.upstream_key_ids.len(), 3);
    assert_eq!(
        log.notes,
        vec![format!("fallback {OVERLOADED} → {FLASH} (upstream 503)")]
    );
    assert!(
        log.cost_usd.is_some_and(|c| c > 0.0),
        "priced as the model that served it"
    );

    // OpenAI's route names the model in the body: it is rewritten there.
    let response = h
        .http
        .post(h.url("/v1beta/openai/chat/completions"))
        .bearer_auth(&h.proxy_key)
        .json(&serde_json::json!({
            "model": OVERLOADED,
            "messages": [{"role": "user", "content": "hi"}],
        }))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    assert_eq!(served_model(&response), Some(FLASH));
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(body["choices"][0]["message"]["content"].is_string(), "{body}");
    let records = h.logs(2).await;
    assert_eq!(records[1].api, "openai");
    assert_eq!(records[1].served_model.as_deref(), Some(FLASH));

    // A model without a fallback says which model answered too.
    let response = h.generate(FLASH).await;
    assert_eq!(served_model(&response), Some(FLASH));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_fails_fast_with_retry_after_and_is_logged() {
    let keys = [key("a"), key("b"), key("c")];
    let h = Harness::start_with(&keys, |config| {
        config.engine.resilience.breaker.failures = 3;
        config.engine.resilience.breaker.pause_ms = 60_000;
    })
    .await;
    let first = h.generate(OVERLOADED).await;
    assert_eq!(first.status(), 503);
    assert_eq!(h.fake.requests().len(), 3, "three 5xx open it");
    let second = h.generate(OVERLOADED).await;
    assert_eq!(second.status(), 503);
    assert_eq!(
        second.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("60")
    );
    let body: serde_json::Value = second.json().await.expect("json");
    assert_eq!(body["error"]["status"], "UNAVAILABLE");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(OVERLOADED) && message.contains("pausing"),
        "{message}"
    );
    assert_eq!(h.fake.requests().len(), 3, "nothing went upstream while open");
    // /healthz says so, and still answers 200: other models are not affected.
    let health = h.http.get(h.url("/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), 200);
    let health: serde_json::Value = health.json().await.expect("json");
    assert_eq!(health["open_breakers"][OVERLOADED], 60, "{health}");
    assert_eq!(h.generate(FLASH).await.status(), 200);
    let records = h.logs(3).await;
    assert!(
        records[0]
            .notes
            .iter()
            .any(|n| n.starts_with("breaker opened for")),
        "{:?}",
        records[0].notes
    );
    assert_eq!(records[1].error_kind.as_deref(), Some("breaker_open"));
    assert!(records[1].upstream_key_ids.is_empty());
}

/// Sends 20 requests at once for the overloaded model and counts upstream calls.
async fn upstream_calls_for_20_concurrent(h: &Harness) -> usize {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let http = h.http.clone();
        let url = h.url(&format!("/v1beta/models/{OVERLOADED}:generateContent"));
        let key = h.proxy_key.clone();
        tasks.push(tokio::spawn(async move {
            let response = http
                .post(url)
                .header("x-goog-api-key", key)
                .header("content-type", "application/json")
                .body(r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#)
                .send()
                .await
                .expect("answers");
            response.status().as_u16()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("task"), 503);
    }
    let calls = h.fake.requests().len();
    eprintln!("20 concurrent requests, every key answering 503: {calls} upstream calls");
    calls
}

fn outage_config(config: &mut proxy_axum::ProxyConfig, percent: u32) {
    // Production's backoff, so retries come after the first wave as they would.
    config.engine.retry = RetryPolicy::default();
    config.engine.resilience.breaker.failures = 0;
    config.engine.resilience.retry_budget = RetryBudgetConfig { percent, floor: 3 };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_keeps_an_outage_from_multiplying() {
    let keys: Vec<String> = (0..5).map(|i| key(&format!("k{i}"))).collect();
    let h = Harness::start_with(&keys, |config| outage_config(config, 20)).await;
    let calls = upstream_calls_for_20_concurrent(&h).await;
    assert!(calls >= 20, "each request went once: {calls}");
    assert!(calls <= 40, "at most 2x the requests: {calls}");
    let records = h.logs(20).await;
    let refused = records
        .iter()
        .filter(|r| r.notes.iter().any(|n| n.starts_with("retry budget spent")))
        .count();
    assert!(refused > 0, "the budget refused retries");

    // Without the budget every request retries on every key: 5x.
    let unbounded = Harness::start_with(&keys, |config| outage_config(config, 100)).await;
    assert_eq!(upstream_calls_for_20_concurrent(&unbounded).await, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_default_breaker_an_outage_costs_little_more_than_one_call_per_request() {
    let keys: Vec<String> = (0..5).map(|i| key(&format!("k{i}"))).collect();
    let h = Harness::start_with(&keys, |config| config.engine.retry = RetryPolicy::default()).await;
    let calls = upstream_calls_for_20_concurrent(&h).await;
    // Requests that arrive after the breaker opened do not go upstream at all.
    assert!((5..=40).contains(&calls), "{calls}");
    // Once open, nothing more goes upstream.
    let response = h.generate(OVERLOADED).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(h.fake.requests().len(), calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_answer_is_retried_on_another_key_and_logged() {
    let keys = [key("e-empty-"), key("good")];
    let h = Harness::start(&keys).await;
    let response = h.generate(FLASH).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(
        body["candidates"][0]["content"]["parts"][0]["text"],
        fake_gemini::FULL_TEXT
    );
    assert_eq!(h.keys_used(), keys.to_vec(), "the empty key, then the other");
    let log = &h.logs(1).await[0];
    assert_eq!(
        (log.answered_key_id, log.upstream_key_ids.clone()),
        (Some(2), vec![1, 2])
    );
    assert_eq!(
        log.notes,
        vec!["empty answer from key 1 (finishReason STOP with no parts, 12 tokens): retried on another key"]
    );

    // OpenAI's non-streamed chat too; with a single key the empty answer is served.
    h.fake.clear_requests();
    let chat = |h: &Harness| {
        h.http
            .post(h.url("/v1beta/openai/chat/completions"))
            .bearer_auth(&h.proxy_key)
            .json(&serde_json::json!({"model": FLASH, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    let body: serde_json::Value = chat(&h).await.expect("answers").json().await.expect("json");
    assert!(
        body["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{body}"
    );
    let alone = Harness::start(&[key("e-empty-")]).await;
    let body: serde_json::Value = chat(&alone).await.expect("answers").json().await.expect("json");
    assert_eq!(body["choices"][0]["message"]["content"], "");
    let log = &alone.logs(1).await[0];
    assert_eq!(log.status, 200);
    assert_eq!(
        log.notes.last().map(String::as_str),
        Some("no other key answered better: the empty answer was served"),
        "{:?}",
        log.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_stream_is_retried_on_another_key_before_anything_is_sent() {
    let keys = [key("e-empty-"), key("good")];
    let h = Harness::start(&keys).await;
    let path = format!("/v1beta/models/{FLASH}:streamGenerateContent?alt=sse");
    let response = h.post(&path, r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("body");
    assert!(text.contains(fake_gemini::STREAM_TEXTS[0]), "{text}");
    assert!(
        !text.contains(r#"{"content":{"role":"model"}"#),
        "nothing of the empty one: {text}"
    );
    assert_eq!(h.keys_used(), keys.to_vec(), "the empty key, then the other");
    let log = &h.logs(1).await[0];
    assert_eq!(log.answered_key_id, Some(2));
    assert_eq!(
        log.notes,
        vec![
            "empty answer from key 1 (a stream with nothing in it (finishReason STOP with no parts), 12 tokens): retried on another key"
        ]
    );

    // OpenAI streams too.
    h.fake.clear_requests();
    let chat = h
        .http
        .post(h.url("/v1beta/openai/chat/completions"))
        .bearer_auth(&h.proxy_key)
        .json(&serde_json::json!({"model": FLASH, "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answers");
    let text = chat.text().await.expect("body");
    assert!(text.contains(fake_gemini::STREAM_TEXTS[0]), "{text}");
    assert_eq!(h.fake.requests().len(), 2, "{text}");

    // A JSON-array stream is not checked: its empty answer goes on.
    h.fake.clear_requests();
    let array = h
        .post(
            &format!("/v1beta/models/{FLASH}:streamGenerateContent"),
            r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#,
        )
        .await;
    let array = array.text().await.expect("body");
    let served_by_empty = h.fake.requests().len() == 1 && !array.contains(fake_gemini::STREAM_TEXTS[0]);
    let served_by_good = h.fake.requests().len() == 1 && array.contains(fake_gemini::STREAM_TEXTS[0]);
    assert!(
        served_by_empty || served_by_good,
        "one call, whatever it said: {array}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_empty_off_passes_the_empty_answer_on() {
    let keys = [key("e-empty-"), key("good")];
    let h = Harness::start_with(&keys, |config| config.admission.retry_empty = false).await;
    let body: serde_json::Value = h.generate(FLASH).await.json().await.expect("json");
    assert!(body["candidates"][0]["content"]["parts"].is_null(), "{body}");
    assert_eq!(h.keys_used().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_request_is_served_when_the_keys_2_s_cooldown_ends() {
    let h = Harness::start_with(&[key("w-once429-")], |config| {
        config.engine.resilience.queue.wait_ms = 10_000;
    })
    .await;
    let sent = std::time::Instant::now();
    let response = h.generate(FLASH).await;
    assert_eq!(response.status(), 200);
    // RetryInfo said 2 s: the request waited for it rather than answering 429.
    assert!(
        sent.elapsed() >= std::time::Duration::from_millis(1_900),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(h.fake.requests().len(), 2, "the 429, then the answer");
    let log = &h.logs(1).await[0];
    assert_eq!(log.status, 200);
    assert!(
        log.notes
            .iter()
            .any(|n| n.starts_with("waited ") && n.ends_with("then a key was free")),
        "{:?}",
        log.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_queue_bound_a_request_is_refused_at_once() {
    let h = Harness::start_with(&[key("q-r429m-")], |config| {
        config.engine.resilience.queue.wait_ms = 3_000;
        config.engine.resilience.queue.max = 1;
    })
    .await;
    // The first request finds the key's quota spent (17 s) and waits its 3 s.
    let waiting = tokio::spawn({
        let http = h.http.clone();
        let url = h.url(&format!("/v1beta/models/{FLASH}:generateContent"));
        let key = h.proxy_key.clone();
        async move {
            let response = http
                .post(url)
                .header("x-goog-api-key", key)
                .body(r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#)
                .send()
                .await
                .expect("answers");
            response.status().as_u16()
        }
    });
    for _ in 0..500 {
        if h.runtime_state().queued() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(h.runtime_state().queued(), 1, "the first request waits");
    // The queue's one place is taken: the next request is refused without waiting.
    let refused = h.generate(FLASH).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: serde_json::Value = refused.json().await.expect("json");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("queue"), "{message}");
    assert!(!waiting.is_finished(), "refused while the first still waits");
    assert_eq!(
        waiting.await.expect("task"),
        429,
        "its wait ran out, the key still cooling"
    );
    let records = h.logs(2).await;
    assert!(
        records
            .iter()
            .any(|r| r.error_kind.as_deref() == Some("queue_full"))
    );
    assert!(
        records
            .iter()
            .any(|r| r.notes.iter().any(|n| n.ends_with("no key freed in time")))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_leaves_the_queue() {
    let h = Harness::start_with(&[key("q-r429m-")], |config| {
        config.engine.resilience.queue.wait_ms = 30_000;
    })
    .await;
    let gone = h
        .http
        .post(h.url(&format!("/v1beta/models/{FLASH}:generateContent")))
        .header("x-goog-api-key", &h.proxy_key)
        .body(r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#)
        .timeout(std::time::Duration::from_millis(500))
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up while queued");
    let records = h.logs_where(|rs| rs.iter().any(|r| r.status == 499)).await;
    assert_eq!(records[0].error_kind.as_deref(), Some("client_disconnected"));
    assert_eq!(h.runtime_state().queued(), 0, "its place went with it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_key_is_hedged_by_the_next_and_the_faster_answer_wins() {
    let keys = [key("h-slowkey-"), key("good")];
    let h = Harness::start_with(&keys, |config| config.engine.resilience.hedge_after_ms = 200).await;
    let response = h.generate(FLASH).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(
        body["candidates"][0]["content"]["parts"][0]["text"],
        fake_gemini::FULL_TEXT
    );
    let log = &h.logs(1).await[0];
    assert_eq!(log.upstream_key_ids, vec![1, 2], "both attempts are in the log");
    assert_eq!(log.answered_key_id, Some(2));
    assert_eq!(
        log.notes,
        vec![
            "hedged: key 2 called after 200 ms without headers from key 1; key 2 answered first, the call to key 1 was cancelled"
        ]
    );
    // Streams are never hedged: the slow key answers them, later.
    h.fake.clear_requests();
    let stream = h
        .post(
            &format!("/v1beta/models/{FLASH}:streamGenerateContent?alt=sse"),
            r#"{"contents":[]}"#,
        )
        .await;
    stream.text().await.expect("body");
    let used: Vec<String> = h.keys_used();
    assert_eq!(used.len(), 1, "{used:?}");
}
