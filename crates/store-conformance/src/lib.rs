//! The behaviour every store shares, written once.
//!
//! `store-sqlite`, `store-postgres` and `store-supabase` implement the same traits
//! (`KeyStore`, `LogSink`, `AdminStore`); their tests call these functions, one
//! `#[tokio::test]` per behaviour per store, each on a fresh store. What only one store
//! does (RLS and grants, NOTIFY, concurrent counters, one HTTP request per batch, file
//! sharing between SQLite handles) stays in that store's own tests.
//!
//! Every function panics with a message naming what broke; where the stores legitimately
//! differ, the difference is a parameter.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proxy_core::admin::{AdminStore, LogQuery, UsageQuery, log_stats};
use proxy_core::log::LogRecord;
use proxy_core::platform::{KeyStore, LogSink, StoreError};
use proxy_core::pool::StateChange;

/// What a store under test implements.
pub trait Store: KeyStore + LogSink + AdminStore {}
impl<S: KeyStore + LogSink + AdminStore + ?Sized> Store for S {}

/// Upstream keys shaped like real ones; "TESTtest" must never show up in listings or
/// error messages.
pub const SECRET_A: &str = "AIzaSyTESTtestTESTtestTESTtestAAAA1111";
pub const SECRET_B: &str = "AIzaSyTESTtestTESTtestTESTtestBBBB2222";

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    u64::try_from(since_epoch.as_millis()).expect("fits in u64")
}

/// A well-formed proxy-key hash: 64 lowercase hex digits, as the Postgres schema demands.
pub fn hash(n: u64) -> String {
    format!("{n:064x}")
}

