//! The platform-agnostic core of Gemini Proxy.
//!
//! Everything here is pure: no sockets, no files, no tokio, no `std::time::Instant`
//! (which panics on `wasm32-unknown-unknown`). What differs per platform (the upstream
//! HTTP call, the stores, the clock) is a trait in [`platform`]; the decisions in
//! between (which key next, retry or not, how a response changes a key's state, what a
//! log record holds) are synchronous functions over plain data, so the axum server and
//! the Cloudflare Worker make exactly the same choices.

pub mod admin;
pub mod alerts;
pub mod attempts;
pub mod audit;
pub mod auth;
pub mod canonical;
pub mod civil;
pub mod classify;
pub mod client_addr;
pub mod defaults;
pub mod engine;
#[cfg(test)]
mod engine_tests;
pub mod error;
pub mod error_class;
pub mod governance;
pub mod health;
pub mod hex;
pub mod key_check;
pub mod key_state;
pub mod keys;
pub mod log;
pub mod log_chain;
pub mod mark_guard;
pub mod openai_usage;
pub mod pacific;
pub mod platform;
pub mod policy;
pub mod pool;
pub mod redact;
pub mod request;
pub mod resilience;
#[cfg(test)]
mod resilience_tests;
pub mod retry;
pub mod route;
pub mod stream_meta;
pub mod telemetry;
pub mod trace;
pub mod upstream_url;

pub use engine::{Engine, EngineConfig};
pub use error::{ErrorShape, ProxyError};
