//! Governance over real HTTP against fake Gemini: upstream keys kept under their
//! limits before Google would answer 429, a quota of 0 as a model off until midnight
//! Pacific, and a streamed answer's tokens counted toward its proxy key's limits.

use std::future::Future;
use std::time::Duration;

use proxy_axum::unix_ms;
use proxy_core::admin::AdminStore;
use proxy_core::auth::{format_proxy_key, hash_proxy_key};
use proxy_core::keys::KeyLimits;
use proxy_core::pacific::next_midnight_pacific_ms;
use proxy_core::policy::ProxyKeyPolicy;
use serde_json::Value;

use crate::harness::{FLASH, Harness, key};

/// Runs `body` again if the minute changed while it ran: per-minute counts live in
/// fixed windows, and the count is what is tested, not the clock.
async fn in_one_minute<F, Fut>(mut body: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..3 {
        let minute = unix_ms() / 60_000;
        let passed = body().await;
        if unix_ms() / 60_000 == minute {
            assert!(passed);
            return;
        }
    }
    panic!("three minutes changed under the test");
}

#[tokio::test]
async fn upstream_keys_rotate_before_their_rpm_and_none_is_called_past_it() {
    in_one_minute(|| async {
        let mut limits = KeyLimits::default();
        limits.update(None, Some(1), None, None);
        let h = Harness::start_limited(&[key("a"), key("b")], limits).await;
        for _ in 0..2 {
            assert_eq!(h.generate(FLASH).await.status(), 200);
        }
        let used = h.keys_used();
        assert_eq!(used.len(), 2);
        assert_ne!(used[0], used[1], "each key served one");
        let refused = h.generate(FLASH).await;
        assert_eq!(refused.status(), 429);
        let retry_after: u64 = refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
        let body: Value = refused.json().await.unwrap_or(Value::Null);
        assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("configured limit"), "{message}");
        assert_eq!(
            h.keys_used().len(),
            2,
            "nothing went upstream for the refused request"
        );
        // Per model: another model has its own count.
        assert_eq!(h.generate("gemini-2.5-pro").await.status(), 200);
        let records = h.logs(4).await;
        assert_eq!(
            records
                .iter()
                .filter(|r| r.error_kind.as_deref() == Some("upstream_key_limits"))
                .count(),
            1
        );
        h.shutdown().await;
        true
    })
    .await;
}

#[tokio::test]
async fn a_quota_of_zero_turns_the_model_off_for_the_key_until_midnight_pacific() {
    let h = Harness::start(&[key("z-r429off-"), key("good")]).await;
    assert_eq!(h.generate(FLASH).await.status(), 200, "the other key answers");
    let before = unix_ms();
    let rows = h.settled_key_rows().await;
    let row = rows.iter().find(|r| r.name == "key0").expect("the off key");
    assert_eq!(row.off_models, vec![FLASH.to_string()]);
    let until = row.cooldowns.iter().find(|(m, _)| m == FLASH).map(|(_, u)| *u);
    assert_eq!(until, Some(next_midnight_pacific_ms(before)));
    assert!(
        row.invalid_reason.is_none(),
        "a quota of zero is not a broken key"
    );
}

#[tokio::test]
async fn a_streamed_answers_tokens_count_toward_tpm_and_its_cost_is_logged() {
    in_one_minute(|| async {
        let h = Harness::start(&[key("good")]).await;
        let secret = format_proxy_key(&[0x71; 24]);
        let policy = ProxyKeyPolicy {
            tpm: Some(10),
            ..ProxyKeyPolicy::default()
        };
        let id = h
            .store
            .create_proxy_key_with_policy("tpm", &hash_proxy_key(&secret), None, &policy)
            .await
            .expect("proxy key created");
        let stream = |secret: String| {
            let h = &h;
            async move {
                h.http
                    .post(h.url(&format!("/v1beta/models/{FLASH}:streamGenerateContent?alt=sse")))
                    .header("x-goog-api-key", secret)
                    .body(r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#)
                    .send()
                    .await
                    .expect("proxy answers")
            }
        };
        // The key is known after a refresh; the first request admitted is the stream.
        let mut first = stream(secret.clone()).await;
        for _ in 0..100 {
            if first.status() != 401 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            first = stream(secret.clone()).await;
        }
        assert_eq!(first.status(), 200);
        let text = first.text().await.expect("whole stream");
        assert!(text.contains("fake Gemini"));
        // Its tokens (more than 10) are counted once the body ended.
        let records = h
            .logs_where(|rs| rs.iter().any(|r| r.proxy_key_id == Some(id) && r.status == 200))
            .await;
        let answered = records
            .iter()
            .find(|r| r.proxy_key_id == Some(id) && r.status == 200)
            .expect("the stream's record");
        assert!(answered.total_tokens.unwrap_or(0) > 10);
        assert!(
            answered.cost_usd.unwrap_or(0.0) > 0.0,
            "priced: {:?}",
            answered.cost_usd
        );
        let refused = stream(secret.clone()).await;
        assert_eq!(refused.status(), 429);
        let body: Value = refused.json().await.unwrap_or(Value::Null);
        let message = body["error"]["message"].as_str().unwrap_or_default().to_string();
        h.shutdown().await;
        message.contains("tpm limit (10 tokens per minute)")
    })
    .await;
}
