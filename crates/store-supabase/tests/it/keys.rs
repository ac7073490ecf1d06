//! Upstream keys and learned key state: the shared behaviour from `store-conformance`.

use store_conformance::{self as conformance, DuplicateKeyMessage};

use crate::harness::Env;

#[tokio::test]
async fn keys_round_trip_and_list_masked_only() {
    let env = Env::new().await;
    conformance::keys_round_trip_and_list_masked_only(&env.store).await;
}

#[tokio::test]
async fn bad_and_duplicate_keys_are_rejected_without_echo() {
    let env = Env::new().await;
    // The database answers a duplicate with the secret in `details`; it must not surface.
    conformance::bad_and_duplicate_keys_are_rejected_without_echo(&env.store, DuplicateKeyMessage::Plain)
        .await;
}

#[tokio::test]
async fn state_changes_persist_and_reload() {
    let env = Env::new().await;
    // Another handle (another process) sees it all.
    conformance::state_changes_persist_and_reload(&env.store, || async { env.other_store() }).await;
}

#[tokio::test]
async fn cooldowns_that_ran_out_are_not_returned() {
    let env = Env::new().await;
    conformance::cooldowns_that_ran_out_are_not_returned(&env.store).await;
}

#[tokio::test]
async fn enabling_clears_invalid_and_cooldowns() {
    let env = Env::new().await;
    conformance::enabling_clears_invalid_and_cooldowns(&env.store).await;
}

#[tokio::test]
async fn two_handles_see_each_others_writes() {
    let env = Env::new().await;
    conformance::two_handles_see_each_others_writes(&env.store, &env.other_store()).await;
}
