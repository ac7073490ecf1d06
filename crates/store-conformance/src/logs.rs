//! Request logs: round trip, filters and paging, limits, retried batches, and the key
//! state written logs feed.

use proxy_core::admin::LogQuery;
use proxy_core::log::LogRecord;

use crate::Store;
use crate::fixtures::{SECRET_A, SECRET_B, full_record, ids, list, record};

/// Every field of a log record survives the round trip; an empty batch is fine.
pub async fn log_records_round_trip_every_field<S: Store + ?Sized>(store: &S) {
    let full = full_record("r1", 1_700_000_000_123);
    let sparse = record("r2", 1_700_000_000_124);
    store
        .write_logs(&[full.clone(), sparse.clone()])
        .await
        .expect("write");
    store.write_logs(&[]).await.expect("an empty batch is fine");
    let listed = list(store, LogQuery::default()).await;
    assert_eq!(listed, vec![sparse, full], "newest first, every field intact");
}

/// Records linked by a log writer's chain read back as they were linked: the chain
/// verifies, and a change to a stored field would not.
pub async fn chained_records_verify_when_read_back<S: Store + ?Sized>(store: &S) {
    let mut chain = proxy_core::log_chain::LogChain::new("conformance");
    let mut records = vec![
        full_record("c1", 1_700_000_000_200),
        record("c2", 1_700_000_000_201),
    ];
    // PostgreSQL keeps no U+0000: linking normalises the text the way the stores do.
    records[0].error_message = Some("a NUL \0 inside".into());
    for (i, record) in records.iter_mut().enumerate() {
        (record.chain_id, record.chain_seq, record.chain_sha256) = (None, None, None);
        chain.link(record, 1_700_000_000_300 + i as u64);
    }
    store.write_logs(&records).await.expect("write");
    let listed = list(store, LogQuery::default()).await;
    let report = proxy_core::log_chain::verify(listed.clone());
    assert_eq!(report.problems, vec![], "{listed:#?}");
    assert_eq!((report.chains.len(), report.chains[0].records), (1, 2));
    assert_eq!(
        report.chains[0].head,
        records[1].chain_sha256.clone().unwrap_or_default()
    );
    let mut changed = listed;
    changed[0].latency_ms += 1;
    assert!(proxy_core::log_chain::verify(changed).tampered());
}

/// Each `LogQuery` filter narrows on its own and together; paging works.
pub async fn log_filters_each_narrow<S: Store + ?Sized>(store: &S) {
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
        // r1 and r4 asked the same prompt.
        r.prompt_sha256 = Some(match i {
            1 | 4 => "ab".repeat(32),
            _ => format!("{i:064x}"),
        });
        records.push(r);
    }
    store.write_logs(&records).await.expect("write");

    let cases: Vec<(&str, LogQuery, Vec<&str>)> = vec![
        (
            "no filter",
            LogQuery::default(),
            vec!["r5", "r4", "r3", "r2", "r1", "r0"],
        ),
        (
            "since and until (until exclusive)",
            LogQuery {
                since_ms: Some(1_002),
                until_ms: Some(1_004),
                ..LogQuery::default()
            },
            vec!["r3", "r2"],
        ),
        (
            "upstream key that answered",
            LogQuery {
                upstream_key_id: Some(20),
                ..LogQuery::default()
            },
            vec!["r1"],
        ),
        (
            // Key 10 was tried in r1 although key 20 answered.
            "upstream key that was tried",
            LogQuery {
                upstream_key_id: Some(10),
                ..LogQuery::default()
            },
            vec!["r1", "r0"],
        ),
        (
            "proxy key",
            LogQuery {
                proxy_key_id: Some(2),
                ..LogQuery::default()
            },
            vec!["r5", "r4", "r3"],
        ),
        (
            "model",
            LogQuery {
                model: Some("pro".into()),
                ..LogQuery::default()
            },
            vec!["r5", "r3", "r1"],
        ),
        (
            "model containing a text, in any case",
            LogQuery {
                model_contains: Some("LAS".into()),
                ..LogQuery::default()
            },
            vec!["r4", "r2", "r0"],
        ),
        (
            // LIKE's wildcards are plain characters here: no model contains them.
            "model containing % or _",
            LogQuery {
                model_contains: Some("%".into()),
                ..LogQuery::default()
            },
            vec![],
        ),
        (
            "model containing _",
            LogQuery {
                model_contains: Some("_".into()),
                ..LogQuery::default()
            },
            vec![],
        ),
        (
            "request id",
            LogQuery {
                request_id: Some("r3".into()),
                ..LogQuery::default()
            },
            vec!["r3"],
        ),
        (
            "status class 4xx",
            LogQuery {
                status_class: Some(4),
                ..LogQuery::default()
            },
            vec!["r4"],
        ),
        (
            "status class 2xx",
            LogQuery {
                status_class: Some(2),
                ..LogQuery::default()
            },
            vec!["r5", "r3", "r2", "r1", "r0"],
        ),
        (
            "prompt hash, given in either case",
            LogQuery {
                prompt_sha256: Some("AB".repeat(32)),
                ..LogQuery::default()
            },
            vec!["r4", "r1"],
        ),
        (
            "status",
            LogQuery {
                status: Some(429),
                ..LogQuery::default()
            },
            vec!["r4"],
        ),
        (
            "stream",
            LogQuery {
                stream: Some(true),
                ..LogQuery::default()
            },
            vec!["r5"],
        ),
        (
            "not stream and model",
            LogQuery {
                stream: Some(false),
                model: Some("pro".into()),
                ..LogQuery::default()
            },
            vec!["r3", "r1"],
        ),
        (
            "every filter at once",
            LogQuery {
                stream: Some(false),
                model: Some("pro".into()),
                proxy_key_id: Some(1),
                since_ms: Some(1_001),
                upstream_key_id: Some(20),
                status: Some(200),
                until_ms: Some(2_000),
                ..LogQuery::default()
            },
            vec!["r1"],
        ),
        (
            "limit and offset",
            LogQuery {
                limit: 2,
                offset: 1,
                ..LogQuery::default()
            },
            vec!["r4", "r3"],
        ),
        (
            "since the end of time",
            LogQuery {
                since_ms: Some(u64::MAX),
                ..LogQuery::default()
            },
            vec![],
        ),
    ];
    for (what, query, expected) in cases {
        assert_eq!(ids(&list(store, query).await), expected, "filter: {what}");
    }
}

