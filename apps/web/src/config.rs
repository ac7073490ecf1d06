//! Flags and environment for `gemini-proxy-web`. The store flags carry the same names
//! and variables as `gemini-proxy`, so one environment configures both binaries.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use proxy_axum::{ProcessArgs, ProxyArgs};
use store_select::StoreArgs;

#[derive(Clone, Debug, Parser)]
#[command(
    name = "gemini-proxy-web",
    version,
    about = "Gemini Proxy: dashboard and proxy route"
)]
pub struct WebArgs {
    /// Address to listen on; port 0 picks a free port (printed as `listening on …`).
    #[arg(long, env = "GEMINI_PROXY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Operator password for the dashboard. Required unless listening on loopback.
    #[arg(long, env = "GEMINI_PROXY_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Mark the session cookie `Secure` (set when a TLS proxy sits in front). Requests
    /// carrying `X-Forwarded-Proto: https` get it anyway.
    #[arg(long, env = "GEMINI_PROXY_SECURE_COOKIES")]
    pub secure_cookies: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub process: ProcessArgs,
    /// The proxy route's settings, the same as `gemini-proxy serve`'s.
    #[command(flatten)]
    pub proxy: ProxyArgs,
    /// Where `scripts/build-web.sh` put the browser bundle (`pkg/` inside).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,
}

/// Why the dashboard refuses to start.
pub fn check_exposure(listen: SocketAddr, password: Option<&str>) -> Result<(), String> {
    let has_password = password.is_some_and(|p| !p.is_empty());
    if has_password || listen.ip().is_loopback() {
        return Ok(());
    }
    Err(format!(
        "refusing to serve the dashboard on {listen} without a password: set \
         GEMINI_PROXY_ADMIN_PASSWORD, or listen on a loopback address such as 127.0.0.1"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_address_needs_a_password() {
        let public: SocketAddr = "0.0.0.0:8080".parse().expect("addr");
        let local: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        assert!(check_exposure(public, None).is_err());
        assert!(check_exposure(public, Some("")).is_err());
        assert!(check_exposure(public, Some("s3cret")).is_ok());
        assert!(check_exposure(local, None).is_ok());
    }
}
