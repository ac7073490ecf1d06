//! Round trips through a real SQLite file, as the `serve` process and the CLI use it.

use std::time::{SystemTime, UNIX_EPOCH};

use proxy_core::admin::{AdminStore, LogQuery};
use proxy_core::log::LogRecord;
use proxy_core::platform::{KeyStore, LogSink, StoreError};
use proxy_core::pool::StateChange;
use store_sqlite::SqliteStore;
use tempfile::TempDir;

const SECRET_A: &str = "AIzaSyTESTtestTESTtestTESTtestAAAA1111";
const SECRET_B: &str = "AIzaSyTESTtestTESTtestTESTtestBBBB2222";

fn now_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    u64::try_from(since_epoch.as_millis()).expect("fits in u64")
}

/// A store on a fresh file in a nested folder that does not exist yet.
fn temp_store() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("nested/proxy.db")).expect("open store");
    (dir, store)
}

fn record(id: &str, started_at_ms: u64) -> LogRecord {
    LogRecord {
        id: id.into(),
        started_at_ms,
        route: "generateContent".into(),
        api: "gemini".into(),
        status: 200,
        attempts: 1,
        latency_ms: 100,
        model: Some("flash".into()),
        ..LogRecord::default()
    }
}

fn ids(records: &[LogRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

#[tokio::test]
async fn keys_round_trip_and_list_masked_only() {
    let (_dir, store) = temp_store();
    let a = store.add_key(SECRET_A, "first").await.expect("add a");
    let b = store.add_key(SECRET_B, "second").await.expect("add b");
    assert_ne!(a, b);

    let snapshot = store.load().await.expect("load");
    let loaded: Vec<(i64, &str, &str, bool)> = snapshot
        .keys
        .iter()
        .map(|(k, _)| (k.id, k.name.as_str(), k.secret.expose(), k.enabled))
        .collect();
    assert_eq!(
        loaded,
        vec![(a, "first", SECRET_A, true), (b, "second", SECRET_B, true)]
    );

    let rows = store.list_keys().await.expect("list");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].masked, "AIza…1111");
    assert!(rows[0].created_at_ms > 0);
    let listed = format!("{rows:?}");
    assert!(
        !listed.contains(SECRET_A) && !listed.contains(SECRET_B),
        "{listed}"
    );
    assert!(!listed.contains("TESTtest"), "{listed}");

    assert!(store.remove_key(a).await.expect("remove"));
    assert!(!store.remove_key(a).await.expect("remove again"));
    let left: Vec<i64> = store
        .list_keys()
        .await
        .expect("list")
        .iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(left, vec![b]);
    // A new key never reuses a removed key's id: logs still point at the old one.
    let c = store.add_key(SECRET_A, "again").await.expect("re-add");
    assert!(c > b);
}

