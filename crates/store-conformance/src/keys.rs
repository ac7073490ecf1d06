//! Upstream keys: adding, listing masked, removing, refusing bad and duplicate keys.

use proxy_core::keys::KeyLimits;
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

/// An upstream key's limits, for every model and per model, come back from `load` and
/// `list_keys` as added; `set_key_limits` replaces them whole (empty clears them); a
/// key added without limits has none.
pub async fn key_limits_round_trip<S: Store + ?Sized>(store: &S) {
    let mut limits = KeyLimits::default();
    limits.update(None, Some(10), Some(250_000), Some(500));
    limits.update(Some("gemini-2.5-pro"), Some(2), None, Some(50));
    limits.update(Some("gemini-2.0-flash"), None, Some(1_000_000), None);
    let a = store
        .add_key_with_limits(SECRET_A, "limited", &limits)
        .await
        .expect("add with limits");
    let b = store.add_key(SECRET_B, "free").await.expect("add");
    let seen = |what: &'static str| async move {
        let loaded: Vec<(i64, KeyLimits)> = store
            .load()
            .await
            .expect("load")
            .keys
            .into_iter()
            .map(|(k, _)| (k.id, k.limits))
            .collect();
        let listed: Vec<(i64, KeyLimits)> = store
            .list_keys()
            .await
            .expect("list")
            .into_iter()
            .map(|k| (k.id, k.limits))
            .collect();
        assert_eq!(loaded, listed, "{what}: load and list_keys agree");
        loaded
    };
    assert_eq!(
        seen("added").await,
        vec![(a, limits.clone()), (b, KeyLimits::default())],
        "limits as added; none for a key added without"
    );

    let mut changed = KeyLimits::default();
    changed.update(Some("gemini-2.5-flash"), None, None, Some(1_500));
    assert!(
        store.set_key_limits(b, &changed).await.expect("set"),
        "set finds the key"
    );
    assert!(
        store
            .set_key_limits(a, &KeyLimits::default())
            .await
            .expect("clear"),
        "clear finds the key"
    );
    assert_eq!(
        seen("replaced").await,
        vec![(a, KeyLimits::default()), (b, changed)],
        "set_key_limits replaces the limits whole"
    );
    assert!(
        !store.set_key_limits(9_999, &limits).await.expect("set missing"),
        "a missing key reports false"
    );
}
