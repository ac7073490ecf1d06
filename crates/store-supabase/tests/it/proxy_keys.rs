//! Client keys: only hashes are stored, and revoking is a flag.

use proxy_core::admin::AdminStore;
use proxy_core::platform::{KeyStore, StoreError};

use crate::fixtures::{hash, now_ms};
use crate::harness::Env;

#[tokio::test]
async fn proxy_keys_round_trip() {
    let env = Env::new().await;
    let store = &env.store;
    let one = store.create_proxy_key("laptop", &hash(1)).await.expect("create");
    let two = store.create_proxy_key("ci", &hash(2)).await.expect("create");
    match store.create_proxy_key("again", &hash(1)).await {
        Err(StoreError::Invalid(msg)) => assert!(msg.contains("already exists"), "{msg}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    // The schema refuses anything but a SHA-256 in hex: a raw key cannot be stored.
    for bad in ["", "gp-not-a-hash"] {
        assert!(
            matches!(
                store.create_proxy_key("raw", bad).await,
                Err(StoreError::Invalid(_))
            ),
            "{bad:?}"
        );
    }

    assert!(store.revoke_proxy_key(two).await.expect("revoke"));
    assert!(store.revoke_proxy_key(two).await.expect("revoke twice"));
    assert!(!store.revoke_proxy_key(999).await.expect("revoke missing"));

    let rows = store.list_proxy_keys().await.expect("list");
    let listed: Vec<(i64, &str, bool)> = rows.iter().map(|r| (r.id, r.name.as_str(), r.revoked)).collect();
    assert_eq!(listed, vec![(one, "laptop", false), (two, "ci", true)]);
    assert!(rows.iter().all(|r| now_ms().abs_diff(r.created_at_ms) < 60_000));

    let loaded = store.load().await.expect("load").proxy_keys;
    let hashes: Vec<(String, bool)> = loaded
        .iter()
        .map(|p| (p.secret_hash.clone(), p.revoked))
        .collect();
    assert_eq!(hashes, vec![(hash(1), false), (hash(2), true)]);
}
