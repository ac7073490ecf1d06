//! Request logs: what only PostgreSQL shows (the shared behaviour, round trip, filters,
//! limits, retries, stats and pruning, is `store-conformance`'s suite, run from `it.rs`).

use proxy_core::admin::{AdminStore, LogQuery};
use proxy_core::platform::LogSink;
use store_conformance as conformance;

use crate::support::{ids, record, test_db};

#[tokio::test(flavor = "multi_thread")]
async fn text_postgres_cannot_hold_is_replaced_not_fatal() {
    let db = test_db().await;
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
async fn same_start_time_sorts_by_id_bytewise() {
    let db = test_db().await;
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
async fn usage_summary_and_usage_daily_agree() {
    let db = test_db().await;
    // Five rows, set up by the shared check.
    conformance::stats_sum_tokens_and_count_errors(&db.store().await).await;

    // The schema's views for SQL users agree, percentiles included.
    let client = db.client().await;
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
async fn usage_cost_daily_sums_cost_per_client_key() {
    let db = test_db().await;
    // Five rows costing 1.7623 in all, 0.25 of it by proxy key 2, set up by the shared check.
    conformance::usage_sums_cost(&db.store().await).await;

    let client = db.client().await;
    let rows = client
        .query(
            "SELECT proxy_key_id, sum(cost_usd)::double precision FROM usage_cost_daily \
             GROUP BY proxy_key_id ORDER BY proxy_key_id",
            &[],
        )
        .await
        .expect("usage_cost_daily");
    let costs: Vec<(Option<i64>, f64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(costs.len(), 2, "{costs:?}");
    assert_eq!((costs[0].0, costs[1].0), (Some(1), Some(2)), "{costs:?}");
    assert!(
        (costs[0].1 - 1.5123).abs() < 1e-9 && (costs[1].1 - 0.25).abs() < 1e-9,
        "{costs:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_request_logs_takes_an_interval() {
    let db = test_db().await;
    // Two rows left behind by the shared check.
    conformance::prune_deletes_only_older_rows(&db.store().await).await;

    // The interval form for scheduled jobs: everything here is decades old.
    let client = db.client().await;
    let pruned: i64 = client
        .query_one("SELECT prune_request_logs('30 days')", &[])
        .await
        .expect("prune_request_logs")
        .get(0);
    assert_eq!(pruned, 2);
}
