//! Round trips through a real SQLite file, as the `serve` process and the CLI use it.
//!
//! The behaviour every store shares is checked by `store-conformance`; what follows it
//! is SQLite's own: a file shared by two handles, an in-memory store.

use proxy_core::admin::AdminStore;
use proxy_core::log::LogRecord;
use proxy_core::platform::{KeyStore, LogSink};
use store_conformance::{self as conformance, DuplicateKeyMessage, SECRET_A, record};
use store_sqlite::SqliteStore;
use tempfile::TempDir;

/// A store on a fresh file in a nested folder that does not exist yet.
fn temp_store() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("nested/proxy.db")).expect("open store");
    (dir, store)
}

#[tokio::test]
async fn keys_round_trip_and_list_masked_only() {
    let (_dir, store) = temp_store();
    conformance::keys_round_trip_and_list_masked_only(&store).await;
}

#[tokio::test]
async fn bad_and_duplicate_keys_are_rejected_without_echo() {
    let (_dir, store) = temp_store();
    conformance::bad_and_duplicate_keys_are_rejected_without_echo(
        &store,
        DuplicateKeyMessage::NamesExistingId,
    )
    .await;
}

#[tokio::test]
async fn state_changes_persist_and_reload() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("proxy.db");
    let store = SqliteStore::open(&path).expect("open");
    let reopen = move || async move { SqliteStore::open(&path).expect("reopen") };
    conformance::state_changes_persist_and_reload(&store, reopen).await;
}

#[tokio::test]
async fn cooldowns_that_ran_out_are_not_returned() {
    let (_dir, store) = temp_store();
    conformance::cooldowns_that_ran_out_are_not_returned(&store).await;
}

#[tokio::test]
async fn enabling_clears_invalid_and_cooldowns() {
    let (_dir, store) = temp_store();
    conformance::enabling_clears_invalid_and_cooldowns(&store).await;
}

#[tokio::test]
async fn proxy_keys_round_trip() {
    let (_dir, store) = temp_store();
    conformance::proxy_keys_round_trip(&store).await;
}

#[tokio::test]
async fn log_records_round_trip_every_field() {
    let (_dir, store) = temp_store();
    conformance::log_records_round_trip_every_field(&store).await;
}

#[tokio::test]
async fn log_filters_each_narrow() {
    let (_dir, store) = temp_store();
    conformance::log_filters_each_narrow(&store).await;
}

#[tokio::test]
async fn limit_defaults_to_50_and_caps_at_1000_with_500_rows_in_one_batch() {
    let (_dir, store) = temp_store();
    conformance::limit_defaults_to_50_and_caps_at_1000(&store).await;
}

#[tokio::test]
async fn the_same_batch_twice_keeps_one_copy() {
    let (_dir, store) = temp_store();
    conformance::the_same_batch_twice_keeps_one_copy(&store).await;
}

#[tokio::test]
async fn stats_sum_tokens_and_count_errors() {
    let (_dir, store) = temp_store();
    conformance::stats_sum_tokens_and_count_errors(&store).await;
}

#[tokio::test]
async fn usage_buckets_groups_and_percentiles() {
    let (_dir, store) = temp_store();
    conformance::usage_buckets_groups_and_percentiles(&store).await;
}

#[tokio::test]
async fn prune_deletes_only_older_rows() {
    let (_dir, store) = temp_store();
    conformance::prune_deletes_only_older_rows(&store).await;
}

#[tokio::test]
async fn logs_mark_keys_last_used() {
    let (_dir, store) = temp_store();
    conformance::logs_mark_keys_last_used(&store).await;
}

#[tokio::test]
async fn two_handles_on_one_file_see_each_others_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("shared.db");
    let serve = SqliteStore::open(&path).expect("serve handle");
    let cli = SqliteStore::open(&path).expect("cli handle");

    conformance::two_handles_see_each_others_writes(&serve, &cli).await;

    // Both write at once: the busy timeout makes one wait instead of failing.
    let batch_a: Vec<LogRecord> = (0..200u64).map(|i| record(&format!("a{i:03}"), i)).collect();
    let batch_b: Vec<LogRecord> = (0..200u64).map(|i| record(&format!("b{i:03}"), i)).collect();
    let (ra, rb) = tokio::join!(serve.write_logs(&batch_a), cli.write_logs(&batch_b));
    ra.expect("serve writes");
    rb.expect("cli writes");
    assert_eq!(cli.prune_logs(u64::MAX).await.expect("prune"), 400);
}

#[tokio::test]
async fn in_memory_store_works() {
    let store = SqliteStore::open_in_memory().expect("memory");
    store.add_key(SECRET_A, "m").await.expect("add");
    assert_eq!(store.load().await.expect("load").keys.len(), 1);
}
