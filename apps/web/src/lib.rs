//! Gemini Proxy's operator dashboard: Leptos components rendered on the server inside
//! axum, next to the very same proxy route `gemini-proxy serve` mounts.

pub mod api;
#[cfg(feature = "ssr")]
pub mod app;
#[cfg(feature = "ssr")]
pub mod bundle;
#[cfg(feature = "ssr")]
pub mod chart;
#[cfg(feature = "ssr")]
pub mod config;
#[cfg(feature = "ssr")]
pub mod data;
#[cfg(feature = "ssr")]
pub mod handlers;
#[cfg(feature = "hydrate")]
pub mod hydrate;
pub mod live;
#[cfg(feature = "ssr")]
pub mod log_filter;
#[cfg(feature = "ssr")]
pub mod login_limit;
#[cfg(feature = "ssr")]
pub mod operator;
#[cfg(feature = "ssr")]
pub mod password;
#[cfg(feature = "ssr")]
pub mod same_origin;
#[cfg(feature = "ssr")]
pub mod server_fns;
#[cfg(feature = "ssr")]
pub mod session;
#[cfg(feature = "ssr")]
pub mod state;
pub mod timefmt;
#[cfg(feature = "ssr")]
pub mod views;
