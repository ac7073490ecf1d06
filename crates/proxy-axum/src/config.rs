//! The proxy's typed configuration. The binary fills it from flags and environment;
//! this crate never reads the environment itself.

use std::time::Duration;

use proxy_core::EngineConfig;

#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Where Gemini lives: Google's endpoint, a Cloudflare AI Gateway URL, or a test server.
    pub upstream_base_url: String,
    pub engine: EngineConfig,
    /// Largest request body accepted; inline images make 20 MB bodies normal.
    pub max_body_bytes: usize,
    /// Store request bodies in the log (off by default: they are the users' data).
    pub log_bodies: bool,
    /// How often keys and proxy keys are re-read from the store.
    pub refresh_interval: Duration,
    /// Log records waiting to be written; beyond this they are counted and dropped.
    pub log_queue_capacity: usize,
    pub log_batch_size: usize,
    pub connect_timeout: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            upstream_base_url: "https://generativelanguage.googleapis.com".to_string(),
            engine: EngineConfig::default(),
            max_body_bytes: 64 * 1024 * 1024,
            log_bodies: false,
            refresh_interval: Duration::from_secs(2),
            log_queue_capacity: 10_000,
            log_batch_size: 200,
            connect_timeout: Duration::from_secs(10),
        }
    }
}
