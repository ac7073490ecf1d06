//! Proxy (client) keys: hashes only, unique, revocable, each with its policy.

use proxy_core::admin::ProxyKeyUpdate;
use proxy_core::platform::StoreError;
use proxy_core::policy::ProxyKeyPolicy;

use crate::Store;
use crate::fixtures::{assert_recent, hash};

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
        .create_proxy_key_with_policy("limited", &hash(12), &restricted)
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
    };
    let allow = ProxyKeyUpdate {
        passthrough: Some(true),
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
