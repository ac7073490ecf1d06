//! Usage totals from `usage_summary`, with store-sqlite's expectations.

use proxy_core::admin::AdminStore;
use proxy_core::platform::LogSink;

use crate::fixtures::{SECRET_A, SECRET_B, record};
use crate::harness::Env;

#[tokio::test]
async fn stats_sum_tokens_and_count_errors() {
    let env = Env::new().await;
    let store = &env.store;
    let a = store.add_key(SECRET_A, "alpha").await.expect("add");
    let b = store.add_key(SECRET_B, "").await.expect("add unnamed");

    let mut ok = record("1", 100);
    ok.answered_key_id = Some(a);
    ok.prompt_tokens = Some(10);
    ok.total_tokens = Some(30);
    ok.latency_ms = 100;
    let mut hidden_failure = record("2", 200);
    hidden_failure.answered_key_id = Some(a);
    hidden_failure.error_kind = Some("blocked".into());
    hidden_failure.prompt_tokens = Some(5);
    hidden_failure.candidates_tokens = Some(7);
    hidden_failure.latency_ms = 300;
    let mut rate_limited = record("3", 300);
    rate_limited.model = Some("pro".into());
    rate_limited.answered_key_id = Some(b);
    rate_limited.status = 429;
    rate_limited.latency_ms = 50;
    let mut too_old = record("0", 10);
    too_old.answered_key_id = Some(a);
    too_old.prompt_tokens = Some(1_000);
    let mut no_key = record("4", 400);
    no_key.model = None;
    no_key.status = 401;
    no_key.latency_ms = 2;
    store
        .write_logs(&[ok, hidden_failure, rate_limited, too_old, no_key])
        .await
        .expect("write");

    let before = env.server.request_count();
    let stats = store.log_stats(100).await.expect("stats");
    assert_eq!(
        env.server.request_count() - before,
        1,
        "one call for all groupings"
    );
    assert_eq!(stats.total.group, "total");
    assert_eq!(stats.total.requests, 4);
    assert_eq!(stats.total.errors, 3);
    assert_eq!(stats.total.prompt_tokens, 15);
    assert_eq!(stats.total.candidates_tokens, 7);
    assert_eq!(stats.total.total_tokens, 30);
    assert_eq!(stats.total.thoughts_tokens, 0);
    assert_eq!(stats.total.avg_latency_ms, (100 + 300 + 50 + 2) / 4);

    let models: Vec<(&str, u64, u64)> = stats
        .by_model
        .iter()
        .map(|r| (r.group.as_str(), r.requests, r.errors))
        .collect();
    assert_eq!(models, vec![("flash", 2, 1), ("(none)", 1, 1), ("pro", 1, 1)]);
    let flash = &stats.by_model[0];
    assert_eq!((flash.prompt_tokens, flash.avg_latency_ms), (15, 200));

    let keys: Vec<(String, u64, u64)> = stats
        .by_key
        .iter()
        .map(|r| (r.group.clone(), r.requests, r.errors))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("alpha".into(), 2, 1),
            (format!("#{b}"), 1, 1),
            ("(none)".into(), 1, 1)
        ]
    );

    // A removed key keeps its rows, now under its id.
    store.remove_key(a).await.expect("remove");
    let stats = store.log_stats(0).await.expect("stats");
    assert_eq!(stats.by_key[0].group, format!("#{a}"));
    assert_eq!(stats.by_key[0].requests, 3);

    let empty = store.log_stats(10_000).await.expect("empty stats");
    assert_eq!((empty.total.requests, empty.total.avg_latency_ms), (0, 0));
    assert!(empty.by_model.is_empty() && empty.by_key.is_empty());
}
