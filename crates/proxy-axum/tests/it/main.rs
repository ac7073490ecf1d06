//! End-to-end tests of the proxy route: a real listener on port 0 in front of the fake
//! Gemini server (real wire format, errors included), with the embedded SQLite store.

mod harness;

mod alerts;
mod audit;
mod auth_and_input;
mod cache;
mod connections;
mod failover;
mod governance;
mod keep_alive;
mod key_marking;
mod metrics;
mod policy;
mod resilience;
mod secrets;
mod shared_limits;
mod streaming;
mod traces;
mod upstream_safety;
mod upstream_tls;
