//! The behaviour every store shares, written once.
//!
//! `store-sqlite`, `store-postgres` and `store-supabase` implement the same traits
//! (`KeyStore`, `LogSink`, `AdminStore`). Each store's tests implement [`Fixture`] (a
//! fresh store, another handle on its data) and call [`suite!`] once: it expands to one
//! `#[tokio::test]` per check, each on a fresh store, so a check added here runs on
//! every store without touching their tests. What only one store does (RLS and grants,
//! NOTIFY, concurrent counters, one HTTP request per batch, file sharing between SQLite
//! handles) stays in that store's own tests, which may call the checks directly too.
//!
//! The modules mirror the stores' own. Every check panics with a message naming what
//! broke; where the stores legitimately differ, the difference is a [`Fixture`] item.

use proxy_core::admin::AdminStore;
use proxy_core::platform::{KeyStore, LogSink};

mod fixtures;
pub mod handles;
pub mod key_state;
pub mod keys;
pub mod logs;
pub mod proxy_keys;
pub mod prune;
pub mod suite;
pub mod usage;

pub use fixtures::{SECRET_A, SECRET_B, full_record, hash, ids, now_ms, record};
pub use handles::two_handles_see_each_others_writes;
pub use key_state::{
    cooldowns_that_ran_out_are_not_returned, enabling_clears_invalid_and_cooldowns,
    model_off_cooldowns_load_as_off_models, state_changes_persist_and_reload,
};
pub use keys::{
    DuplicateKeyMessage, bad_and_duplicate_keys_are_rejected_without_echo, key_limits_round_trip,
    keys_round_trip_and_list_masked_only,
};
pub use logs::{
    chained_records_verify_when_read_back, limit_defaults_to_50_and_caps_at_1000, log_filters_each_narrow,
    log_records_round_trip_every_field, logs_mark_keys_last_used, the_same_batch_twice_keeps_one_copy,
};
pub use proxy_keys::{
    proxy_key_policy_fields_round_trip, proxy_key_policy_is_kept_and_updated, proxy_keys_round_trip,
};
pub use prune::prune_deletes_only_older_rows;
pub use suite::Fixture;
pub use usage::{
    stats_sum_tokens_and_count_errors, usage_buckets_groups_and_percentiles, usage_counts_failures_by_kind,
    usage_sums_cost,
};

/// What a store under test implements.
pub trait Store: KeyStore + LogSink + AdminStore {}
impl<S: KeyStore + LogSink + AdminStore + ?Sized> Store for S {}
