//! Gemini Proxy as a Cloudflare Worker (workers-rs).
//!
//! The same routes and key-pool behaviour as the native binary, because every decision
//! is `proxy-core`'s; this crate is only the platform glue: the upstream call through
//! the Worker's `fetch` ([`upstream`]), `Date.now()` and `setTimeout` as the clock
//! ([`clock`]), answers streamed back through a `ReadableStream` as they arrive while
//! the core's `MetaReader` reads usage on the way ([`observed_stream`]), keys cached in
//! the isolate and refreshed lazily ([`pool_cache`]), and logs and learned key state
//! written in batches from `ctx.wait_until`, never delaying a response ([`batch`]).
//!
//! Keys come from the Worker's secrets (logs then go to the console as JSON lines) or
//! from Supabase ([`config`]). The Worker-only modules build for wasm32 alone; the rest
//! is plain Rust and unit-tested natively with the workspace.

pub mod batch;
pub mod config;
pub mod diag;
pub mod latest_waker;
pub mod logs;
pub mod observed_stream;
pub mod pool_cache;
pub mod secrets_store;

#[cfg(target_arch = "wasm32")]
mod clock;
#[cfg(target_arch = "wasm32")]
mod handler;
#[cfg(target_arch = "wasm32")]
mod respond;
#[cfg(target_arch = "wasm32")]
mod state;
#[cfg(target_arch = "wasm32")]
mod stores;
#[cfg(target_arch = "wasm32")]
mod upstream;

/// The Worker's `fetch` handler.
#[cfg(target_arch = "wasm32")]
#[worker::event(fetch)]
async fn fetch(
    request: worker::Request,
    env: worker::Env,
    ctx: worker::Context,
) -> worker::Result<worker::Response> {
    use proxy_core::request::Reply;
    use proxy_core::{ErrorShape, ProxyError};

    let state = match state::isolate_state(&env) {
        Ok(state) => state,
        Err(problem) => {
            diag::warn(&format!("the Worker is not configured: {problem}"));
            let error = ProxyError::NoKeys(format!("the Worker is not configured: {problem}"));
            return respond::reply_response(Reply::error(&error, ErrorShape::Gemini, "-"));
        }
    };
    match handler::handle(state, request, &ctx).await {
        Ok(response) => Ok(response),
        Err(error) => {
            diag::warn(&format!("internal error: {error}"));
            respond::reply_response(Reply::error(&ProxyError::Internal, ErrorShape::Gemini, "-"))
        }
    }
}
