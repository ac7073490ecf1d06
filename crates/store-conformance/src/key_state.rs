//! Learned key state: cooldowns, invalid marks, and what enabling a key clears.

use std::future::Future;
use std::time::Duration;

use proxy_core::pool::StateChange;

use crate::Store;
use crate::fixtures::{SECRET_A, SECRET_B, now_ms};

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
