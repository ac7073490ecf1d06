//! Upstream keys and learned key state, as store-sqlite's tests check them.

use proxy_core::admin::AdminStore;
use proxy_core::platform::{KeyStore, StoreError};
use proxy_core::pool::StateChange;

use crate::fixtures::{SECRET_A, SECRET_B, now_ms};
use crate::harness::Env;

#[tokio::test]
async fn keys_round_trip_and_list_masked_only() {
    let env = Env::new().await;
    let store = &env.store;
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
    let age = now_ms().abs_diff(rows[0].created_at_ms);
    assert!(age < 60_000, "created_at {} is not now", rows[0].created_at_ms);
    let listed = format!("{rows:?}");
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
    let env = Env::new().await;
    let store = &env.store;
    store.add_key(SECRET_A, "first").await.expect("add");
    let with_space = format!("{SECRET_B} ");
    for bad in ["", with_space.as_str(), "AIza key"] {
        match store.add_key(bad, "bad").await {
            Err(StoreError::Invalid(msg)) => assert!(bad.is_empty() || !msg.contains(bad.trim()), "{msg}"),
            other => panic!("expected Invalid for {bad:?}, got {other:?}"),
        }
    }
    // The database answers a duplicate with the secret in `details`; it must not surface.
    match store.add_key(SECRET_A, "dup").await {
        Err(StoreError::Invalid(msg)) => {
            assert!(!msg.contains("TESTtest"), "{msg}");
            assert!(msg.contains("already stored"), "{msg}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(store.list_keys().await.expect("list").len(), 1);
}

#[tokio::test]
async fn state_changes_persist_and_reload() {
    let env = Env::new().await;
    let now = now_ms();
    let store = &env.store;
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
    // A later, separate batch must not shorten the cooldown either.
    store
        .save_state(&[StateChange::Cooldown {
            key_id: a,
            model: "flash".into(),
            until_ms: now + 2_000,
        }])
        .await
        .expect("save again");

    // Another handle (another process) sees it all.
    let other = env.other_store();
    let snapshot = other.load().await.expect("load");
    let state_a = &snapshot.keys.iter().find(|(k, _)| k.id == a).expect("a").1;
    let state_b = &snapshot.keys.iter().find(|(k, _)| k.id == b).expect("b").1;
    let cooldowns: Vec<(&str, u64)> = state_a.cooldowns.iter().map(|(m, u)| (m.as_str(), *u)).collect();
    assert_eq!(cooldowns, vec![("flash", now + 60_000), ("pro", now + 120_000)]);
    assert_eq!(state_a.invalid_reason, None);
    assert_eq!(state_b.invalid_reason.as_deref(), Some("API_KEY_INVALID"));
    assert!(state_b.cooldowns.is_empty());

    let rows = other.list_keys().await.expect("list");
    assert_eq!(
        rows[0].cooldowns,
        vec![
            ("flash".to_string(), now + 60_000),
            ("pro".to_string(), now + 120_000)
        ]
    );
    assert_eq!(rows[1].invalid_reason.as_deref(), Some("API_KEY_INVALID"));
    assert!(store.save_state(&[]).await.is_ok());
}

#[tokio::test]
async fn cooldowns_that_ran_out_are_not_returned() {
    let env = Env::new().await;
    let store = &env.store;
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
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(store.load().await.expect("load").keys[0].1.cooldowns.is_empty());
    assert!(store.list_keys().await.expect("list")[0].cooldowns.is_empty());
}

#[tokio::test]
async fn enabling_clears_invalid_and_cooldowns() {
    let env = Env::new().await;
    let store = &env.store;
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
    assert!(!store.set_key_enabled(12_345, false).await.expect("missing key"));
}
