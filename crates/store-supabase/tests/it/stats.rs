//! Usage totals from `usage_summary`: the shared behaviour from `store-conformance`, and
//! one request for all of it.

use proxy_core::admin::AdminStore;
use proxy_core::platform::LogSink;
use store_conformance as conformance;

use crate::fixtures::record;
use crate::harness::Env;

#[tokio::test]
async fn stats_sum_tokens_and_count_errors() {
    let env = Env::new().await;
    conformance::stats_sum_tokens_and_count_errors(&env.store).await;
}

#[tokio::test]
async fn usage_buckets_groups_and_percentiles() {
    let env = Env::new().await;
    conformance::usage_buckets_groups_and_percentiles(&env.store).await;
}

#[tokio::test]
async fn stats_take_one_request() {
    let env = Env::new().await;
    env.store
        .write_logs(&[record("1", 100), record("2", 200)])
        .await
        .expect("write");
    let before = env.server.request_count();
    let stats = env.store.log_stats(0).await.expect("stats");
    assert_eq!(
        env.server.request_count() - before,
        1,
        "one call for all groupings"
    );
    assert_eq!(stats.total.requests, 2);
}
