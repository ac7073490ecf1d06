//! Upstream keys, learned state and proxy keys: what only PostgreSQL shows (the shared
//! behaviour is `store-conformance`'s suite, run from `it.rs`).

use proxy_core::admin::AdminStore;
use proxy_core::platform::{KeyStore, StoreError};
use proxy_core::pool::StateChange;
use store_conformance::{self as conformance, SECRET_A, SECRET_B, hash, now_ms};
use store_postgres::PostgresStore;

use crate::support::test_db;

#[tokio::test(flavor = "multi_thread")]
async fn nul_and_duplicate_keys_are_rejected_without_echo() {
    let db = test_db().await;
    let store = db.store().await;
    store.add_key(SECRET_A, "first").await.expect("add");
    // PostgreSQL text cannot hold a NUL: refused up front, without the key.
    match store.add_key(&format!("{SECRET_B}\0"), "bad").await {
        Err(StoreError::Invalid(msg)) => assert!(!msg.contains("TESTtest"), "{msg}"),
        other => panic!("expected Invalid for a NUL, got {other:?}"),
    }
    // Straight to the table: PostgreSQL's DETAIL repeats the key; the store's message
    // must not.
    let err = db
        .client()
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
}

#[tokio::test(flavor = "multi_thread")]
async fn cooldowns_that_ran_out_are_swept() {
    let db = test_db().await;
    let store = db.store().await;
    let a = conformance::cooldowns_that_ran_out_are_not_returned(&store).await;

    // (Set up by the shared check.) The next batch of state changes deletes the expired row.
    store
        .save_state(&[StateChange::Cooldown {
            key_id: a,
            model: "pro".into(),
            until_ms: now_ms() + 60_000,
        }])
        .await
        .expect("save");
    let models: Vec<String> = db
        .client()
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
async fn proxy_keys_refuse_anything_but_a_hash() {
    let db = test_db().await;
    let store = db.store().await;
    // Only a SHA-256 hex can be stored: never the client key itself.
    let raw = "gp-0123456789abcdef0123456789abcdef0123456789abcdef";
    match store.create_proxy_key("raw", raw).await {
        Err(StoreError::Invalid(msg)) => assert!(!msg.contains(raw), "{msg}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    let err = db
        .client()
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
    store
        .create_proxy_key("ok", &hash(1))
        .await
        .expect("a hash is fine");
}

#[tokio::test(flavor = "multi_thread")]
async fn debug_output_shows_no_connection_settings() {
    let db = test_db().await;
    let store: PostgresStore = db.store().await;
    let printed = format!("{store:?}");
    assert!(
        !printed.contains("postgres://") && !printed.contains(&db.name),
        "{printed}"
    );
}
