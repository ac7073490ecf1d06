//! [`Fixture`], what a store's tests provide, and [`suite!`](crate::suite), which runs
//! every check on it: one adapter per check here says how the check gets its store
//! and parameters from a fixture.

use std::future::Future;

use crate::{DuplicateKeyMessage, Store, handles, key_state, keys, logs, proxy_keys, prune, usage};

/// A fresh store for one test, and whatever keeps it alive (a temporary folder, a
/// database dropped at the end, a REST server).
pub trait Fixture: Sized {
    type Store: Store;
    /// Another handle on the same data.
    type Handle: Store;
    /// How this store words the refusal of a key it already holds.
    const DUPLICATE_KEY_MESSAGE: DuplicateKeyMessage;

    /// An empty store.
    fn create() -> impl Future<Output = Self>;
    /// The store under test.
    fn store(&self) -> &Self::Store;
    /// Another handle on the same data, as another process would open it (the CLI, a
    /// second instance, a restart).
    fn other_handle(&self) -> impl Future<Output = Self::Handle>;
}

/// Expands to one test per shared check, each on a fresh `Fixture`, inside a module
/// `conformance_suite`. Takes the fixture type and, optionally before it, the test
/// attribute (default `#[tokio::test]`; the caller depends on tokio):
///
/// ```text
/// store_conformance::suite!(#[tokio::test(flavor = "multi_thread")] PgFixture);
/// ```
#[macro_export]
macro_rules! suite {
    (#[$test:meta] $fixture:ty) => {
        $crate::__suite_tests! {
            #[$test] $fixture;
            keys_round_trip_and_list_masked_only,
            bad_and_duplicate_keys_are_rejected_without_echo,
            key_limits_round_trip,
            state_changes_persist_and_reload,
            cooldowns_that_ran_out_are_not_returned,
            enabling_clears_invalid_and_cooldowns,
            model_off_cooldowns_load_as_off_models,
            proxy_keys_round_trip,
            proxy_key_policy_is_kept_and_updated,
            proxy_key_policy_fields_round_trip,
            log_records_round_trip_every_field,
            chained_records_verify_when_read_back,
            log_filters_each_narrow,
            limit_defaults_to_50_and_caps_at_1000,
            the_same_batch_twice_keeps_one_copy,
            logs_mark_keys_last_used,
            stats_sum_tokens_and_count_errors,
            usage_buckets_groups_and_percentiles,
            usage_sums_cost,
            usage_counts_failures_by_kind,
            prune_deletes_only_older_rows,
            two_handles_see_each_others_writes,
        }
    };
    ($fixture:ty) => {
        $crate::suite!(
            #[tokio::test]
            $fixture
        );
    };
}

/// One test per adapter below; [`suite!`](crate::suite) lists them.
#[doc(hidden)]
#[macro_export]
macro_rules! __suite_tests {
    (#[$test:meta] $fixture:ty; $($check:ident,)*) => {
        mod conformance_suite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[$test]
                async fn $check() {
                    let fixture = <$fixture as $crate::Fixture>::create().await;
                    $crate::suite::$check(&fixture).await;
                }
            )*
        }
    };
}

// The adapters, in the order `suite!` lists them.

pub async fn keys_round_trip_and_list_masked_only<F: Fixture>(f: &F) {
    keys::keys_round_trip_and_list_masked_only(f.store()).await;
}

pub async fn bad_and_duplicate_keys_are_rejected_without_echo<F: Fixture>(f: &F) {
    keys::bad_and_duplicate_keys_are_rejected_without_echo(f.store(), F::DUPLICATE_KEY_MESSAGE).await;
}

pub async fn key_limits_round_trip<F: Fixture>(f: &F) {
    keys::key_limits_round_trip(f.store()).await;
}

pub async fn state_changes_persist_and_reload<F: Fixture>(f: &F) {
    key_state::state_changes_persist_and_reload(f.store(), || f.other_handle()).await;
}

pub async fn cooldowns_that_ran_out_are_not_returned<F: Fixture>(f: &F) {
    key_state::cooldowns_that_ran_out_are_not_returned(f.store()).await;
}

pub async fn enabling_clears_invalid_and_cooldowns<F: Fixture>(f: &F) {
    key_state::enabling_clears_invalid_and_cooldowns(f.store()).await;
}

pub async fn model_off_cooldowns_load_as_off_models<F: Fixture>(f: &F) {
    key_state::model_off_cooldowns_load_as_off_models(f.store()).await;
}

pub async fn proxy_keys_round_trip<F: Fixture>(f: &F) {
    proxy_keys::proxy_keys_round_trip(f.store()).await;
}

pub async fn proxy_key_policy_is_kept_and_updated<F: Fixture>(f: &F) {
    proxy_keys::proxy_key_policy_is_kept_and_updated(f.store()).await;
}

pub async fn proxy_key_policy_fields_round_trip<F: Fixture>(f: &F) {
    proxy_keys::proxy_key_policy_fields_round_trip(f.store()).await;
}

pub async fn log_records_round_trip_every_field<F: Fixture>(f: &F) {
    logs::log_records_round_trip_every_field(f.store()).await;
}

pub async fn chained_records_verify_when_read_back<F: Fixture>(f: &F) {
    logs::chained_records_verify_when_read_back(f.store()).await;
}

pub async fn log_filters_each_narrow<F: Fixture>(f: &F) {
    logs::log_filters_each_narrow(f.store()).await;
}

pub async fn limit_defaults_to_50_and_caps_at_1000<F: Fixture>(f: &F) {
    logs::limit_defaults_to_50_and_caps_at_1000(f.store()).await;
}

pub async fn the_same_batch_twice_keeps_one_copy<F: Fixture>(f: &F) {
    logs::the_same_batch_twice_keeps_one_copy(f.store()).await;
}

pub async fn logs_mark_keys_last_used<F: Fixture>(f: &F) {
    logs::logs_mark_keys_last_used(f.store()).await;
}

pub async fn stats_sum_tokens_and_count_errors<F: Fixture>(f: &F) {
    usage::stats_sum_tokens_and_count_errors(f.store()).await;
}

pub async fn usage_buckets_groups_and_percentiles<F: Fixture>(f: &F) {
    usage::usage_buckets_groups_and_percentiles(f.store()).await;
}

pub async fn usage_sums_cost<F: Fixture>(f: &F) {
    usage::usage_sums_cost(f.store()).await;
}

pub async fn usage_counts_failures_by_kind<F: Fixture>(f: &F) {
    usage::usage_counts_failures_by_kind(f.store()).await;
}

pub async fn prune_deletes_only_older_rows<F: Fixture>(f: &F) {
    prune::prune_deletes_only_older_rows(f.store()).await;
}

pub async fn two_handles_see_each_others_writes<F: Fixture>(f: &F) {
    let other = f.other_handle().await;
    handles::two_handles_see_each_others_writes(f.store(), &other).await;
}