/// 500 rows go in one call; a listing defaults to 50 rows and never exceeds 1000;
/// `prune_logs` counts what it deleted.
pub async fn limit_defaults_to_50_and_caps_at_1000<S: Store + ?Sized>(store: &S) {
    let records: Vec<LogRecord> = (0..1_100u64).map(|i| record(&format!("r{i:05}"), i)).collect();
    store
        .write_logs(&records[..500])
        .await
        .expect("500 rows in one call");
    assert_eq!(list(store, LogQuery::default()).await.len(), 50, "default limit");
    store.write_logs(&records[500..]).await.expect("the rest");
    let listed = list(
        store,
        LogQuery {
            limit: 5_000,
            ..LogQuery::default()
        },
    )
    .await;
    assert_eq!(listed.len(), 1_000, "the limit is capped at 1000");
    assert_eq!(listed[0].id, "r01099", "newest first");
    assert_eq!(
        store.prune_logs(u64::MAX).await.expect("prune all"),
        1_100,
        "prune_logs counts every deleted row"
    );
}

/// A retried batch, or an id repeated within a batch, keeps one copy.
pub async fn the_same_batch_twice_keeps_one_copy<S: Store + ?Sized>(store: &S) {
    let batch = vec![record("a", 1), record("b", 2)];
    store.write_logs(&batch).await.expect("first");
    store.write_logs(&batch).await.expect("retry");
    store
        .write_logs(&[record("c", 3), record("c", 3)])
        .await
        .expect("an id twice in one batch");
    let listed = list(store, LogQuery::default()).await;
    assert_eq!(ids(&listed), vec!["c", "b", "a"], "one copy of each record");
}

/// Writing logs records when each key was last tried: the latest time wins within and
/// across batches, unknown keys are skipped, untouched keys stay unused.
pub async fn logs_mark_keys_last_used<S: Store + ?Sized>(store: &S) {
    let a = store.add_key(SECRET_A, "a").await.expect("add");
    let b = store.add_key(SECRET_B, "b").await.expect("add");
    let mut first = record("1", 5_000);
    first.upstream_key_ids = vec![a, 77];
    let mut older = record("2", 4_000);
    older.upstream_key_ids = vec![a];
    store.write_logs(&[first, older]).await.expect("write");
    let mut oldest = record("3", 3_000);
    oldest.upstream_key_ids = vec![a];
    store.write_logs(&[oldest]).await.expect("write oldest");
    let keys = store.load().await.expect("load").keys;
    assert_eq!(
        keys[0].1.last_used_ms,
        Some(5_000),
        "the latest time wins whatever the order"
    );
    assert_eq!(keys[1].0.id, b, "key b is loaded second");
    assert_eq!(keys[1].1.last_used_ms, None, "a key never tried was never used");
    let listed: Vec<Option<u64>> = store
        .list_keys()
        .await
        .expect("list")
        .iter()
        .map(|k| k.last_used_ms)
        .collect();
    assert_eq!(listed, vec![Some(5_000), None], "listings show the same last use");
}
