//! Several `gemini-proxy serve` processes on one PostgreSQL database (real processes,
//! real database, fake Gemini on port 0): they share one pool, and the database can go
//! away and come back under load without losing a log row.
//!
//! The tests in this binary stop and start the machine's PostgreSQL, so they run one at
//! a time (a process-wide lock) and never beside another binary's tests (cargo runs
//! test binaries one after another). `cli_logs` and `cli_proxy_keys` are the exceptions:
//! the CLI (and a `serve`) on a SQLite file, no PostgreSQL, no lock.

mod harness;

mod cli_governance;
mod cli_logs;
mod cli_proxy_keys;
mod database_outage;
mod key_state;
mod supabase_rest;
mod two_instances;
