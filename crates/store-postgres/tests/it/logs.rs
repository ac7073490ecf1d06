//! Request logs: round trip, filters, limits, retries, stats and pruning.

use proxy_core::admin::{AdminStore, LogQuery};
use proxy_core::log::LogRecord;
use proxy_core::platform::{KeyStore, LogSink};

use crate::support::{SECRET_A, SECRET_B, TestDb, ids, record};

#[tokio::test(flavor = "multi_thread")]
async fn log_records_round_trip_every_field() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let full = LogRecord {
        id: "r1".into(),
        started_at_ms: 1_700_000_000_123,
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
        error_message: Some("blocked by safety: \"quoted\" \\ ünïcödé".into()),
        request_body: Some("{\"contents\":[]}".into()),
    };
    let sparse = record("r2", 1_700_000_000_124);
    store
        .write_logs(&[full.clone(), sparse.clone()])
        .await
        .expect("write");
    let listed = store.list_logs(&LogQuery::default()).await.expect("list");
    assert_eq!(listed, vec![sparse, full]);
}

#[tokio::test(flavor = "multi_thread")]
async fn text_postgres_cannot_hold_is_replaced_not_fatal() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let mut r = record("nul", 5);
    r.request_body = Some("a\0b".into());
    r.error_message = Some("x\0".into());
    store
        .write_logs(&[r])
        .await
        .expect("a NUL must not poison the batch");
    let listed = store.list_logs(&LogQuery::default()).await.expect("list");
    assert_eq!(listed[0].request_body.as_deref(), Some("a\u{FFFD}b"));
}

#[tokio::test(flavor = "multi_thread")]
async fn log_filters_each_narrow() {
    let db = TestDb::new().await;
    let store = db.store().await;
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
    let combined = LogQuery {
        stream: Some(false),
        model: Some("pro".into()),
        proxy_key_id: Some(1),
        since_ms: Some(1_001),
        upstream_key_id: Some(20),
        status: Some(200),
        until_ms: Some(2_000),
        ..LogQuery::default()
    };
    assert_eq!(ids(&query(combined).await), vec!["r1"]);
    let page = LogQuery {
        limit: 2,
        offset: 1,
        ..LogQuery::default()
    };
    assert_eq!(ids(&query(page).await), vec!["r4", "r3"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn same_start_time_sorts_by_id_bytewise() {
    let db = TestDb::new().await;
    let store = db.store().await;
    // In most locales '-' is ignored when sorting text; request ids need byte order.
    let batch = vec![
        record("a-b", 7),
        record("ab", 7),
        record("a-c", 7),
        record("B", 7),
    ];
    store.write_logs(&batch).await.expect("write");
    let listed = store.list_logs(&LogQuery::default()).await.expect("list");
    assert_eq!(ids(&listed), vec!["ab", "a-c", "a-b", "B"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn limit_defaults_to_50_and_caps_at_1000_with_500_rows_in_one_batch() {
    let db = TestDb::new().await;
    let store = db.store().await;
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

#[tokio::test(flavor = "multi_thread")]
async fn the_same_batch_twice_keeps_one_copy() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let batch = vec![record("a", 1), record("b", 2)];
    store.write_logs(&batch).await.expect("first");
    store.write_logs(&batch).await.expect("retry");
    // A batch that repeats an id within itself is fine too.
    store
        .write_logs(&[record("c", 3), record("c", 3)])
        .await
        .expect("dup inside");
    let listed = store.list_logs(&LogQuery::default()).await.expect("list");
    assert_eq!(ids(&listed), vec!["c", "b", "a"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_sum_tokens_and_count_errors() {
    let db = TestDb::new().await;
    let store = db.store().await;
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

    let stats = store.log_stats(100).await.expect("stats");
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
    assert_eq!(empty.total.group, "total");
    assert_eq!((empty.total.requests, empty.total.avg_latency_ms), (0, 0));
    assert!(empty.by_model.is_empty() && empty.by_key.is_empty());

    // The dashboard's views agree, percentiles included.
    let client = db.superuser().await;
    let row = client
        .query_one(
            "SELECT latency_p50_ms, latency_p95_ms FROM usage_summary('epoch') WHERE group_kind = 'total'",
            &[],
        )
        .await
        .expect("usage_summary");
    let (p50, p95): (f64, f64) = (row.get(0), row.get(1));
    assert!(p50 > 0.0 && p95 >= p50, "{p50} {p95}");
    let daily: i64 = client
        .query_one("SELECT sum(requests)::bigint FROM usage_daily", &[])
        .await
        .expect("usage_daily")
        .get(0);
    assert_eq!(daily, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_deletes_only_older_rows() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let batch: Vec<LogRecord> = [100u64, 200, 300, 400]
        .iter()
        .map(|t| record(&format!("t{t}"), *t))
        .collect();
    store.write_logs(&batch).await.expect("write");
    assert_eq!(store.prune_logs(300).await.expect("prune"), 2);
    let listed = store.list_logs(&LogQuery::default()).await.expect("list");
    assert_eq!(ids(&listed), vec!["t400", "t300"]);
    assert_eq!(store.prune_logs(300).await.expect("prune again"), 0);

    // The interval form for scheduled jobs: everything here is decades old.
    let client = db.superuser().await;
    let pruned: i64 = client
        .query_one("SELECT prune_request_logs('30 days')", &[])
        .await
        .expect("prune_request_logs")
        .get(0);
    assert_eq!(pruned, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_mark_keys_last_used() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let a = store.add_key(SECRET_A, "a").await.expect("add");
    let mut first = record("1", 5_000);
    first.upstream_key_ids = vec![a, 77];
    let mut older = record("2", 4_000);
    older.upstream_key_ids = vec![a];
    // Within a batch and across batches, the latest time wins whatever the order; a key
    // that does not exist (77) is skipped.
    store.write_logs(&[first, older]).await.expect("write");
    let mut oldest = record("3", 3_000);
    oldest.upstream_key_ids = vec![a];
    store.write_logs(&[oldest]).await.expect("write oldest");
    let (_, state) = store.load().await.expect("load").keys.remove(0);
    assert_eq!(state.last_used_ms, Some(5_000));
}
