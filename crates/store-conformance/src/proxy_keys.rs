//! Proxy (client) keys: hashes only, unique, revocable, each with its policy.

use proxy_core::admin::{LogQuery, ProxyKeyUpdate};
use proxy_core::platform::StoreError;
use proxy_core::policy::{BudgetPeriod, ProxyKeyPolicy};

use crate::Store;
use crate::fixtures::{assert_recent, hash, ids, list, record};

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

/// A proxy key's policy: the default (pass-through allowed) unless created otherwise,
/// changed by `update_proxy_key` field by field, and the same in listings and in what
/// the proxy loads.
pub async fn proxy_key_policy_is_kept_and_updated<S: Store + ?Sized>(store: &S) {
    let open = store.create_proxy_key("open", &hash(11)).await.expect("create");
    let restricted = ProxyKeyPolicy {
        passthrough: false,
        ..ProxyKeyPolicy::default()
    };
    let limited = store
        .create_proxy_key_with_policy("limited", &hash(12), None, &restricted)
        .await
        .expect("create with a policy");
    let seen = |what: &'static str| async move {
        let listed: Vec<(i64, bool)> = store
            .list_proxy_keys()
            .await
            .expect("list")
            .iter()
            .map(|r| (r.id, r.policy.passthrough))
            .collect();
        let loaded: Vec<(i64, bool)> = store
            .load()
            .await
            .expect("load")
            .proxy_keys
            .iter()
            .map(|p| (p.id, p.policy.passthrough))
            .collect();
        assert_eq!(listed, loaded, "{what}: list_proxy_keys and load agree");
        listed
    };
    assert_eq!(
        seen("created").await,
        vec![(open, true), (limited, false)],
        "a new key may use pass-through unless created without it"
    );

    let deny = ProxyKeyUpdate {
        passthrough: Some(false),
        ..ProxyKeyUpdate::default()
    };
    let allow = ProxyKeyUpdate {
        passthrough: Some(true),
        ..ProxyKeyUpdate::default()
    };
    assert!(
        store.update_proxy_key(open, &deny).await.expect("deny"),
        "deny finds the key"
    );
    assert!(
        store.update_proxy_key(limited, &allow).await.expect("allow"),
        "allow finds the key"
    );
    assert_eq!(
        seen("updated").await,
        vec![(open, false), (limited, true)],
        "update_proxy_key"
    );
    assert!(
        store.update_proxy_key(open, &deny).await.expect("deny twice"),
        "setting the same value again still finds the key"
    );
    assert!(
        store
            .update_proxy_key(limited, &ProxyKeyUpdate::default())
            .await
            .expect("empty update"),
        "an empty update finds the key"
    );
    assert_eq!(
        seen("unchanged").await,
        vec![(open, false), (limited, true)],
        "an empty update changes nothing"
    );
    for update in [deny, ProxyKeyUpdate::default()] {
        assert!(
            !store
                .update_proxy_key(999, &update)
                .await
                .expect("update missing"),
            "updating a missing key reports false ({update:?})"
        );
    }

    // Revoking keeps the policy, and a revoked key's policy can still be changed.
    assert!(store.revoke_proxy_key(open).await.expect("revoke"));
    assert!(store.update_proxy_key(open, &allow).await.expect("allow revoked"));
    let rows = store.list_proxy_keys().await.expect("list");
    assert!(
        rows.iter()
            .any(|r| r.id == open && r.revoked && r.policy.passthrough),
        "{rows:?}"
    );
}

