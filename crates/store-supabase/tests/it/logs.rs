//! Request logs: what only the REST store shows (one request per batch, counters that a
//! retry leaves alone); the shared behaviour is `store-conformance`'s suite, run from
//! `it.rs`.

use proxy_core::admin::{AdminStore, LogQuery};
use proxy_core::log::LogRecord;
use proxy_core::platform::LogSink;

use crate::fixtures::{SECRET_A, ids, record};
use crate::harness::Env;

#[tokio::test]
async fn a_batch_of_200_is_one_request() {
    let env = Env::new().await;
    let batch: Vec<LogRecord> = (0..200u64)
        .map(|i| record(&format!("b{i:03}"), 10_000 + i))
        .collect();
    let before = env.server.request_count();
    env.store.write_logs(&batch).await.expect("write");
    let requests = env.server.requests();
    assert_eq!(requests.len() - before, 1, "{:?}", &requests[before..]);
    assert_eq!(requests[before], "POST /rest/v1/rpc/insert_request_logs");
    let all = LogQuery {
        limit: 1000,
        ..LogQuery::default()
    };
    assert_eq!(env.store.list_logs(&all).await.expect("list").len(), 200);
}

/// Lifetime counters kept by `insert_request_logs`, read straight from the table.
async fn counters(env: &Env, key_id: i64) -> (i64, i64, i64, i64) {
    let sql = env.db.sql().await;
    let row = sql
        .query_one(
            "select requests, errors, prompt_tokens, total_tokens from key_state where key_id = $1",
            &[&key_id],
        )
        .await
        .expect("key_state row");
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

#[tokio::test]
async fn a_retried_batch_keeps_one_copy_and_counts_once() {
    let env = Env::new().await;
    let store = &env.store;
    let a = store.add_key(SECRET_A, "a").await.expect("add");
    let batch: Vec<LogRecord> = (0..3u64)
        .map(|i| {
            let mut r = record(&format!("r{i}"), 1_000 + i);
            r.upstream_key_ids = vec![a];
            r.answered_key_id = Some(a);
            r.prompt_tokens = Some(10);
            r.total_tokens = Some(15);
            r.status = if i == 2 { 500 } else { 200 };
            r
        })
        .collect();
    store.write_logs(&batch).await.expect("first");
    assert_eq!(counters(&env, a).await, (3, 1, 30, 45));

    store.write_logs(&batch).await.expect("retry");
    // Two instances retrying the same batch at the same moment.
    let other = env.other_store();
    let (x, y) = tokio::join!(store.write_logs(&batch), other.write_logs(&batch));
    x.expect("concurrent retry");
    y.expect("concurrent retry");
    let listed = store.list_logs(&LogQuery::default()).await.expect("list");
    assert_eq!(ids(&listed), vec!["r2", "r1", "r0"]);
    assert_eq!(counters(&env, a).await, (3, 1, 30, 45));

    // A batch mixing old and new records counts only the new.
    let mut fresh = record("r3", 1_003);
    fresh.answered_key_id = Some(a);
    fresh.prompt_tokens = Some(1);
    let mut mixed = batch.clone();
    mixed.push(fresh);
    store.write_logs(&mixed).await.expect("mixed");
    assert_eq!(counters(&env, a).await, (4, 1, 31, 45));
}

#[tokio::test]
async fn prune_takes_one_request() {
    let env = Env::new().await;
    let batch = vec![record("a", 100), record("b", 400)];
    env.store.write_logs(&batch).await.expect("write");
    let before = env.server.request_count();
    assert_eq!(env.store.prune_logs(300).await.expect("prune"), 1);
    assert_eq!(env.server.request_count() - before, 1);
}