/// A minimal successful log record.
pub fn record(id: &str, started_at_ms: u64) -> LogRecord {
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

/// A log record with every optional field set, text that needs escaping included.
pub fn full_record(id: &str, started_at_ms: u64) -> LogRecord {
    LogRecord {
        id: id.into(),
        started_at_ms,
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
        error_message: Some("blocked by \"safety\", 100% sure: \\ ünïcödé\n(really)".into()),
        request_body: Some("{\"contents\":[]}".into()),
    }
}

/// The ids of `records`, in order.
pub fn ids(records: &[LogRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

async fn list<S: Store + ?Sized>(store: &S, query: LogQuery) -> Vec<LogRecord> {
    store
        .list_logs(&query)
        .await
        .unwrap_or_else(|e| panic!("list_logs({query:?}) failed: {e}"))
}

fn assert_recent(what: &str, at_ms: u64) {
    assert!(
        at_ms.abs_diff(now_ms()) < 60_000,
        "{what}: created_at_ms {at_ms} is not the time of creation"
    );
}

/// Keys come back in order with their secrets from `load`, masked from `list_keys`; a
/// removed key's id is never handed out again.
pub async fn keys_round_trip_and_list_masked_only<S: Store + ?Sized>(store: &S) {
    let a = store.add_key(SECRET_A, "first").await.expect("add a");
    let b = store.add_key(SECRET_B, "second").await.expect("add b");
    assert_ne!(a, b, "two keys got the same id");

    let snapshot = store.load().await.expect("load");
    let loaded: Vec<(i64, &str, &str, bool)> = snapshot
        .keys
        .iter()
        .map(|(k, _)| (k.id, k.name.as_str(), k.secret.expose(), k.enabled))
        .collect();
    assert_eq!(
        loaded,
        vec![(a, "first", SECRET_A, true), (b, "second", SECRET_B, true)],
        "load returns every key with its secret, enabled, in id order"
    );

    let rows = store.list_keys().await.expect("list");
    assert_eq!(rows.len(), 2, "list_keys: {rows:?}");
    assert_eq!(rows[0].masked, "AIza…1111", "the masked form");
    assert_recent("list_keys", rows[0].created_at_ms);
    let listed = format!("{rows:?}");
    assert!(
        !listed.contains(SECRET_A) && !listed.contains(SECRET_B) && !listed.contains("TESTtest"),
        "list_keys leaks a secret: {listed}"
    );

    assert!(
        store.remove_key(a).await.expect("remove"),
        "removing an existing key"
    );
    assert!(
        !store.remove_key(a).await.expect("remove again"),
        "removing a missing key reports false"
    );
    let left: Vec<i64> = store
        .list_keys()
        .await
        .expect("list")
        .iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(left, vec![b], "only the other key is left");
    // Logs still point at the old id.
    let c = store.add_key(SECRET_A, "again").await.expect("re-add");
    assert!(c > b, "a new key reused an id: {c} after {b}");
}

/// How a store words the refusal of a key it already holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DuplicateKeyMessage {
    /// Exactly "this key is already stored (as #id)".
    NamesExistingId,
    /// Says "already stored", without the id.
    Plain,
}

/// Malformed and duplicate keys are `Invalid`, and the message never repeats the key.
pub async fn bad_and_duplicate_keys_are_rejected_without_echo<S: Store + ?Sized>(
    store: &S,
    duplicate: DuplicateKeyMessage,
) {
    let first = store.add_key(SECRET_A, "first").await.expect("add");
    let with_space = format!("{SECRET_B} ");
    for bad in ["", with_space.as_str(), "AIza key"] {
        match store.add_key(bad, "bad").await {
            Err(StoreError::Invalid(msg)) => {
                assert!(
                    (bad.is_empty() || !msg.contains(bad.trim())) && !msg.contains("TESTtest"),
                    "the refusal of {bad:?} repeats it: {msg}"
                );
            }
            other => panic!("expected Invalid for {bad:?}, got {other:?}"),
        }
    }
    match store.add_key(SECRET_A, "dup").await {
        Err(StoreError::Invalid(msg)) => {
            assert!(
                !msg.contains(SECRET_A) && !msg.contains("TESTtest"),
                "the duplicate's refusal repeats the key: {msg}"
            );
            match duplicate {
                DuplicateKeyMessage::NamesExistingId => assert_eq!(
                    msg,
                    format!("this key is already stored (as #{first})"),
                    "duplicate key message"
                ),
                DuplicateKeyMessage::Plain => {
                    assert!(msg.contains("already stored"), "duplicate key message: {msg}");
                }
            }
        }
        other => panic!("expected Invalid for a duplicate, got {other:?}"),
    }
    assert_eq!(
        store.list_keys().await.expect("list").len(),
        1,
        "only the first key is stored"
    );
}

/// Cooldowns (never shortened, expired ones dropped) and invalid marks (the last in a
/// batch wins) persist: `reopen` gives a second handle on the same data (a reopened
/// file, a new connection, another process) and sees them all.
pub async fn state_changes_persist_and_reload<S, R, F, Fut>(store: &S, reopen: F)
where
    S: Store + ?Sized,
    R: Store,
    F: FnOnce() -> Fut,
    Fut: Future<Output = R>,
{
    let now = now_ms();
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
                reason: "PERMISSION_DENIED".into(),
            },
            // The last mark of a batch wins.
            StateChange::Invalid {
                key_id: b,
                reason: "API_KEY_INVALID".into(),
            },
            // A key removed meanwhile must not fail the batch.
            StateChange::Invalid {
                key_id: 9_999,
                reason: "gone".into(),
            },
            StateChange::Cooldown {
                key_id: 9_999,
                model: "flash".into(),
                until_ms: now + 1_000,
            },
        ])
        .await
        .expect("save state");
    // A later batch cannot shorten a cooldown either.
    store
        .save_state(&[StateChange::Cooldown {
            key_id: a,
            model: "pro".into(),
            until_ms: now + 5_000,
        }])
        .await
        .expect("save again");
    store.save_state(&[]).await.expect("an empty batch is fine");

    let other = reopen().await;
    let snapshot = other.load().await.expect("load");
    let state_a = &snapshot
        .keys
        .iter()
        .find(|(k, _)| k.id == a)
        .expect("key a loaded")
        .1;
    let state_b = &snapshot
        .keys
        .iter()
        .find(|(k, _)| k.id == b)
        .expect("key b loaded")
        .1;
    let cooldowns: Vec<(&str, u64)> = state_a.cooldowns.iter().map(|(m, u)| (m.as_str(), *u)).collect();
    assert_eq!(
        cooldowns,
        vec![("flash", now + 60_000), ("pro", now + 120_000)],
        "cooldowns: the latest end per model, none that ran out"
    );
    assert_eq!(state_a.invalid_reason, None, "key a was never marked invalid");
    assert_eq!(
        state_b.invalid_reason.as_deref(),
        Some("API_KEY_INVALID"),
        "the last invalid mark of the batch"
    );
    assert!(state_b.cooldowns.is_empty(), "key b has no cooldowns");

    let rows = other.list_keys().await.expect("list");
    assert_eq!(
        rows[0].cooldowns,
        vec![
            ("flash".to_string(), now + 60_000),
            ("pro".to_string(), now + 120_000)
        ],
        "list_keys shows the same cooldowns"
    );
    assert_eq!(
        rows[1].invalid_reason.as_deref(),
        Some("API_KEY_INVALID"),
        "list_keys shows the invalid mark"
    );
}

/// A cooldown disappears from `load` and `list_keys` once it has run out. Returns the
/// key's id, for store-specific checks that follow.
pub async fn cooldowns_that_ran_out_are_not_returned<S: Store + ?Sized>(store: &S) -> i64 {
    let a = store.add_key(SECRET_A, "a").await.expect("add");
    store
        .save_state(&[StateChange::Cooldown {
            key_id: a,
            model: "flash".into(),
            until_ms: now_ms() + 300,
        }])
        .await
        .expect("save");
    assert_eq!(
        store.load().await.expect("load").keys[0].1.cooldowns.len(),
        1,
        "the cooldown is in force at first"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        store.load().await.expect("load").keys[0].1.cooldowns.is_empty(),
        "load returns a cooldown that ran out"
    );
    assert!(
        store.list_keys().await.expect("list")[0].cooldowns.is_empty(),
        "list_keys returns a cooldown that ran out"
    );
    a
}

