//! Request logs: one request per batch, retries that change nothing, filters, paging,
//! pruning, and the key state the logs feed.

use proxy_core::admin::{AdminStore, LogQuery};
use proxy_core::log::LogRecord;
use proxy_core::platform::{KeyStore, LogSink};

use crate::fixtures::{SECRET_A, SECRET_B, ids, record};
use crate::harness::Env;

#[tokio::test]
async fn log_records_round_trip_every_field() {
    let env = Env::new().await;
    let store = &env.store;
    let full = LogRecord {
        id: "r1".into(),
        started_at_ms: 1_700_000_000_001,
        proxy_key_id: Some(4),
        upstream_key_ids: vec![3, 1],
        answered_key_id: Some(1),
        model: Some("gemini-2.5-flash".into()),
        route: "streamGenerateContent".into(),
        api: "openai".into(),
        stream: true,
        status: 200,
        attempts: 2,
        latency_ms: 1234,
        ttfb_ms: Some(321),
        prompt_tokens: Some(10),
        candidates_tokens: Some(20),
        thoughts_tokens: Some(5),
        cached_tokens: Some(2),
        total_tokens: Some(35),
        finish_reason: Some("STOP".into()),
        block_reason: Some("SAFETY".into()),
        error_kind: Some("blocked".into()),
        error_message: Some("blocked by \"safety\", 100% sure\n(really)".into()),
        request_body: Some("{\"contents\":[]}".into()),
    };
    let sparse = record("r2", 1_700_000_000_002);
    store
        .write_logs(&[full.clone(), sparse.clone()])
        .await
        .expect("write");
    let listed = store.list_logs(&LogQuery::default()).await.expect("list");
    assert_eq!(listed, vec![sparse, full]);
    assert!(store.write_logs(&[]).await.is_ok());
}

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
async fn log_filters_each_narrow() {
    let env = Env::new().await;
    let store = &env.store;
    let mut records = Vec::new();
    for i in 0..6u64 {
        let mut r = record(&format!("r{i}"), 1_000 + i);
        r.model = Some(if i % 2 == 0 { "flash" } else { "pro" }.into());
        r.proxy_key_id = Some(if i < 3 { 1 } else { 2 });
        r.status = if i == 4 { 429 } else { 200 };
        r.stream = i == 5;
        r.upstream_key_ids = match i {
            0 => vec![10],
            1 => vec![10, 20],
            _ => vec![30],
        };
        r.answered_key_id = r.upstream_key_ids.last().copied();
        records.push(r);
    }
    store.write_logs(&records).await.expect("write");

    let query = |q: LogQuery| {
        let store = store.clone();
        async move { store.list_logs(&q).await.expect("list") }
    };
    assert_eq!(
        ids(&query(LogQuery::default()).await),
        vec!["r5", "r4", "r3", "r2", "r1", "r0"]
    );
    let since_until = LogQuery {
        since_ms: Some(1_002),
        until_ms: Some(1_004),
        ..LogQuery::default()
    };
    assert_eq!(ids(&query(since_until).await), vec!["r3", "r2"]);
    let by_key = LogQuery {
        upstream_key_id: Some(20),
        ..LogQuery::default()
    };
    assert_eq!(ids(&query(by_key).await), vec!["r1"]);
    // Key 10 was tried in r1 although key 20 answered.
    let tried = LogQuery {
        upstream_key_id: Some(10),
        ..LogQuery::default()
    };
    assert_eq!(ids(&query(tried).await), vec!["r1", "r0"]);
    let proxy = LogQuery {
        proxy_key_id: Some(2),
        ..LogQuery::default()
    };
    assert_eq!(ids(&query(proxy).await), vec!["r5", "r4", "r3"]);
    let model = LogQuery {
        model: Some("pro".into()),
        ..LogQuery::default()
    };
    assert_eq!(ids(&query(model).await), vec!["r5", "r3", "r1"]);
    let status = LogQuery {
        status: Some(429),
        ..LogQuery::default()
    };
    assert_eq!(ids(&query(status).await), vec!["r4"]);
    let stream = LogQuery {
        stream: Some(true),
        ..LogQuery::default()
    };
    assert_eq!(ids(&query(stream).await), vec!["r5"]);
    let not_stream = LogQuery {
        stream: Some(false),
        model: Some("pro".into()),
        ..LogQuery::default()
    };
    assert_eq!(ids(&query(not_stream).await), vec!["r3", "r1"]);
    let page = LogQuery {
        limit: 2,
        offset: 1,
        ..LogQuery::default()
    };
    assert_eq!(ids(&query(page).await), vec!["r4", "r3"]);
    let far_future = LogQuery {
        since_ms: Some(u64::MAX),
        ..LogQuery::default()
    };
    assert!(query(far_future).await.is_empty());
}

#[tokio::test]
async fn limit_defaults_to_50_and_caps_at_1000() {
    let env = Env::new().await;
    let store = &env.store;
    let records: Vec<LogRecord> = (0..1_100u64).map(|i| record(&format!("r{i:05}"), i)).collect();
    store
        .write_logs(&records[..500])
        .await
        .expect("500 rows in one call");
    assert_eq!(
        store.list_logs(&LogQuery::default()).await.expect("list").len(),
        50
    );
    store.write_logs(&records[500..]).await.expect("the rest");
    let all = LogQuery {
        limit: 5_000,
        ..LogQuery::default()
    };
    let listed = store.list_logs(&all).await.expect("list");
    assert_eq!(listed.len(), 1_000);
    assert_eq!(listed[0].id, "r01099");
    assert_eq!(store.prune_logs(u64::MAX).await.expect("count"), 1_100);
}

#[tokio::test]
async fn prune_deletes_only_older_rows() {
    let env = Env::new().await;
    let store = &env.store;
    let batch: Vec<LogRecord> = [100u64, 200, 300, 400]
        .iter()
        .map(|t| record(&format!("t{t}"), *t))
        .collect();
    store.write_logs(&batch).await.expect("write");
    let before = env.server.request_count();
    assert_eq!(store.prune_logs(300).await.expect("prune"), 2);
    assert_eq!(env.server.request_count() - before, 1);
    let listed = store.list_logs(&LogQuery::default()).await.expect("list");
    assert_eq!(ids(&listed), vec!["t400", "t300"]);
    assert_eq!(store.prune_logs(300).await.expect("prune again"), 0);
}

#[tokio::test]
async fn logs_mark_keys_last_used() {
    let env = Env::new().await;
    let store = &env.store;
    let a = store.add_key(SECRET_A, "a").await.expect("add");
    let b = store.add_key(SECRET_B, "b").await.expect("add");
    let mut first = record("1", 5_000);
    first.upstream_key_ids = vec![a, 77];
    let mut older = record("2", 4_000);
    older.upstream_key_ids = vec![a];
    // Within a batch and across batches, the latest time wins whatever the order.
    store.write_logs(&[first, older]).await.expect("write");
    let mut oldest = record("3", 3_000);
    oldest.upstream_key_ids = vec![a];
    store.write_logs(&[oldest]).await.expect("write oldest");
    let keys = store.load().await.expect("load").keys;
    assert_eq!(keys[0].1.last_used_ms, Some(5_000));
    assert_eq!(keys[1].0.id, b);
    assert_eq!(keys[1].1.last_used_ms, None);
}
