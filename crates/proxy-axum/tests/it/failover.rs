//! Key pool behaviour seen from outside: rotation, cooldowns, invalid keys, retries.

use std::collections::HashSet;

use proxy_axum::unix_ms as now_ms;
use proxy_core::pacific::next_midnight_pacific_ms;

use crate::harness::{FLASH, Harness, key};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_is_logged_with_tokens_and_keys() {
    let h = Harness::start(&[key("good")]).await;
    let response = h.generate(FLASH).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(
        body["candidates"][0]["content"]["parts"][0]["text"],
        fake_gemini::FULL_TEXT
    );
    let log = &h.logs(1).await[0];
    assert_eq!(
        (log.status, log.route.as_str(), log.model.as_deref()),
        (200, "generateContent", Some(FLASH))
    );
    assert_eq!(
        (log.prompt_tokens, log.candidates_tokens, log.total_tokens),
        (Some(12), Some(7), Some(19))
    );
    assert_eq!(log.finish_reason.as_deref(), Some("STOP"));
    assert_eq!(
        (log.attempts, log.upstream_key_ids.len(), log.answered_key_id),
        (1, 1, Some(1))
    );
    assert_eq!(log.proxy_key_id, Some(1));
    assert!(log.error_kind.is_none(), "{:?}", log.error_kind);
    assert!(log.ttfb_ms.is_some());
    assert!(log.overhead_us.is_some(), "the proxy's own time is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotates_over_healthy_keys_least_recently_used_first() {
    let keys = [key("a"), key("b"), key("c")];
    let h = Harness::start(&keys).await;
    for _ in 0..6 {
        assert_eq!(h.generate(FLASH).await.status(), 200);
    }
    let used: Vec<usize> = h.keys_used().iter().map(|k| h.key_index(k)).collect();
    assert_eq!(used, vec![0, 1, 2, 0, 1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_minute_429_cools_the_key_for_that_model_only() {
    let keys = [key("q-r429m-"), key("good")];
    let h = Harness::start(&keys).await;
    let before = now_ms();
    assert_eq!(h.generate(FLASH).await.status(), 200);
    let log = &h.logs(1).await[0];
    assert_eq!((log.attempts, log.answered_key_id), (2, Some(2)));
    assert_eq!(log.upstream_key_ids, vec![1, 2]);
    let attempts: Vec<(i64, &str, &str, Option<u16>)> = log
        .attempt_details
        .iter()
        .map(|a| (a.key_id, a.model.as_str(), a.outcome.as_str(), a.status))
        .collect();
    assert_eq!(
        attempts,
        vec![(1, FLASH, "rate_limited", Some(429)), (2, FLASH, "ok", Some(200))],
        "the stored record explains the failover"
    );
    let rows = h.wait_keys(|rows| !rows[0].cooldowns.is_empty()).await;
    let (model, until) = &rows[0].cooldowns[0];
    assert_eq!(model, FLASH);
    // RetryInfo said 17 s.
    assert!(
        *until >= before + 17_000 && *until <= now_ms() + 17_000,
        "{until}"
    );
    // The cooling key is skipped for this model from now on...
    h.fake.clear_requests();
    assert_eq!(h.generate(FLASH).await.status(), 200);
    assert_eq!(h.keys_used(), vec![keys[1].clone()]);
    // ...but another model still gets it.
    h.fake.clear_requests();
    assert_eq!(h.generate("gemini-2.5-pro").await.status(), 200);
    assert_eq!(h.keys_used()[0], keys[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_day_429_cools_until_midnight_pacific() {
    let h = Harness::start(&[key("d-r429d-"), key("good")]).await;
    assert_eq!(h.generate(FLASH).await.status(), 200);
    let rows = h.wait_keys(|rows| !rows[0].cooldowns.is_empty()).await;
    assert_eq!(rows[0].cooldowns[0].1, next_midnight_pacific_ms(now_ms()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_and_suspended_keys_are_disabled_with_reason() {
    // Two broken keys of four: half the pool, which the burst guard still allows.
    let keys = [key("i-invalid-"), key("s-suspended-"), key("good"), key("good2")];
    let h = Harness::start(&keys).await;
    assert_eq!(h.generate(FLASH).await.status(), 200);
    let rows = h
        .wait_keys(|rows| rows[0].invalid_reason.is_some() && rows[1].invalid_reason.is_some())
        .await;
    assert_eq!(rows[0].invalid_reason.as_deref(), Some("API_KEY_INVALID"));
    assert_eq!(rows[1].invalid_reason.as_deref(), Some("CONSUMER_SUSPENDED"));
    h.fake.clear_requests();
    for _ in 0..4 {
        assert_eq!(h.generate("gemini-2.5-pro").await.status(), 200);
    }
    assert!(
        h.keys_used().iter().all(|k| k == &keys[2] || k == &keys[3]),
        "invalid keys are never used again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_retry_on_other_keys_without_marking_them() {
    let keys = [key("a-r503-"), key("b-r500-"), key("c-r504-"), key("good")];
    let h = Harness::start(&keys).await;
    assert_eq!(h.generate(FLASH).await.status(), 200);
    let log = &h.logs(1).await[0];
    assert_eq!(log.attempts, 4);
    let rows = h.settled_key_rows().await;
    assert!(
        rows.iter()
            .all(|r| r.invalid_reason.is_none() && r.cooldowns.is_empty()),
        "{rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overloaded_model_returns_upstreams_503_after_the_attempt_budget() {
    let keys: Vec<String> = (0..6).map(|i| key(&format!("k{i}"))).collect();
    let h = Harness::start(&keys).await;
    let response = h.generate("gemini-overloaded").await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["status"], "UNAVAILABLE");
    let log = &h.logs(1).await[0];
    assert_eq!(log.attempts, 5, "max attempts by default");
    assert_eq!(
        log.upstream_key_ids.iter().collect::<HashSet<_>>().len(),
        5,
        "never the same key twice"
    );
    assert_eq!(log.error_kind.as_deref(), Some("upstream_unavailable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_keys_cooling_is_answered_locally_with_retry_after() {
    let h = Harness::start(&[key("a-r429m-"), key("b-r429m-")]).await;
    let response = h.generate(FLASH).await;
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((1..=17).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    let calls = h.fake.requests().len();
    assert_eq!(h.generate(FLASH).await.status(), 429);
    assert_eq!(
        h.fake.requests().len(),
        calls,
        "no upstream call while every key cools down"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_resets_retry_but_never_mark_the_key() {
    let keys = [key("h-hang-"), key("r-reset-"), key("good")];
    let h = Harness::start_with(&keys, |c| c.engine.attempt_timeout_ms = 2_000).await;
    assert_eq!(h.generate(FLASH).await.status(), 200);
    let log = &h.logs(1).await[0];
    assert_eq!(log.attempts, 3);
    assert_eq!(log.answered_key_id, Some(3));
    let rows = h.settled_key_rows().await;
    assert!(
        rows.iter()
            .all(|r| r.invalid_reason.is_none() && r.cooldowns.is_empty()),
        "{rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_added_to_the_store_while_serving_are_used() {
    use proxy_core::admin::AdminStore;
    let h = Harness::start(&[key("i-invalid-")]).await;
    assert_eq!(h.generate(FLASH).await.status(), 503, "only an invalid key");
    let fresh = key("fresh");
    h.store.add_key(&fresh, "fresh").await.expect("added");
    assert_eq!(
        h.generate_until(200).await,
        200,
        "the new key is picked up by the background refresh"
    );
}
