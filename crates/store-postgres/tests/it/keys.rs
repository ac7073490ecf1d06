//! Upstream keys, learned state and proxy keys, with store-sqlite's expectations.

use std::time::Duration;

use proxy_core::admin::AdminStore;
use proxy_core::platform::{KeyStore, StoreError};
use proxy_core::pool::StateChange;
use store_postgres::PostgresStore;

use crate::support::{SECRET_A, SECRET_B, TestDb, hash, now_ms};

#[tokio::test(flavor = "multi_thread")]
async fn keys_round_trip_and_list_masked_only() {
    let db = TestDb::new().await;
    let store = db.store().await;
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
    let created = rows[0].created_at_ms;
    assert!(created.abs_diff(now_ms()) < 60_000, "created_at_ms {created}");
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

#[tokio::test(flavor = "multi_thread")]
async fn bad_and_duplicate_keys_are_rejected_without_echo() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let first = store.add_key(SECRET_A, "first").await.expect("add");
    let with_space = format!("{SECRET_B} ");
    let with_nul = format!("{SECRET_B}\0");
    for bad in ["", with_space.as_str(), "AIza key", with_nul.as_str()] {
        match store.add_key(bad, "bad").await {
            Err(StoreError::Invalid(msg)) => {
                assert!(bad.is_empty() || !msg.contains(bad.trim()), "{msg}");
                assert!(!msg.contains("TESTtest"), "{msg}");
            }
            other => panic!("expected Invalid for {bad:?}, got {other:?}"),
        }
    }
    match store.add_key(SECRET_A, "dup").await {
        Err(StoreError::Invalid(msg)) => {
            assert_eq!(msg, format!("this key is already stored (as #{first})"));
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    // Straight to the table: PostgreSQL's DETAIL repeats the key; the store's message
    // must not.
    let err = db
        .superuser()
        .await
        .execute(
            "INSERT INTO upstream_keys (name, secret) VALUES ('x', $1)",
            &[&SECRET_A],
        )
        .await
        .expect_err("unique secret");
    assert!(
        format!("{err:?}").contains("TESTtest"),
        "the server does put it in DETAIL"
    );
    assert_eq!(store.list_keys().await.expect("list").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn state_changes_persist_and_reload() {
    let db = TestDb::new().await;
    let now = now_ms();
    let (a, b) = {
        let store = db.store().await;
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
        (a, b)
    };

    let store = db.store().await;
    let snapshot = store.load().await.expect("load");
    let state_a = &snapshot.keys.iter().find(|(k, _)| k.id == a).expect("a").1;
    let state_b = &snapshot.keys.iter().find(|(k, _)| k.id == b).expect("b").1;
    let cooldowns: Vec<(&str, u64)> = state_a.cooldowns.iter().map(|(m, u)| (m.as_str(), *u)).collect();
    assert_eq!(cooldowns, vec![("flash", now + 60_000), ("pro", now + 120_000)]);
    assert_eq!(state_a.invalid_reason, None);
    assert_eq!(state_b.invalid_reason.as_deref(), Some("API_KEY_INVALID"));
    assert!(state_b.cooldowns.is_empty());

    let rows = store.list_keys().await.expect("list");
    assert_eq!(
        rows[0].cooldowns,
        vec![("flash".into(), now + 60_000), ("pro".into(), now + 120_000)]
    );
    assert_eq!(rows[1].invalid_reason.as_deref(), Some("API_KEY_INVALID"));
}

#[tokio::test(flavor = "multi_thread")]
async fn cooldowns_that_ran_out_are_not_returned_and_are_swept() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let a = store.add_key(SECRET_A, "a").await.expect("add");
    store
        .save_state(&[StateChange::Cooldown {
            key_id: a,
            model: "flash".into(),
            until_ms: now_ms() + 300,
        }])
        .await
        .expect("save");
    assert_eq!(store.load().await.expect("load").keys[0].1.cooldowns.len(), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(store.load().await.expect("load").keys[0].1.cooldowns.is_empty());
    assert!(store.list_keys().await.expect("list")[0].cooldowns.is_empty());

    // The next batch of state changes deletes the expired row.
    store
        .save_state(&[StateChange::Cooldown {
            key_id: a,
            model: "pro".into(),
            until_ms: now_ms() + 60_000,
        }])
        .await
        .expect("save");
    let models: Vec<String> = db
        .superuser()
        .await
        .query("SELECT model FROM key_cooldowns ORDER BY model", &[])
        .await
        .expect("query")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(models, vec!["pro".to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn enabling_clears_invalid_and_cooldowns() {
    let db = TestDb::new().await;
    let store = db.store().await;
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

#[tokio::test(flavor = "multi_thread")]
async fn proxy_keys_round_trip() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let one = store
        .create_proxy_key("laptop", &hash('1'))
        .await
        .expect("create");
    let two = store.create_proxy_key("ci", &hash('2')).await.expect("create");
    assert!(matches!(
        store.create_proxy_key("again", &hash('1')).await,
        Err(StoreError::Invalid(_))
    ));
    // Only a SHA-256 hex can be stored: never the client key itself.
    let raw = "gp-0123456789abcdef0123456789abcdef0123456789abcdef";
    match store.create_proxy_key("raw", raw).await {
        Err(StoreError::Invalid(msg)) => assert!(!msg.contains(raw), "{msg}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    let err = db
        .superuser()
        .await
        .execute(
            "INSERT INTO proxy_keys (name, secret_hash) VALUES ('raw', $1)",
            &[&raw],
        )
        .await
        .expect_err("the table's check refuses it too");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION)
    );

    assert!(store.revoke_proxy_key(two).await.expect("revoke"));
    assert!(store.revoke_proxy_key(two).await.expect("revoke twice"));
    assert!(!store.revoke_proxy_key(999).await.expect("revoke missing"));

    let rows = store.list_proxy_keys().await.expect("list");
    let listed: Vec<(i64, &str, bool)> = rows.iter().map(|r| (r.id, r.name.as_str(), r.revoked)).collect();
    assert_eq!(listed, vec![(one, "laptop", false), (two, "ci", true)]);
    assert!(rows.iter().all(|r| r.created_at_ms.abs_diff(now_ms()) < 60_000));

    let loaded = store.load().await.expect("load").proxy_keys;
    let hashes: Vec<(String, bool)> = loaded
        .iter()
        .map(|p| (p.secret_hash.clone(), p.revoked))
        .collect();
    assert_eq!(hashes, vec![(hash('1'), false), (hash('2'), true)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_handles_see_each_others_writes() {
    let db = TestDb::new().await;
    let serve = db.store().await;
    let cli = db.store().await;
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
}

#[tokio::test(flavor = "multi_thread")]
async fn debug_output_shows_no_connection_settings() {
    let db = TestDb::new().await;
    let store: PostgresStore = db.store().await;
    let printed = format!("{store:?}");
    assert!(
        !printed.contains("postgres://") && !printed.contains(&db.name),
        "{printed}"
    );
}
