//! The Supabase store through the PostgREST stand-in, on a fresh PostgreSQL database
//! per test with `supabase/` applied exactly as shipped; and, opt-in, against a real
//! Supabase project (see the crate README). The behaviour every store shares is
//! `store-conformance`'s suite; the modules hold what only the REST store shows.

#[path = "it/access.rs"]
mod access;
#[path = "it/fixtures.rs"]
mod fixtures;
#[path = "it/harness.rs"]
mod harness;
#[path = "it/live.rs"]
mod live;
#[path = "it/logs.rs"]
mod logs;
#[path = "it/proxy_keys.rs"]
mod proxy_keys;
#[path = "it/usage.rs"]
mod usage;

store_conformance::suite!(harness::Env);
