//! Aggregates: `usage` per bucket and group, and the CLI's totals folded from it.

use proxy_core::admin::{UsageQuery, log_stats};
use proxy_core::log::LogRecord;

use crate::Store;
use crate::fixtures::{SECRET_A, SECRET_B, record};

/// Usage totals (`admin::log_stats`, folded from `usage`), by model and by key: tokens summed, errors counted (a failure with a
/// 200 status included), rows before `since_ms` left out, removed keys shown by id.
/// Leaves five log rows behind (one older than the window) for store-specific checks.
pub async fn stats_sum_tokens_and_count_errors<S: Store + ?Sized>(store: &S) {
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

    let stats = log_stats(store, 100).await.expect("stats");
    let total = &stats.total;
    assert_eq!(total.group, "total", "the total row's group");
    assert_eq!(
        (total.requests, total.errors),
        (4, 3),
        "total requests and errors since 100"
    );
    assert_eq!(
        (
            total.prompt_tokens,
            total.candidates_tokens,
            total.total_tokens,
            total.thoughts_tokens
        ),
        (15, 7, 30, 0),
        "total tokens (prompt, candidates, total, thoughts)"
    );
    assert_eq!(total.avg_latency_ms, (100 + 300 + 50 + 2) / 4, "average latency");

    let models: Vec<(&str, u64, u64)> = stats
        .by_model
        .iter()
        .map(|r| (r.group.as_str(), r.requests, r.errors))
        .collect();
    assert_eq!(
        models,
        vec![("flash", 2, 1), ("(none)", 1, 1), ("pro", 1, 1)],
        "by model: most requests first, then by name"
    );
    let flash = &stats.by_model[0];
    assert_eq!(
        (flash.prompt_tokens, flash.avg_latency_ms),
        (15, 200),
        "flash's tokens and latency"
    );

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
        ],
        "by key: named, unnamed as #id, no key as (none)"
    );

    store.remove_key(a).await.expect("remove");
    let stats = log_stats(store, 0).await.expect("stats");
    assert_eq!(
        (stats.by_key[0].group.clone(), stats.by_key[0].requests),
        (format!("#{a}"), 3),
        "a removed key keeps its rows, now under its id"
    );

    let empty = log_stats(store, 10_000).await.expect("empty stats");
    assert_eq!(empty.total.group, "total", "the empty total row's group");
    assert_eq!(
        (empty.total.requests, empty.total.avg_latency_ms),
        (0, 0),
        "an empty window"
    );
    assert!(
        empty.by_model.is_empty() && empty.by_key.is_empty(),
        "an empty window has no groups: {empty:?}"
    );
}

