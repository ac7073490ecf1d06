//! Per-key counters kept by `insert_request_logs`: exact under many concurrent writers,
//! unchanged by retried batches.

use std::sync::Arc;

use proxy_core::admin::AdminStore;
use proxy_core::log::LogRecord;
use proxy_core::platform::LogSink;
use tokio::sync::Barrier;

use crate::support::{SECRET_A, SECRET_B, TestDb, record, test_db};

const WRITERS: usize = 100;
const PER_BATCH: usize = 5;
/// Separate stores, as separate proxy instances would be: separate pools and connections.
const INSTANCES: usize = 10;

#[derive(Debug, Default, PartialEq, Eq)]
struct Counters {
    requests: i64,
    errors: i64,
    prompt_tokens: i64,
    candidates_tokens: i64,
    thoughts_tokens: i64,
    cached_tokens: i64,
    total_tokens: i64,
}

fn batch(writer: usize, key: i64, other: i64) -> Vec<LogRecord> {
    (0..PER_BATCH)
        .map(|j| {
            let mut r = record(
                &format!("w{writer:03}-{j}"),
                1_000_000 + (writer * PER_BATCH + j) as u64,
            );
            // Every request tried `other` first; `key` answered.
            r.upstream_key_ids = vec![other, key];
            r.answered_key_id = Some(key);
            r.status = if j == 0 { 500 } else { 200 };
            r.error_kind = (j == 1).then(|| "blocked".to_string());
            r.prompt_tokens = Some((writer + j) as u64);
            r.candidates_tokens = Some(2);
            r.thoughts_tokens = (j % 2 == 0).then_some(3);
            r.cached_tokens = Some(1);
            r.total_tokens = Some((writer + j) as u64 + 6);
            r
        })
        .collect()
}

fn expected(batches: &[Vec<LogRecord>]) -> Counters {
    let mut c = Counters::default();
    for r in batches.iter().flatten() {
        c.requests += 1;
        c.errors += i64::from(r.status >= 400 || r.error_kind.is_some());
        let add = |v: Option<u64>| i64::try_from(v.unwrap_or(0)).expect("small");
        c.prompt_tokens += add(r.prompt_tokens);
        c.candidates_tokens += add(r.candidates_tokens);
        c.thoughts_tokens += add(r.thoughts_tokens);
        c.cached_tokens += add(r.cached_tokens);
        c.total_tokens += add(r.total_tokens);
    }
    c
}

async fn counters(db: &TestDb, key: i64) -> Counters {
    let row = db
        .client()
        .await
        .query_one(
            "SELECT requests, errors, prompt_tokens, candidates_tokens, thoughts_tokens, cached_tokens, \
             total_tokens FROM key_state WHERE key_id = $1",
            &[&key],
        )
        .await
        .expect("key_state row");
    Counters {
        requests: row.get(0),
        errors: row.get(1),
        prompt_tokens: row.get(2),
        candidates_tokens: row.get(3),
        thoughts_tokens: row.get(4),
        cached_tokens: row.get(5),
        total_tokens: row.get(6),
    }
}

/// All writers at once, released together by a barrier.
async fn write_all(stores: &[store_postgres::PostgresStore], batches: &Arc<Vec<Vec<LogRecord>>>) {
    let barrier = Arc::new(Barrier::new(WRITERS));
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = stores[writer % INSTANCES].clone();
        let batches = Arc::clone(batches);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.write_logs(&batches[writer]).await
        }));
    }
    for task in tasks {
        task.await.expect("writer task").expect("write_logs");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_keep_exact_counters_and_retries_do_not_double_count() {
    let db = test_db().await;
    let admin = db.store().await;
    let key = admin.add_key(SECRET_A, "busy").await.expect("add");
    let other = admin.add_key(SECRET_B, "tried first").await.expect("add");
    let mut stores = Vec::new();
    for _ in 0..INSTANCES {
        stores.push(db.store().await);
    }
    let batches: Arc<Vec<Vec<LogRecord>>> = Arc::new((0..WRITERS).map(|w| batch(w, key, other)).collect());
    let want = expected(&batches);
    assert_eq!(want.requests, (WRITERS * PER_BATCH) as i64);

    write_all(&stores, &batches).await;
    assert_eq!(counters(&db, key).await, want);
    // The key that was only tried gets no requests, but its last use.
    let tried_only = counters(&db, other).await;
    assert_eq!(tried_only, Counters::default());

    // Every batch again, all at once: the sink could not tell whether they committed.
    write_all(&stores, &batches).await;
    assert_eq!(counters(&db, key).await, want);

    let client = db.client().await;
    let rows: i64 = client
        .query_one("SELECT count(*) FROM request_logs", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows, (WRITERS * PER_BATCH) as i64);
    let last_used: bool = client
        .query_one(
            "SELECT bool_and(last_used_at = to_timestamp($1::bigint / 1000.0)) FROM key_state",
            &[&(1_000_000 + (WRITERS * PER_BATCH) as i64 - 1)],
        )
        .await
        .expect("last used")
        .get(0);
    assert!(last_used, "both keys were last used by the latest request");
}
