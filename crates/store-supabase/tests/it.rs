//! The Supabase store through the PostgREST stand-in, on a fresh PostgreSQL database
//! per test with `supabase/` applied exactly as shipped; and, opt-in, against a real
//! Supabase project (see the crate README).

#[path = "it/access.rs"]
mod access;
#[path = "it/fixtures.rs"]
mod fixtures;
#[path = "it/harness.rs"]
mod harness;
#[path = "it/keys.rs"]
mod keys;
#[path = "it/live.rs"]
mod live;
#[path = "it/logs.rs"]
mod logs;
#[path = "it/proxy_keys.rs"]
mod proxy_keys;
#[path = "it/stats.rs"]
mod stats;