/// `usage` aggregates in the store: epoch-aligned buckets, `[since, until)`, grouping only
/// by the dimensions asked for, errors counted as the CLI's stats count them, and
/// nearest-rank latency percentiles.
pub async fn usage_buckets_groups_and_percentiles<S: Store + ?Sized>(store: &S) {
    let a = store.add_key(SECRET_A, "alpha").await.expect("add");
    let b = store.add_key(SECRET_B, "beta").await.expect("add");
    let at = |id: &str, ms: u64, model: &str, key: i64, proxy: Option<i64>, latency: u64| {
        let mut r = record(id, ms);
        r.model = Some(model.into());
        r.answered_key_id = Some(key);
        r.proxy_key_id = proxy;
        r.latency_ms = latency;
        r
    };
    let mut first = at("1", 1_000, "flash", a, Some(1), 10);
    first.prompt_tokens = Some(5);
    let mut failed = at("2", 1_500, "flash", a, Some(2), 30);
    failed.status = 500;
    let mut blocked = at("3", 1_999, "pro", b, Some(1), 20);
    blocked.error_kind = Some("blocked".into());
    blocked.total_tokens = Some(7);
    let next_bucket = at("4", 2_000, "flash", a, None, 40);
    let too_early = at("5", 999, "flash", a, None, 1);
    let too_late = at("6", 3_000, "flash", a, None, 1);
    // Twenty latencies 1..=20 in one bucket, written out of order.
    let spread: Vec<LogRecord> = (1..=20u64)
        .map(|i| at(&format!("s{i}"), 10_000 + (i * 7) % 20, "flash", a, None, i))
        .collect();
    store
        .write_logs(&[first, failed, blocked, next_bucket, too_early, too_late])
        .await
        .expect("write");
    store.write_logs(&spread).await.expect("write spread");

    let window = UsageQuery {
        since_ms: 1_000,
        until_ms: Some(3_000),
        bucket_ms: 1_000,
        ..UsageQuery::default()
    };
    let cells = store.usage(&window).await.expect("usage per bucket");
    let summary: Vec<_> = cells
        .iter()
        .map(|c| {
            (
                c.bucket_start_ms,
                c.requests,
                c.errors,
                c.latency_p50_ms,
                c.latency_p95_ms,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![(1_000, 3, 2, 20, 30), (2_000, 1, 0, 40, 40)],
        "buckets of 1 s: (start, requests, errors, p50, p95)"
    );
    let firsts = &cells[0];
    assert_eq!(
        (firsts.prompt_tokens, firsts.total_tokens, firsts.latency_sum_ms),
        (5, 7, 60),
        "the first bucket's tokens and latency sum"
    );
    assert!(
        cells
            .iter()
            .all(|c| c.model.is_none() && c.upstream_key_id.is_none() && c.proxy_key_id.is_none()),
        "dimensions not asked for stay empty: {cells:?}"
    );

    let by_model = store
        .usage(&UsageQuery {
            bucket_ms: 0,
            by_model: true,
            ..window.clone()
        })
        .await
        .expect("usage by model");
    let models: Vec<_> = by_model
        .iter()
        .map(|c| {
            (
                c.bucket_start_ms,
                c.model.as_deref(),
                c.requests,
                c.errors,
                c.latency_p50_ms,
            )
        })
        .collect();
    assert_eq!(
        models,
        vec![(1_000, Some("flash"), 3, 1, 30), (1_000, Some("pro"), 1, 1, 20)],
        "one bucket from `since`, split by model"
    );

    let by_keys = store
        .usage(&UsageQuery {
            bucket_ms: 0,
            by_upstream_key: true,
            by_proxy_key: true,
            ..window.clone()
        })
        .await
        .expect("usage by keys");
    let keys: Vec<_> = by_keys
        .iter()
        .map(|c| (c.upstream_key_id, c.proxy_key_id, c.requests))
        .collect();
    assert_eq!(
        keys,
        vec![
            (Some(a), None, 1),
            (Some(a), Some(1), 1),
            (Some(a), Some(2), 1),
            (Some(b), Some(1), 1)
        ],
        "split by upstream and proxy key, no proxy key first"
    );

    let spread_cells = store
        .usage(&UsageQuery {
            since_ms: 10_000,
            until_ms: None,
            bucket_ms: 60_000,
            ..UsageQuery::default()
        })
        .await
        .expect("usage of the spread");
    let percentiles: Vec<_> = spread_cells
        .iter()
        .map(|c| {
            (
                c.bucket_start_ms,
                c.requests,
                c.latency_p50_ms,
                c.latency_p95_ms,
                c.latency_sum_ms,
            )
        })
        .collect();
    assert_eq!(
        percentiles,
        vec![(0, 20, 10, 19, 210)],
        "nearest-rank p50 and p95 of 1..=20 in the epoch-aligned minute"
    );

    let empty = store
        .usage(&UsageQuery {
            since_ms: 100_000,
            bucket_ms: 1_000,
            ..UsageQuery::default()
        })
        .await
        .expect("empty usage");
    assert!(empty.is_empty(), "an empty window has no cells: {empty:?}");
}

/// `cost_usd` sums per cell (a record without a cost counts 0), per proxy key and
/// bucket as `admin::proxy_key_usage` asks, and into `log_stats`' groups.
pub async fn usage_sums_cost<S: Store + ?Sized>(store: &S) {
    let a = store.add_key(SECRET_A, "alpha").await.expect("add");
    let at = |id: &str, ms: u64, proxy: i64, cost: Option<f64>| {
        let mut r = record(id, ms);
        r.answered_key_id = Some(a);
        r.proxy_key_id = Some(proxy);
        r.cost_usd = cost;
        r.total_tokens = Some(100);
        r
    };
    store
        .write_logs(&[
            at("1", 1_000, 1, Some(0.0123)),
            at("2", 1_100, 1, Some(0.5)),
            at("3", 1_200, 1, None),
            at("4", 1_300, 2, Some(0.25)),
            at("5", 2_500, 1, Some(1.0)),
        ])
        .await
        .expect("write");
    let cells = store
        .usage(&UsageQuery {
            since_ms: 0,
            until_ms: None,
            bucket_ms: 1_000,
            by_proxy_key: true,
            ..UsageQuery::default()
        })
        .await
        .expect("usage");
    let costs: Vec<(u64, Option<i64>, u64, u64, f64)> = cells
        .iter()
        .map(|c| {
            (
                c.bucket_start_ms,
                c.proxy_key_id,
                c.requests,
                c.total_tokens,
                c.cost_usd,
            )
        })
        .collect();
    let close = |got: f64, want: f64| (got - want).abs() < 1e-9;
    assert_eq!(costs.len(), 3, "{costs:?}");
    assert_eq!(
        (costs[0].0, costs[0].1, costs[0].2, costs[0].3),
        (1_000, Some(1), 3, 300),
        "{costs:?}"
    );
    assert!(
        close(costs[0].4, 0.5123),
        "a record without a cost adds 0: {costs:?}"
    );
    assert_eq!((costs[1].0, costs[1].1), (1_000, Some(2)), "{costs:?}");
    assert!(close(costs[1].4, 0.25), "{costs:?}");
    assert_eq!((costs[2].0, costs[2].1), (2_000, Some(1)), "{costs:?}");
    assert!(close(costs[2].4, 1.0), "{costs:?}");

    let stats = log_stats(store, 0).await.expect("stats");
    assert!(close(stats.total.cost_usd, 1.7623), "total cost: {stats:?}");
    assert!(close(stats.by_key[0].cost_usd, 1.7623), "by key: {stats:?}");
    let empty = store
        .usage(&UsageQuery {
            since_ms: 3_000,
            ..UsageQuery::default()
        })
        .await
        .expect("empty usage");
    assert!(empty.is_empty(), "{empty:?}");
}

/// Failed records are counted per failure key (`error_kind`, or `status_NNN` without
/// one) and add up to `errors`; a 200 with a kind (a safety block) is a failure, a 200
/// without one is not. `ttfb_p50_ms` is the median over records that have a TTFB.
pub async fn usage_counts_failures_by_kind<S: Store + ?Sized>(store: &S) {
    let at = |id: &str, status: u16, kind: Option<&str>, ttfb: Option<u64>| {
        let mut r = record(id, 1_000);
        r.status = status;
        r.error_kind = kind.map(Into::into);
        r.ttfb_ms = ttfb;
        r.overhead_us = ttfb.map(|ms| ms * 7);
        r
    };
    store
        .write_logs(&[
            at("1", 200, None, Some(30)),
            at("2", 200, Some("blocked"), Some(10)),
            at("3", 429, Some("all_keys_cooling"), None),
            at("4", 429, Some("all_keys_cooling"), None),
            at("5", 404, None, None),
            at("6", 503, Some("upstream_unavailable"), Some(20)),
        ])
        .await
        .expect("write");
    let cells = store
        .usage(&UsageQuery {
            since_ms: 0,
            bucket_ms: 1_000,
            ..UsageQuery::default()
        })
        .await
        .expect("usage");
    assert_eq!(cells.len(), 1, "{cells:?}");
    let cell = &cells[0];
    let kinds: Vec<(&str, u64)> = cell.error_kinds.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    assert_eq!(
        kinds,
        vec![
            ("all_keys_cooling", 2),
            ("blocked", 1),
            ("status_404", 1),
            ("upstream_unavailable", 1)
        ],
        "{cell:?}"
    );
    assert_eq!((cell.requests, cell.errors), (6, 5), "{cell:?}");
    let classes = cell.error_classes();
    assert_eq!(
        (
            classes.blocked,
            classes.no_key_free,
            classes.client,
            classes.upstream
        ),
        (1, 2, 1, 1),
        "{classes:?}"
    );
    assert_eq!(cell.ttfb_p50_ms, 20, "median of 10, 20, 30: {cell:?}");
    assert_eq!(cell.overhead_p50_us, 140, "median of 70, 140, 210: {cell:?}");
}
