//! The response cache seen from outside: hit, miss, expiry, bypass, what is logged.

use std::time::Duration;

use crate::harness::{FLASH, Harness, key};

const BODY: &str = r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#;
/// The same request written another way.
const SAME: &str = r#"{ "contents" : [ { "parts" : [ { "text" : "hi" } ] } ] }"#;

async fn cached(ttl_ms: u64) -> Harness {
    Harness::start_with(&[key("a")], |config| {
        config.engine.resilience.cache.ttl_ms = ttl_ms
    })
    .await
}

fn cache_header(response: &reqwest::Response) -> Option<String> {
    let value = response.headers().get("x-gemini-proxy-cache")?;
    value.to_str().ok().map(String::from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identical_request_is_answered_from_memory_and_logged_as_a_hit() {
    let h = cached(60_000).await;
    let path = format!("/v1beta/models/{FLASH}:generateContent");
    let first = h.post(&path, BODY).await;
    assert_eq!(cache_header(&first).as_deref(), Some("miss"));
    let first_body = first.text().await.expect("body");
    // The answer is kept once its body ended: wait for the miss's record.
    h.logs(1).await;
    let second = h.post(&path, SAME).await;
    assert_eq!(second.status(), 200);
    assert_eq!(cache_header(&second).as_deref(), Some("hit"));
    assert_eq!(
        second
            .headers()
            .get("x-gemini-proxy-model")
            .and_then(|v| v.to_str().ok()),
        Some(FLASH)
    );
    assert_eq!(second.text().await.expect("body"), first_body, "the same answer");
    assert_eq!(h.fake.requests().len(), 1, "upstream was called once");
    let records = h.logs(2).await;
    assert_eq!(records[0].cache.as_deref(), Some("miss"));
    assert!(records[0].total_tokens.is_some_and(|t| t > 0));
    let hit = &records[1];
    assert_eq!((hit.status, hit.cache.as_deref()), (200, Some("hit")));
    assert_eq!((hit.total_tokens, hit.cost_usd), (Some(0), Some(0.0)));
    assert!(hit.upstream_key_ids.is_empty());

    // Another model, another body or a stream is a miss; countTokens is cached too.
    let other = h
        .post("/v1beta/models/gemini-2.5-pro:generateContent", BODY)
        .await;
    assert_eq!(cache_header(&other).as_deref(), Some("miss"));
    let stream = h
        .post(
            &format!("/v1beta/models/{FLASH}:streamGenerateContent?alt=sse"),
            BODY,
        )
        .await;
    assert_eq!(cache_header(&stream), None, "streams are not cached");
    let count = format!("/v1beta/models/{FLASH}:countTokens");
    assert_eq!(cache_header(&h.post(&count, BODY).await).as_deref(), Some("miss"));
    h.logs(5).await;
    assert_eq!(cache_header(&h.post(&count, BODY).await).as_deref(), Some("hit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cache_bypasses_it_and_answers_expire() {
    let h = cached(1_000).await;
    let path = format!("/v1beta/models/{FLASH}:generateContent");
    h.post(&path, BODY).await.text().await.expect("body");
    h.logs(1).await;
    let bypass = h
        .http
        .post(h.url(&path))
        .header("x-goog-api-key", &h.proxy_key)
        .header("cache-control", "no-cache")
        .body(BODY)
        .send()
        .await
        .expect("answers");
    assert_eq!(cache_header(&bypass).as_deref(), Some("miss"));
    bypass.text().await.expect("body");
    assert_eq!(h.fake.requests().len(), 2, "no-cache went upstream");
    let records = h.logs(2).await;
    assert_eq!(records[1].cache.as_deref(), Some("bypass"));
    // Past the TTL (1 s), the answer is gone.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let late = h.post(&path, BODY).await;
    assert_eq!(cache_header(&late).as_deref(), Some("miss"));
    assert_eq!(h.fake.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_by_default_and_errors_are_never_kept() {
    let h = Harness::start(&[key("a")]).await;
    let response = h.generate(FLASH).await;
    assert_eq!(cache_header(&response), None);
    let h = cached(60_000).await;
    for _ in 0..2 {
        let blocked = h.generate("gemini-blocked").await;
        assert_eq!(cache_header(&blocked).as_deref(), Some("miss"));
        blocked.text().await.expect("body");
        h.logs(1).await;
    }
    assert_eq!(h.fake.requests().len(), 2, "a blocked answer is not cached");
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn cached_with_redis(url: String, prefix: String) -> Harness {
    Harness::start_with(&[key("a")], move |config| {
        config.engine.resilience.cache.ttl_ms = 60_000;
        config.redis_url = Some(url);
        config.redis_prefix = prefix;
    })
    .await
}

/// Waits (without a timed assertion: up to a minute, for a loaded machine) for `done`.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..6_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_an_answer_kept_by_one_instance_is_served_by_another() {
    // A namespace of this run's own, so runs never see each other's answers.
    let prefix = format!("gp-test-cache-{}-{}", std::process::id(), proxy_axum::unix_ms());
    let a = cached_with_redis(redis_url(), prefix.clone()).await;
    let b = cached_with_redis(redis_url(), prefix).await;
    let (a_sharing, b_sharing) = (
        a.runtime_state().cache_sharing().expect("shared with REDIS_URL"),
        b.runtime_state().cache_sharing().expect("shared with REDIS_URL"),
    );
    eventually("both instances subscribed", || {
        a_sharing.subscribed() > 0 && b_sharing.subscribed() > 0
    })
    .await;
    let path = format!("/v1beta/models/{FLASH}:generateContent");
    let first = a.post(&path, BODY).await;
    assert_eq!(cache_header(&first).as_deref(), Some("miss"));
    let first_body = first.text().await.expect("body");
    eventually("b received a's answer", || b_sharing.received() == 1).await;
    let from_b = b.post(&path, SAME).await;
    assert_eq!(cache_header(&from_b).as_deref(), Some("hit"));
    assert_eq!(from_b.text().await.expect("body"), first_body);
    assert!(b.fake.requests().is_empty(), "b never called upstream");
    // b may hear the message before a's task has read Redis' reply to its PUBLISH.
    eventually("a counted its publish", || a_sharing.published() >= 1).await;
    assert_eq!(a_sharing.published(), 1);
    assert_eq!(a_sharing.received(), 0, "an instance skips its own answers");
    assert_eq!(b_sharing.published(), 0, "a hit is not published again");
    assert_eq!(b.runtime_state().cache_usage().0, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_leaves_the_cache_per_instance() {
    let h = cached_with_redis("redis://127.0.0.1:1".into(), "gp-test-unreachable".into()).await;
    let path = format!("/v1beta/models/{FLASH}:generateContent");
    let first = h.post(&path, BODY).await;
    assert_eq!(cache_header(&first).as_deref(), Some("miss"));
    first.text().await.expect("body");
    h.logs(1).await;
    assert_eq!(cache_header(&h.post(&path, BODY).await).as_deref(), Some("hit"));
    let sharing = h.runtime_state().cache_sharing().expect("configured");
    assert_eq!((sharing.subscribed(), sharing.published()), (0, 0));
}