/// Disabling keeps learned state; enabling clears the invalid mark and the cooldowns.
pub async fn enabling_clears_invalid_and_cooldowns<S: Store + ?Sized>(store: &S) {
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

    assert!(store.set_key_enabled(a, false).await.expect("disable"), "disable");
    let (key, state) = store.load().await.expect("load").keys.remove(0);
    assert!(!key.enabled, "the key is disabled");
    assert!(
        state.invalid_reason.is_some() && !state.cooldowns.is_empty(),
        "disabling alone forgets nothing: {state:?}"
    );

    assert!(store.set_key_enabled(a, true).await.expect("enable"), "enable");
    let (key, state) = store.load().await.expect("load").keys.remove(0);
    assert!(key.enabled, "the key is enabled");
    assert_eq!(state.invalid_reason, None, "enabling clears the invalid mark");
    assert!(
        state.cooldowns.is_empty(),
        "enabling clears the cooldowns: {state:?}"
    );

    for enabled in [true, false] {
        assert!(
            !store.set_key_enabled(12_345, enabled).await.expect("missing key"),
            "set_key_enabled({enabled}) on a missing key reports false"
        );
    }
}

/// Proxy keys: hashes only, unique, revoking is an idempotent flag.
pub async fn proxy_keys_round_trip<S: Store + ?Sized>(store: &S) {
    let one = store.create_proxy_key("laptop", &hash(1)).await.expect("create");
    let two = store.create_proxy_key("ci", &hash(2)).await.expect("create");
    match store.create_proxy_key("again", &hash(1)).await {
        Err(StoreError::Invalid(msg)) => assert!(
            msg.contains("already exists") && !msg.contains(&hash(1)),
            "duplicate proxy key message: {msg}"
        ),
        other => panic!("expected Invalid for a duplicate hash, got {other:?}"),
    }

    assert!(store.revoke_proxy_key(two).await.expect("revoke"), "revoke");
    assert!(
        store.revoke_proxy_key(two).await.expect("revoke twice"),
        "revoking twice still finds the key"
    );
    assert!(
        !store.revoke_proxy_key(999).await.expect("revoke missing"),
        "revoking a missing key reports false"
    );

    let rows = store.list_proxy_keys().await.expect("list");
    let listed: Vec<(i64, &str, bool)> = rows.iter().map(|r| (r.id, r.name.as_str(), r.revoked)).collect();
    assert_eq!(
        listed,
        vec![(one, "laptop", false), (two, "ci", true)],
        "list_proxy_keys"
    );
    for row in &rows {
        assert_recent("list_proxy_keys", row.created_at_ms);
    }

    let loaded = store.load().await.expect("load").proxy_keys;
    let hashes: Vec<(String, bool)> = loaded
        .iter()
        .map(|p| (p.secret_hash.clone(), p.revoked))
        .collect();
    assert_eq!(
        hashes,
        vec![(hash(1), false), (hash(2), true)],
        "load returns the hashes with their revoked flag"
    );
}

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

/// `prune_logs` deletes rows started before the cutoff and counts them. Leaves two rows
/// behind (started at 300 and 400).
pub async fn prune_deletes_only_older_rows<S: Store + ?Sized>(store: &S) {
    let batch: Vec<LogRecord> = [100u64, 200, 300, 400]
        .iter()
        .map(|t| record(&format!("t{t}"), *t))
        .collect();
    store.write_logs(&batch).await.expect("write");
    assert_eq!(store.prune_logs(300).await.expect("prune"), 2, "rows before 300");
    let listed = list(store, LogQuery::default()).await;
    assert_eq!(ids(&listed), vec!["t400", "t300"], "what is left");
    assert_eq!(
        store.prune_logs(300).await.expect("prune again"),
        0,
        "nothing left to prune"
    );
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

/// Two handles on the same data (the `serve` process and the CLI) see each other's
/// writes.
pub async fn two_handles_see_each_others_writes<S: Store + ?Sized, T: Store + ?Sized>(serve: &S, cli: &T) {
    let id = cli.add_key(SECRET_A, "from-cli").await.expect("cli adds");
    let seen = serve.load().await.expect("serve loads").keys;
    assert_eq!(
        seen.iter().map(|(k, _)| k.id).collect::<Vec<_>>(),
        vec![id],
        "serve sees the key the CLI added"
    );

    serve
        .save_state(&[StateChange::Invalid {
            key_id: id,
            reason: "PERMISSION_DENIED".into(),
        }])
        .await
        .expect("serve saves");
    let rows = cli.list_keys().await.expect("cli lists");
    assert_eq!(
        rows[0].invalid_reason.as_deref(),
        Some("PERMISSION_DENIED"),
        "the CLI sees the state serve saved"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_64_lowercase_hex_and_distinct() {
        for n in [0, 1, 0xa, u64::MAX] {
            let h = hash(n);
            assert_eq!(h.len(), 64, "{h}");
            assert!(h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')), "{h}");
        }
        assert_ne!(hash(1), hash(2));
    }

    #[test]
    fn the_full_record_sets_every_optional_field() {
        let full = full_record("x", 1);
        let text = format!("{full:?}");
        assert!(!text.contains("None"), "{text}");
        assert!(!full.upstream_key_ids.is_empty() && full.stream);
    }
}
