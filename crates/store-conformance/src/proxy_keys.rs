//! Proxy (client) keys: hashes only, unique, revocable.

use proxy_core::platform::StoreError;

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
