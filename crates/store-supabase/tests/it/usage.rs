//! Usage from `usage_buckets`: one request for every grouping (the totals themselves are
//! the shared suite's).

use proxy_core::admin::{AdminStore, stats_query};
use proxy_core::platform::LogSink;

use crate::fixtures::record;
use crate::harness::Env;

#[tokio::test]
async fn usage_takes_one_request() {
    let env = Env::new().await;
    env.store
        .write_logs(&[record("1", 100), record("2", 200)])
        .await
        .expect("write");
    let before = env.server.request_count();
    // What `logs stats` asks: every grouping at once.
    let cells = env.store.usage(&stats_query(0)).await.expect("usage");
    let requests = env.server.requests();
    assert_eq!(requests.len() - before, 1, "{:?}", &requests[before..]);
    assert_eq!(requests[before], "POST /rest/v1/rpc/usage_buckets");
    assert_eq!(cells.iter().map(|c| c.requests).sum::<u64>(), 2);
}
