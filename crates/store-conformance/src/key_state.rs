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

/// A model-off cooldown (the key's quota for the model is 0) loads back as a cooldown
/// whose model is in `KeyState::off_models` and `KeyRow::off_models`; a later plain
/// cooldown for the same model clears the flag (the end still never moves earlier),
/// within one batch as across batches, and enabling the key forgets both.
pub async fn model_off_cooldowns_load_as_off_models<S: Store + ?Sized>(store: &S) {
    let now = now_ms();
    let a = store.add_key(SECRET_A, "a").await.expect("add a");
    let off = |model: &str, until_ms: u64| StateChange::ModelOff {
        key_id: a,
        model: model.into(),
        until_ms,
    };
    let cool = |model: &str, until_ms: u64| StateChange::Cooldown {
        key_id: a,
        model: model.into(),
        until_ms,
    };
    store
        .save_state(&[
            off("pro", now + 3_600_000),
            cool("flash", now + 60_000),
            // In one batch the latest change says whether the model is off.
            cool("lite", now + 60_000),
            off("lite", now + 7_200_000),
            off("gone", now - 1_000),
            StateChange::ModelOff {
                key_id: 9_999,
                model: "pro".into(),
                until_ms: now + 1_000,
            },
        ])
        .await
        .expect("save");
    let state = |what: &'static str| async move {
        let (key, state) = store.load().await.expect("load").keys.remove(0);
        assert_eq!(key.id, a);
        let row = store.list_keys().await.expect("list").remove(0);
        let off: Vec<String> = state.off_models.iter().cloned().collect();
        assert_eq!(off, row.off_models, "{what}: load and list_keys agree");
        let cooldowns: Vec<(String, u64)> = state.cooldowns.clone().into_iter().collect();
        assert_eq!(cooldowns, row.cooldowns, "{what}: the same cooldowns");
        (off, cooldowns)
    };
    let (off_models, cooldowns) = state("saved").await;
    assert_eq!(
        off_models,
        vec!["lite".to_string(), "pro".to_string()],
        "models off for the key, none that ran out"
    );
    assert_eq!(
        cooldowns,
        vec![
            ("flash".to_string(), now + 60_000),
            ("lite".to_string(), now + 7_200_000),
            ("pro".to_string(), now + 3_600_000)
        ],
        "a model-off is a cooldown too"
    );

    // A plain cooldown later clears the flag, never the end it had.
    store
        .save_state(&[cool("pro", now + 120_000)])
        .await
        .expect("save plain");
    let (off_models, cooldowns) = state("replaced").await;
    assert_eq!(off_models, vec!["lite".to_string()], "pro is merely cooling now");
    assert!(
        cooldowns.contains(&("pro".to_string(), now + 3_600_000)),
        "the later end stays: {cooldowns:?}"
    );
    // And a model-off again sets it.
    store
        .save_state(&[off("flash", now + 30_000)])
        .await
        .expect("save off");
    let (off_models, cooldowns) = state("off again").await;
    assert_eq!(off_models, vec!["flash".to_string(), "lite".to_string()]);
    assert!(
        cooldowns.contains(&("flash".to_string(), now + 60_000)),
        "{cooldowns:?}"
    );

    assert!(store.set_key_enabled(a, true).await.expect("enable"));
    let (off_models, cooldowns) = state("enabled").await;
    assert!(
        off_models.is_empty() && cooldowns.is_empty(),
        "enabling forgets cooldowns and off models: {off_models:?} {cooldowns:?}"
    );
}
