//! The PostgreSQL store against a real PostgreSQL: each test gets a fresh database with
//! the schema applied exactly as shipped in `supabase/` (roles, then migrations).
//!
//! Needs a PostgreSQL 15+ reachable as a superuser at `GEMINI_PROXY_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432`, no database name); tests fail with a clear
//! message when it is not.
//!
//! One test binary (the modules live in `it/`), so the schema's embedded copy is built once.
//! The behaviour every store shares is `store-conformance`'s suite, run here on a fresh
//! database per check; the modules hold what only PostgreSQL shows.

#[path = "it/support.rs"]
mod support;

#[path = "it/access.rs"]
mod access;
#[path = "it/counters.rs"]
mod counters;
#[path = "it/keys.rs"]
mod keys;
#[path = "it/logs.rs"]
mod logs;
#[path = "it/resilience.rs"]
mod resilience;

store_conformance::suite!(
    #[tokio::test(flavor = "multi_thread")]
    support::Fresh
);
