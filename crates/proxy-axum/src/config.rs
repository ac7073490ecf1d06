//! The proxy's typed configuration. The binary fills it from flags and environment;
//! this crate never reads the environment itself. Defaults come from
//! `proxy_core::defaults`, like the flags' and the Worker's.

use std::net::SocketAddr;
use std::time::Duration;

use proxy_core::EngineConfig;
use proxy_core::client_addr::TrustedProxies;
use proxy_core::defaults;
use proxy_core::governance::prices::PriceTable;
use proxy_core::request::AdmissionRules;

use crate::body::BodyPace;

#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Where Gemini lives: Google's endpoint, a Cloudflare AI Gateway URL, or a test server.
    pub upstream_base_url: String,
    pub engine: EngineConfig,
    /// Body limit and body logging, applied by the core's admission.
    pub admission: AdmissionRules,
    /// How often keys and proxy keys are re-read from the store.
    pub refresh_interval: Duration,
    /// Log records waiting to be written; beyond this they are counted and dropped.
    pub log_queue_capacity: usize,
    pub log_batch_size: usize,
    /// How long a batch that is not full waits for more records before it is written.
    pub log_batch_wait: Duration,
    pub connect_timeout: Duration,
    /// How fast a request body must arrive.
    pub body_pace: BodyPace,
    /// Request bodies held in memory at once, in bytes, across all requests.
    pub body_memory_bytes: usize,
    /// What each model costs (`cost_usd`, budgets).
    pub prices: PriceTable,
    /// Where the governance counts are shared with other instances (Redis); without
    /// one, each instance counts its own.
    pub redis_url: Option<String>,
    /// What every shared count's Redis key starts with.
    pub redis_prefix: String,
    /// Serve `GET /metrics` on this address only (else on the main listener).
    pub metrics_listen: Option<SocketAddr>,
    /// `GET /metrics` asks for `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
    /// Where alerts are posted (`--alert-webhook`); none: no alerts.
    pub alert_webhooks: Vec<String>,
    /// The wait before an undelivered alert's first retry (doubling after).
    pub alert_backoff: Duration,
    /// Where traces are exported over OTLP/HTTP (`--otlp-endpoint`); none: no traces.
    pub otlp_endpoint: Option<String>,
    /// The traces' `service.name`.
    pub otlp_service_name: String,
    /// Reverse proxies whose `X-Forwarded-For` names the client (`--trusted-proxy`).
    pub trusted_proxies: TrustedProxies,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            upstream_base_url: defaults::UPSTREAM_BASE_URL.to_string(),
            engine: EngineConfig::default(),
            admission: AdmissionRules::default(),
            refresh_interval: Duration::from_millis(defaults::REFRESH_MS),
            log_queue_capacity: defaults::LOG_QUEUE,
            log_batch_size: defaults::LOG_BATCH,
            log_batch_wait: Duration::from_millis(defaults::LOG_BATCH_WAIT_MS),
            connect_timeout: Duration::from_secs(defaults::CONNECT_TIMEOUT_SECS),
            body_pace: BodyPace::default(),
            body_memory_bytes: defaults::mib_to_bytes(defaults::BODY_MEMORY_MB),
            prices: PriceTable::builtin(),
            redis_url: None,
            redis_prefix: defaults::REDIS_PREFIX.to_string(),
            metrics_listen: None,
            metrics_token: None,
            alert_webhooks: Vec::new(),
            alert_backoff: Duration::from_secs(1),
            otlp_endpoint: None,
            otlp_service_name: defaults::OTLP_SERVICE_NAME.to_string(),
            trusted_proxies: TrustedProxies::default(),
        }
    }
}
