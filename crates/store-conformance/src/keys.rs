//! Upstream keys: adding, listing masked, removing, refusing bad and duplicate keys.

use proxy_core::platform::StoreError;

use crate::Store;
use crate::fixtures::{SECRET_A, SECRET_B, assert_recent};

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