/// Every policy field round-trips: created with a full policy, each field updated on
/// its own, limits cleared with `Some(None)`, the name changed, the row deleted (its
/// log records stay, with its id); listings and what the proxy loads agree throughout.
pub async fn proxy_key_policy_fields_round_trip<S: Store + ?Sized>(store: &S) {
    let full = ProxyKeyPolicy {
        passthrough: false,
        models: vec!["gemini-2.5-flash".into(), "gemini-2.0-*".into()],
        rpm: Some(60),
        tpm: Some(100_000),
        tokens_per_day: Some(2_000_000),
        budget_usd: Some(12.5),
        budget_period: BudgetPeriod::Day,
        expires_at_ms: Some(1_893_456_000_000),
    };
    let id = store
        .create_proxy_key_with_policy("governed", &hash(21), Some("gp-1a2b3c"), &full)
        .await
        .expect("create with every field");
    let plain = store.create_proxy_key("plain", &hash(22)).await.expect("create");
    let prefixes: Vec<(i64, Option<String>)> = store
        .list_proxy_keys()
        .await
        .expect("list")
        .into_iter()
        .map(|r| (r.id, r.prefix))
        .collect();
    assert_eq!(
        prefixes,
        vec![(id, Some("gp-1a2b3c".into())), (plain, None)],
        "the shown prefix is kept; a key created without one has none"
    );
    let policies = |what: &'static str| async move {
        let listed: Vec<(i64, ProxyKeyPolicy)> = store
            .list_proxy_keys()
            .await
            .expect("list")
            .into_iter()
            .map(|r| (r.id, r.policy))
            .collect();
        let loaded: Vec<(i64, ProxyKeyPolicy)> = store
            .load()
            .await
            .expect("load")
            .proxy_keys
            .iter()
            .map(|p| (p.id, (*p.policy).clone()))
            .collect();
        assert_eq!(listed, loaded, "{what}: list_proxy_keys and load agree");
        listed
    };
    assert_eq!(
        policies("created").await,
        vec![(id, full.clone()), (plain, ProxyKeyPolicy::default())],
        "every field as created; a plain key has the default policy"
    );

    // Each field on its own, leaving the others as they are.
    let steps = [
        ProxyKeyUpdate {
            passthrough: Some(true),
            ..ProxyKeyUpdate::default()
        },
        ProxyKeyUpdate {
            models: Some(vec!["gemini-2.5-pro".into()]),
            ..ProxyKeyUpdate::default()
        },
        ProxyKeyUpdate {
            rpm: Some(Some(5)),
            ..ProxyKeyUpdate::default()
        },
        ProxyKeyUpdate {
            tpm: Some(Some(7)),
            ..ProxyKeyUpdate::default()
        },
        ProxyKeyUpdate {
            tokens_per_day: Some(Some(9)),
            ..ProxyKeyUpdate::default()
        },
        ProxyKeyUpdate {
            budget_usd: Some(Some(0.25)),
            ..ProxyKeyUpdate::default()
        },
        ProxyKeyUpdate {
            budget_period: Some(BudgetPeriod::Month),
            ..ProxyKeyUpdate::default()
        },
        ProxyKeyUpdate {
            expires_at_ms: Some(Some(1_900_000_000_000)),
            ..ProxyKeyUpdate::default()
        },
    ];
    let mut expected = full.clone();
    for step in &steps {
        assert!(
            store.update_proxy_key(id, step).await.expect("update"),
            "{step:?} finds the key"
        );
        step.apply(&mut expected);
        assert_eq!(
            policies("updated").await,
            vec![(id, expected.clone()), (plain, ProxyKeyPolicy::default())],
            "after {step:?}"
        );
    }

    // Cleared at once: Some(None) for the limits, an empty list for the models.
    let clear = ProxyKeyUpdate {
        models: Some(Vec::new()),
        rpm: Some(None),
        tpm: Some(None),
        tokens_per_day: Some(None),
        budget_usd: Some(None),
        expires_at_ms: Some(None),
        ..ProxyKeyUpdate::default()
    };
    assert!(store.update_proxy_key(id, &clear).await.expect("clear"));
    clear.apply(&mut expected);
    assert_eq!(
        expected,
        ProxyKeyPolicy {
            budget_period: BudgetPeriod::Month,
            ..ProxyKeyPolicy::default()
        },
        "the merge rule clears what Some(None) names"
    );
    assert_eq!(
        policies("cleared").await,
        vec![(id, expected.clone()), (plain, ProxyKeyPolicy::default())],
        "cleared limits read back as none"
    );

    // A budget no store may keep is refused, and changes nothing.
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        let update = ProxyKeyUpdate {
            budget_usd: Some(Some(bad)),
            ..ProxyKeyUpdate::default()
        };
        assert!(
            matches!(
                store.update_proxy_key(id, &update).await,
                Err(StoreError::Invalid(_))
            ),
            "a budget of {bad} is refused"
        );
        let policy = ProxyKeyPolicy {
            budget_usd: Some(bad),
            ..ProxyKeyPolicy::default()
        };
        assert!(
            matches!(
                store
                    .create_proxy_key_with_policy("bad", &hash(23), None, &policy)
                    .await,
                Err(StoreError::Invalid(_))
            ),
            "creating with a budget of {bad} is refused"
        );
    }
    assert_eq!(policies("refused").await.len(), 2, "nothing was created");

    // Rename.
    assert!(store.rename_proxy_key(id, "renamed").await.expect("rename"));
    assert!(!store.rename_proxy_key(999, "x").await.expect("rename missing"));
    let names: Vec<(i64, String)> = store
        .list_proxy_keys()
        .await
        .expect("list")
        .into_iter()
        .map(|r| (r.id, r.name))
        .collect();
    assert_eq!(
        names,
        vec![(id, "renamed".to_string()), (plain, "plain".to_string())],
        "rename_proxy_key"
    );

    // Delete: the row goes, its log records stay with its id.
    let mut used = record("pk-used", 1_700_000_000_000);
    used.proxy_key_id = Some(id);
    store.write_logs(&[used]).await.expect("write");
    assert!(
        store.delete_proxy_key(id).await.expect("delete"),
        "delete finds the key"
    );
    assert!(
        !store.delete_proxy_key(id).await.expect("delete twice"),
        "deleting again finds nothing"
    );
    let left: Vec<i64> = store
        .list_proxy_keys()
        .await
        .expect("list")
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, vec![plain], "list_proxy_keys after delete");
    let loaded: Vec<i64> = store
        .load()
        .await
        .expect("load")
        .proxy_keys
        .iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(loaded, vec![plain], "load after delete");
    let logs = list(
        store,
        LogQuery {
            proxy_key_id: Some(id),
            ..LogQuery::default()
        },
    )
    .await;
    assert_eq!(
        ids(&logs),
        vec!["pk-used"],
        "the deleted key's records keep its id"
    );
    assert!(
        !store
            .update_proxy_key(id, &ProxyKeyUpdate::default())
            .await
            .expect("update deleted"),
        "a deleted key is not found"
    );
    let again = store
        .create_proxy_key("new", &hash(21))
        .await
        .expect("the hash is free again");
    assert_ne!(again, id, "a new key never takes a deleted key's id");
}
