//! The native (tokio + axum) platform for Gemini Proxy.
//!
//! `proxy-core` decides; this crate does the IO around it: the axum route clients call,
//! the reqwest client that calls Gemini, and the background tasks that keep the key
//! pool fresh and write logs and learned key state to the store in batches. Both
//! `apps/api` and `apps/web` mount [`proxy_router`], so they serve the same proxy.

mod alerts;
mod batcher;
mod body;
#[cfg(feature = "cli")]
mod cli;
mod clock;
mod config;
mod connections;
mod handler;
mod headers;
mod metrics;
mod observed_body;
mod refresh;
mod respond;
mod router;
mod runtime;
mod serving;
mod shared_cache;
mod shared_counts;
mod traces;
mod upstream;

pub use batcher::{BatchQueue, BatchWriter};
pub use body::{BodyBudget, BodyPace};
#[cfg(feature = "cli")]
pub use cli::{ProcessArgs, ProxyArgs};
pub use clock::{TokioClock, unix_ms};
pub use config::ProxyConfig;
pub use connections::{ConnectionLimits, Stopped, fit_to_open_file_limit, serve_with_limits};
pub use router::proxy_router;
pub use runtime::{ProxyRuntime, ProxyState, StartError};
pub use serving::{
    announce_listening, serve_then_stop, serve_until_shutdown, shutdown_signal, without_nagle,
};
pub use shared_cache::{CacheSharing, SharedCache};
pub use shared_counts::{SharedCounts, SharingStatus};
pub use upstream::{HyperUpstream, UpstreamBody, UpstreamReply};