#[tokio::test]
async fn bad_and_duplicate_keys_are_rejected_without_echo() {
    let (_dir, store) = temp_store();
    store.add_key(SECRET_A, "first").await.expect("add");
    let with_space = format!("{SECRET_B} ");
    for bad in ["", with_space.as_str(), "AIza key"] {
        match store.add_key(bad, "bad").await {
            Err(StoreError::Invalid(msg)) => assert!(bad.is_empty() || !msg.contains(bad.trim()), "{msg}"),
            other => panic!("expected Invalid for {bad:?}, got {other:?}"),
        }
    }
    match store.add_key(SECRET_A, "dup").await {
        Err(StoreError::Invalid(msg)) => {
            assert!(!msg.contains(SECRET_A), "{msg}");
            assert!(!msg.contains("TESTtest"), "{msg}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(store.list_keys().await.expect("list").len(), 1);
}

#[tokio::test]
async fn state_changes_persist_and_reload() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("proxy.db");
    let now = now_ms();
    let (a, b) = {
        let store = SqliteStore::open(&path).expect("open");
        let a = store.add_key(SECRET_A, "a").await.expect("add a");
        let b = store.add_key(SECRET_B, "b").await.expect("add b");
        store
            .save_state(&[
                StateChange::Cooldown {
                    key_id: a,
                    model: "flash".into(),
                    until_ms: now + 60_000,
                },
                // An earlier cooldown for the same key and model must not shorten it.
                StateChange::Cooldown {
                    key_id: a,
                    model: "flash".into(),
                    until_ms: now + 1_000,
                },
                StateChange::Cooldown {
                    key_id: a,
                    model: "pro".into(),
                    until_ms: now + 120_000,
                },
                // Already over: not worth returning.
                StateChange::Cooldown {
                    key_id: a,
                    model: "old".into(),
                    until_ms: now - 1_000,
                },
                StateChange::Invalid {
                    key_id: b,
                    reason: "API_KEY_INVALID".into(),
                },
                // A key removed meanwhile must not fail the batch.
                StateChange::Invalid {
                    key_id: 9_999,
                    reason: "gone".into(),
                },
            ])
            .await
            .expect("save state");
        (a, b)
    };

    let store = SqliteStore::open(&path).expect("reopen");
    let snapshot = store.load().await.expect("load");
    let state_a = &snapshot.keys.iter().find(|(k, _)| k.id == a).expect("a").1;
    let state_b = &snapshot.keys.iter().find(|(k, _)| k.id == b).expect("b").1;
    let cooldowns: Vec<(&str, u64)> = state_a.cooldowns.iter().map(|(m, u)| (m.as_str(), *u)).collect();
    assert_eq!(cooldowns, vec![("flash", now + 60_000), ("pro", now + 120_000)]);
    assert_eq!(state_a.invalid_reason, None);
    assert_eq!(state_b.invalid_reason.as_deref(), Some("API_KEY_INVALID"));
    assert!(state_b.cooldowns.is_empty());

    let rows = store.list_keys().await.expect("list");
    assert_eq!(rows[0].cooldowns.len(), 2);
    assert_eq!(rows[1].invalid_reason.as_deref(), Some("API_KEY_INVALID"));
}

#[tokio::test]
async fn cooldowns_that_ran_out_are_not_returned() {
    let (_dir, store) = temp_store();
    let a = store.add_key(SECRET_A, "a").await.expect("add");
    store
        .save_state(&[StateChange::Cooldown {
            key_id: a,
            model: "flash".into(),
            until_ms: now_ms() + 150,
        }])
        .await
        .expect("save");
    assert_eq!(store.load().await.expect("load").keys[0].1.cooldowns.len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(store.load().await.expect("load").keys[0].1.cooldowns.is_empty());
    assert!(store.list_keys().await.expect("list")[0].cooldowns.is_empty());
}

#[tokio::test]
async fn enabling_clears_invalid_and_cooldowns() {
    let (_dir, store) = temp_store();
    let a = store.add_key(SECRET_A, "a").await.expect("add");
    store
        .save_state(&[
            StateChange::Invalid {
                key_id: a,
                reason: "API_KEY_INVALID".into(),
            },
            StateChange::Cooldown {
                key_id: a,
                model: "flash".into(),
                until_ms: now_ms() + 60_000,
            },
        ])
        .await
        .expect("save");

    assert!(store.set_key_enabled(a, false).await.expect("disable"));
    let (key, state) = store.load().await.expect("load").keys.remove(0);
    assert!(!key.enabled);
    // Disabling alone forgets nothing.
    assert!(state.invalid_reason.is_some() && !state.cooldowns.is_empty());

    assert!(store.set_key_enabled(a, true).await.expect("enable"));
    let (key, state) = store.load().await.expect("load").keys.remove(0);
    assert!(key.enabled);
    assert_eq!(state.invalid_reason, None);
    assert!(state.cooldowns.is_empty());

    assert!(!store.set_key_enabled(12_345, true).await.expect("missing key"));
}

#[tokio::test]
async fn proxy_keys_round_trip() {
    let (_dir, store) = temp_store();
    let one = store
        .create_proxy_key("laptop", "hash-one")
        .await
        .expect("create");
    let two = store.create_proxy_key("ci", "hash-two").await.expect("create");
    assert!(matches!(
        store.create_proxy_key("again", "hash-one").await,
        Err(StoreError::Invalid(_))
    ));

    assert!(store.revoke_proxy_key(two).await.expect("revoke"));
    assert!(!store.revoke_proxy_key(999).await.expect("revoke missing"));

    let rows = store.list_proxy_keys().await.expect("list");
    let listed: Vec<(i64, &str, bool)> = rows.iter().map(|r| (r.id, r.name.as_str(), r.revoked)).collect();
    assert_eq!(listed, vec![(one, "laptop", false), (two, "ci", true)]);
    assert!(rows.iter().all(|r| r.created_at_ms > 0));

    let loaded = store.load().await.expect("load").proxy_keys;
    let hashes: Vec<(&str, bool)> = loaded
        .iter()
        .map(|p| (p.secret_hash.as_str(), p.revoked))
        .collect();
    assert_eq!(hashes, vec![("hash-one", false), ("hash-two", true)]);
}

#[tokio::test]
async fn log_records_round_trip_every_field() {
    let (_dir, store) = temp_store();
    let full = LogRecord {
        id: "r1".into(),
        started_at_ms: 1_700_000_000_000,
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
        error_message: Some("blocked by safety".into()),
        request_body: Some("{\"contents\":[]}".into()),
    };
    let sparse = record("r2", 1_700_000_000_001);
    store
        .write_logs(&[full.clone(), sparse.clone()])
        .await
        .expect("write");
    let listed = store.list_logs(&LogQuery::default()).await.expect("list");
    assert_eq!(listed, vec![sparse, full]);
}

#[tokio::test]
async fn log_filters_each_narrow() {
    let (_dir, store) = temp_store();
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
}

#[tokio::test]
async fn limit_defaults_to_50_and_caps_at_1000_with_500_rows_in_one_batch() {
    let (_dir, store) = temp_store();
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
async fn the_same_batch_twice_keeps_one_copy() {
    let (_dir, store) = temp_store();
    let batch = vec![record("a", 1), record("b", 2)];
    store.write_logs(&batch).await.expect("first");
    store.write_logs(&batch).await.expect("retry");
    let listed = store.list_logs(&LogQuery::default()).await.expect("list");
    assert_eq!(ids(&listed), vec!["b", "a"]);
}

#[tokio::test]
async fn stats_sum_tokens_and_count_errors() {
    let (_dir, store) = temp_store();
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

#[tokio::test]
async fn prune_deletes_only_older_rows() {
    let (_dir, store) = temp_store();
    let batch: Vec<LogRecord> = [100u64, 200, 300, 400]
        .iter()
        .map(|t| record(&format!("t{t}"), *t))
        .collect();
    store.write_logs(&batch).await.expect("write");
    assert_eq!(store.prune_logs(300).await.expect("prune"), 2);
    let listed = store.list_logs(&LogQuery::default()).await.expect("list");
    assert_eq!(ids(&listed), vec!["t400", "t300"]);
    assert_eq!(store.prune_logs(300).await.expect("prune again"), 0);
}

#[tokio::test]
async fn logs_mark_keys_last_used() {
    let (_dir, store) = temp_store();
    let a = store.add_key(SECRET_A, "a").await.expect("add");
    let mut first = record("1", 5_000);
    first.upstream_key_ids = vec![a, 77];
    let mut older = record("2", 4_000);
    older.upstream_key_ids = vec![a];
    // Within a batch and across batches, the latest time wins whatever the order.
    store.write_logs(&[first, older]).await.expect("write");
    let mut oldest = record("3", 3_000);
    oldest.upstream_key_ids = vec![a];
    store.write_logs(&[oldest]).await.expect("write oldest");
    let (_, state) = store.load().await.expect("load").keys.remove(0);
    assert_eq!(state.last_used_ms, Some(5_000));
}

#[tokio::test]
async fn two_handles_on_one_file_see_each_others_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("shared.db");
    let serve = SqliteStore::open(&path).expect("serve handle");
    let cli = SqliteStore::open(&path).expect("cli handle");

    let id = cli.add_key(SECRET_A, "from-cli").await.expect("cli adds");
    let seen = serve.load().await.expect("serve loads").keys;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0.id, id);

    serve
        .save_state(&[StateChange::Invalid {
            key_id: id,
            reason: "PERMISSION_DENIED".into(),
        }])
        .await
        .expect("serve saves");
    let rows = cli.list_keys().await.expect("cli lists");
    assert_eq!(rows[0].invalid_reason.as_deref(), Some("PERMISSION_DENIED"));

    // Both write at once: the busy timeout makes one wait instead of failing.
    let batch_a: Vec<LogRecord> = (0..200u64).map(|i| record(&format!("a{i:03}"), i)).collect();
    let batch_b: Vec<LogRecord> = (0..200u64).map(|i| record(&format!("b{i:03}"), i)).collect();
    let (ra, rb) = tokio::join!(serve.write_logs(&batch_a), cli.write_logs(&batch_b));
    ra.expect("serve writes");
    rb.expect("cli writes");
    assert_eq!(cli.prune_logs(u64::MAX).await.expect("prune"), 400);
}

#[tokio::test]
async fn in_memory_store_works() {
    let store = SqliteStore::open_in_memory().expect("memory");
    store.add_key(SECRET_A, "m").await.expect("add");
    assert_eq!(store.load().await.expect("load").keys.len(), 1);
}
