//! The proxy's flags (feature `cli`), flattened into both binaries' command lines so
//! `gemini-proxy serve` and `gemini-proxy-web` tune the same proxy the same way. Every
//! flag has an environment variable; the README's configuration table lists them.

use std::fmt::Display;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use proxy_core::EngineConfig;
use proxy_core::client_addr::TrustedProxies;
use proxy_core::defaults;
use proxy_core::governance::prices::PriceTable;
use proxy_core::request::AdmissionRules;
use proxy_core::resilience::{ResilienceConfig, ResilienceSettings};

use crate::body::BodyPace;
use crate::config::ProxyConfig;
use crate::connections::ConnectionLimits;

#[derive(Clone, Debug, clap::Args)]
pub struct ProxyArgs {
    /// Upstream Gemini API base URL (Google's, a Cloudflare AI Gateway, a test server).
    #[arg(long, env = "GEMINI_BASE_URL", default_value = defaults::UPSTREAM_BASE_URL)]
    pub upstream: String,
    /// Attempts per request, across different keys.
    #[arg(long, env = "GEMINI_PROXY_MAX_ATTEMPTS", default_value_t = defaults::MAX_ATTEMPTS)]
    pub max_attempts: u32,
    /// Total seconds a request may spend on attempts before upstream answers.
    #[arg(long, env = "GEMINI_PROXY_DEADLINE_SECS", default_value_t = defaults::DEADLINE_SECS)]
    pub deadline_secs: u64,
    /// Seconds one attempt may wait for upstream's response headers.
    #[arg(
        long,
        env = "GEMINI_PROXY_ATTEMPT_TIMEOUT_SECS",
        default_value_t = defaults::ATTEMPT_TIMEOUT_SECS
    )]
    pub attempt_timeout_secs: u64,
    /// Largest request body in MiB.
    #[arg(long, env = "GEMINI_PROXY_MAX_BODY_MB", default_value_t = defaults::MAX_BODY_MB)]
    pub max_body_mb: u64,
    /// Store request bodies (first 64 KiB) in the log.
    #[arg(long, env = "GEMINI_PROXY_LOG_BODIES")]
    pub log_bodies: bool,
    /// Milliseconds between re-reads of keys from the database.
    #[arg(long, env = "GEMINI_PROXY_REFRESH_MS", default_value_t = defaults::REFRESH_MS)]
    pub refresh_ms: u64,
    /// Seconds in-flight requests get to finish after SIGTERM/Ctrl-C.
    #[arg(
        long,
        env = "GEMINI_PROXY_SHUTDOWN_GRACE_SECS",
        default_value_t = defaults::SHUTDOWN_GRACE_SECS
    )]
    pub shutdown_grace_secs: u64,
    /// Where the last key set read from PostgreSQL/Supabase is kept, to start while the
    /// database is down.
    #[arg(
        long,
        env = "GEMINI_PROXY_KEY_CACHE",
        default_value = "gemini-proxy-keys.cache.json"
    )]
    pub key_cache: PathBuf,
    /// Log records that may wait for the database before new ones are dropped (and counted).
    #[arg(long, env = "GEMINI_PROXY_LOG_QUEUE", default_value_t = defaults::LOG_QUEUE)]
    pub log_queue: usize,
    /// Milliseconds a log batch that is not full waits for more records before it is
    /// written (0: write at once). One write for many requests keeps logging cheap.
    #[arg(
        long,
        env = "GEMINI_PROXY_LOG_BATCH_WAIT_MS",
        default_value_t = defaults::LOG_BATCH_WAIT_MS
    )]
    pub log_batch_wait_ms: u64,
    /// Seconds a client gets to send a whole request head (on a new connection: from
    /// when it opened).
    #[arg(
        long,
        env = "GEMINI_PROXY_HEADER_TIMEOUT_SECS",
        default_value_t = defaults::HEADER_TIMEOUT_SECS
    )]
    pub header_timeout_secs: u64,
    /// Seconds a kept-alive connection may sit idle between requests.
    #[arg(
        long,
        env = "GEMINI_PROXY_IDLE_TIMEOUT_SECS",
        default_value_t = defaults::IDLE_TIMEOUT_SECS
    )]
    pub idle_timeout_secs: u64,
    /// Client connections open at once (lowered to fit the open-file limit); more wait
    /// in the kernel's accept queue.
    #[arg(
        long,
        env = "GEMINI_PROXY_MAX_CONNECTIONS",
        default_value_t = defaults::MAX_CONNECTIONS
    )]
    pub max_connections: usize,
    /// Seconds a request body gets before its minimum rate applies.
    #[arg(
        long,
        env = "GEMINI_PROXY_BODY_TIMEOUT_SECS",
        default_value_t = defaults::BODY_TIMEOUT_SECS
    )]
    pub body_timeout_secs: u64,
    /// After that, the slowest average a request body may arrive at, in KiB/s (else 408).
    #[arg(
        long,
        env = "GEMINI_PROXY_MIN_BODY_RATE_KIB",
        default_value_t = defaults::MIN_BODY_RATE_KIB
    )]
    pub min_body_rate_kib: u64,
    /// MiB of request bodies held in memory at once, across all requests (beyond: 503
    /// with Retry-After).
    #[arg(
        long,
        env = "GEMINI_PROXY_BODY_MEMORY_MB",
        default_value_t = defaults::BODY_MEMORY_MB
    )]
    pub body_memory_mb: u64,
    /// A TOML price table (USD per million tokens per model) laid over the built-in
    /// one; see docs/governance.md.
    #[arg(long, env = "GEMINI_PROXY_PRICES")]
    pub prices: Option<PathBuf>,
    /// Redis to share rate limits, token limits and budgets with the other instances
    /// (`redis://host:6379/0`); without it each instance counts its own.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// What the shared counts' Redis keys start with: the same for every instance of
    /// one deployment, different for deployments that share a Redis.
    #[arg(long, env = "GEMINI_PROXY_REDIS_PREFIX", default_value = defaults::REDIS_PREFIX)]
    pub redis_prefix: String,
    /// Serve `GET /metrics` (Prometheus text) on this address only, instead of on the
    /// main listener, e.g. `127.0.0.1:9464`.
    #[arg(long, env = "GEMINI_PROXY_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Post alerts here as JSON (Slack-compatible `text` plus structured fields): a key
    /// marked invalid or back, every key cooling for a model, a proxy key at 80% and
    /// 100% of its budget, log records dropped. Repeatable; the env var takes a
    /// comma-separated list.
    #[arg(
        long = "alert-webhook",
        env = "GEMINI_PROXY_ALERT_WEBHOOK",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub alert_webhooks: Vec<String>,
    /// Export traces over OTLP/HTTP (protobuf) to this collector: one span per request
    /// and one per upstream attempt, continuing the client's `traceparent`. A base
    /// URL (`http://collector:4318`) gets `/v1/traces` appended. The exporter also
    /// reads `OTEL_EXPORTER_OTLP_HEADERS`.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// The traces' `service.name`.
    #[arg(long, env = "OTEL_SERVICE_NAME", default_value = defaults::OTLP_SERVICE_NAME)]
    pub otlp_service_name: String,
    /// A reverse proxy in front (an address or a network: `127.0.0.1`, `10.0.0.0/8`)
    /// whose `X-Forwarded-For` names the client, for the log's `client_ip` and the
    /// dashboard's login limiter. Repeatable; the env var takes a comma-separated list.
    /// Without it the connection's peer is the client.
    #[arg(
        long = "trusted-proxy",
        env = "GEMINI_PROXY_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,
    /// Require `Authorization: Bearer <token>` on `GET /metrics`.
    #[arg(long, env = "GEMINI_PROXY_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Seconds of upstream silence on an SSE answer (Gemini `alt=sse`, OpenAI streams)
    /// before the proxy sends a `: keep-alive` comment, so idle-cutting platforms
    /// (Cloudflare: ~100 s) keep the stream open; 0: never.
    #[arg(
        long,
        env = "GEMINI_PROXY_SSE_HEARTBEAT_SECS",
        default_value_t = defaults::SSE_HEARTBEAT_SECS
    )]
    pub sse_heartbeat_secs: u64,
    /// Retry a non-streamed answer with nothing in it (no candidates, or a stop with
    /// no parts; never a safety block) once on another key before the client sees it
    /// (`--retry-empty=false` to switch it off).
    #[arg(
        long,
        env = "GEMINI_PROXY_RETRY_EMPTY",
        default_value_t = defaults::RETRY_EMPTY,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub retry_empty: bool,
    /// Seconds a request may wait, in a fair queue, for a key when none has room for
    /// its model (all cooling down or at their limits); 0 answers 429 at once.
    #[arg(long, env = "GEMINI_PROXY_QUEUE_WAIT_SECS", default_value_t = defaults::QUEUE_WAIT_SECS)]
    pub queue_wait_secs: u64,
    /// Requests that may wait for a key at once, across models; beyond it, 429 with
    /// Retry-After at once.
    #[arg(long, env = "GEMINI_PROXY_QUEUE_MAX", default_value_t = defaults::QUEUE_MAX)]
    pub queue_max: usize,
    /// Seconds an identical non-streamed generateContent, countTokens, embedContent or
    /// batchEmbedContents answer is served from memory (`x-gemini-proxy-cache: hit`);
    /// `Cache-Control: no-cache` from the client bypasses it; 0: no cache.
    #[arg(long, env = "GEMINI_PROXY_CACHE_TTL_SECS", default_value_t = defaults::CACHE_TTL_SECS)]
    pub cache_ttl_secs: u64,
    /// MiB of answers the cache keeps at most (least recently used go first).
    #[arg(long, env = "GEMINI_PROXY_CACHE_MAX_MB", default_value_t = defaults::CACHE_MAX_MB)]
    pub cache_max_mb: u64,
    /// One cache for every proxy key (else each proxy key gets only its own answers).
    #[arg(long, env = "GEMINI_PROXY_CACHE_SHARED")]
    pub cache_shared: bool,
    /// Milliseconds a non-streamed request waits for upstream's headers before the same
    /// request also goes to a second key; the first answer wins, the other call is
    /// cancelled, both are in the log; 0: never.
    #[arg(long, env = "GEMINI_PROXY_HEDGE_AFTER_MS", default_value_t = defaults::HEDGE_AFTER_MS)]
    pub hedge_after_ms: u64,
    /// When model FROM is overloaded (5xx, its breaker open) or every key is rate
    /// limited for it, serve the request with model TO (repeatable; chains follow, loops
    /// are refused; the environment variable takes `a=b,c=d`).
    #[arg(long, env = "GEMINI_PROXY_FALLBACK", value_name = "FROM=TO")]
    pub fallback: Vec<String>,
    /// Consecutive upstream 5xx for a model (on any keys) that open its circuit
    /// breaker; 0 switches breakers off.
    #[arg(long, env = "GEMINI_PROXY_BREAKER_FAILURES", default_value_t = defaults::BREAKER_FAILURES)]
    pub breaker_failures: u32,
    /// Seconds an open breaker waits before one probe; doubles after a failed probe.
    #[arg(
        long,
        env = "GEMINI_PROXY_BREAKER_PAUSE_SECS",
        default_value_t = defaults::BREAKER_PAUSE_SECS
    )]
    pub breaker_pause_secs: u64,
    /// The longest pause of an open breaker, in seconds.
    #[arg(
        long,
        env = "GEMINI_PROXY_BREAKER_MAX_PAUSE_SECS",
        default_value_t = defaults::BREAKER_MAX_PAUSE_SECS
    )]
    pub breaker_max_pause_secs: u64,
    /// Retries after 5xx or timeouts in flight at once, as a percentage of requests in
    /// flight (100: no bound).
    #[arg(
        long,
        env = "GEMINI_PROXY_RETRY_BUDGET_PERCENT",
        default_value_t = defaults::RETRY_BUDGET_PERCENT
    )]
    pub retry_budget_percent: u32,
    /// Retries always allowed in flight, however few requests there are.
    #[arg(
        long,
        env = "GEMINI_PROXY_RETRY_BUDGET_FLOOR",
        default_value_t = defaults::RETRY_BUDGET_FLOOR
    )]
    pub retry_budget_floor: u32,
}

/// The webhook URLs, trimmed, each an `http(s)://` URL (named by host only if not:
/// a webhook URL is a secret).
fn webhooks(given: &[String]) -> Result<Vec<String>, String> {
    given
        .iter()
        .map(|url| url.trim())
        .filter(|url| !url.is_empty())
        .map(|url| match is_http_url(url) {
            true => Ok(url.to_string()),
            false => Err("--alert-webhook: each must be an http:// or https:// URL".to_string()),
        })
        .collect()
}

/// The OTLP endpoint, if one is given: an `http(s)://` URL (named by host only if
/// not: it may carry credentials).
fn otlp_endpoint(given: Option<&str>) -> Result<Option<String>, String> {
    let Some(url) = given.map(str::trim).filter(|url| !url.is_empty()) else {
        return Ok(None);
    };
    match is_http_url(url) {
        true => Ok(Some(url.to_string())),
        false => Err("--otlp-endpoint: must be an http:// or https:// URL (OTLP/HTTP)".to_string()),
    }
}

/// An `http://` or `https://` URL with a host.
fn is_http_url(url: &str) -> bool {
    reqwest::Url::parse(url)
        .is_ok_and(|parsed| matches!(parsed.scheme(), "http" | "https") && parsed.host_str().is_some())
}

impl ProxyArgs {
    /// The typed configuration; fails when the price table cannot be read or parsed.
    pub fn config(&self) -> Result<ProxyConfig, String> {
        let prices = match &self.prices {
            None => PriceTable::builtin(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the price table {}: {e}", path.display()))?;
                PriceTable::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
        };
        let redis_url = self.redis_url.clone().filter(|url| !url.trim().is_empty());
        let mut engine =
            EngineConfig::from_limits(self.max_attempts, self.deadline_secs, self.attempt_timeout_secs);
        let settings = ResilienceSettings {
            fallbacks: self.fallback.iter().map(String::as_str).collect(),
            breaker_failures: self.breaker_failures,
            breaker_pause_secs: self.breaker_pause_secs,
            breaker_max_pause_secs: self.breaker_max_pause_secs,
            retry_budget_percent: self.retry_budget_percent,
            retry_budget_floor: self.retry_budget_floor,
            queue_wait_secs: self.queue_wait_secs,
            queue_max: self.queue_max,
            cache_ttl_secs: self.cache_ttl_secs,
            cache_max_mb: self.cache_max_mb,
            cache_shared: self.cache_shared,
            hedge_after_ms: self.hedge_after_ms,
        };
        engine.resilience =
            ResilienceConfig::from_settings(&settings).map_err(|e| format!("--fallback: {e}"))?;
        Ok(ProxyConfig {
            upstream_base_url: self.upstream.clone(),
            engine,
            admission: AdmissionRules {
                max_body_bytes: defaults::mib_to_bytes(self.max_body_mb),
                log_bodies: self.log_bodies,
                sse_heartbeat_ms: self.sse_heartbeat_secs.saturating_mul(1000),
                retry_empty: self.retry_empty,
            },
            refresh_interval: Duration::from_millis(self.refresh_ms.max(defaults::REFRESH_FLOOR_MS)),
            log_queue_capacity: self.log_queue.max(1),
            log_batch_wait: Duration::from_millis(self.log_batch_wait_ms),
            body_pace: BodyPace {
                grace: Duration::from_secs(self.body_timeout_secs),
                min_bytes_per_sec: self.min_body_rate_kib.saturating_mul(1024),
            },
            body_memory_bytes: defaults::mib_to_bytes(self.body_memory_mb),
            prices,
            redis_url,
            redis_prefix: self.redis_prefix.clone(),
            metrics_listen: self.metrics_listen,
            alert_webhooks: webhooks(&self.alert_webhooks)?,
            metrics_token: self.metrics_token.clone().filter(|t| !t.trim().is_empty()),
            otlp_endpoint: otlp_endpoint(self.otlp_endpoint.as_deref())?,
            otlp_service_name: self.otlp_service_name.clone(),
            trusted_proxies: TrustedProxies::parse(&self.trusted_proxies)
                .map_err(|e| format!("--trusted-proxy: {e}"))?,
            ..ProxyConfig::default()
        })
    }

    /// The listener's limits (`serve_until_shutdown` fits the connection cap to the
    /// open-file limit).
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_secs(self.header_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.max(1)),
            max_connections: self.max_connections.max(1),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
        }
    }
}

/// The logging and runtime flags, global to every subcommand.
#[derive(Clone, Debug, clap::Args)]
pub struct ProcessArgs {
    /// Log filter, e.g. `info` or `proxy_axum=debug`.
    #[arg(long = "log", env = "GEMINI_PROXY_LOG", default_value = "info", global = true)]
    pub log_filter: String,
    /// Write logs as JSON lines.
    #[arg(long, env = "GEMINI_PROXY_LOG_JSON", global = true)]
    pub log_json: bool,
    /// Worker threads of the async runtime (default: one per CPU).
    #[arg(long, env = "GEMINI_PROXY_WORKER_THREADS", global = true)]
    pub worker_threads: Option<usize>,
}

impl ProcessArgs {
    /// Logs go to stderr so stdout stays for command output (and `listening on …`).
    fn init_tracing(&self) {
        let filter = tracing_subscriber::EnvFilter::try_new(&self.log_filter)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        // Colour only for a person at a terminal: a file, journald or a container's log
        // gets plain text (and `NO_COLOR` turns it off anywhere).
        let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(colour)
            .with_writer(std::io::stderr);
        if self.log_json {
            builder.json().init();
        } else {
            builder.init();
        }
    }

    /// A binary's `main`: logging, then the runtime, then `run` to completion; an error
    /// (its whole chain, with `{:#}`) goes to stderr as `error: …` with exit status 1.
    pub fn run_main<E: Display>(&self, run: impl Future<Output = Result<(), E>>) -> ExitCode {
        self.init_tracing();
        let mut runtime = tokio::runtime::Builder::new_multi_thread();
        if let Some(threads) = self.worker_threads.filter(|n| *n > 0) {
            runtime.worker_threads(threads);
        }
        let failure = match runtime.enable_all().build() {
            Ok(runtime) => match runtime.block_on(run) {
                Ok(()) => return ExitCode::SUCCESS,
                Err(error) => format!("{error:#}"),
            },
            Err(error) => format!("cannot start the async runtime: {error}"),
        };
        eprintln!("error: {failure}");
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        proxy: ProxyArgs,
    }

    /// The flags' defaults are the config's: both come from `proxy_core::defaults`.
    #[test]
    fn no_flags_give_the_default_config() {
        let parsed = Cli::parse_from(["x"]).proxy.config().unwrap_or_default();
        let default = ProxyConfig::default();
        assert_eq!(parsed.upstream_base_url, default.upstream_base_url);
        assert_eq!(parsed.engine, default.engine);
        assert_eq!(parsed.admission, default.admission);
        assert_eq!(parsed.refresh_interval, default.refresh_interval);
        assert_eq!(parsed.log_queue_capacity, default.log_queue_capacity);
        assert_eq!(parsed.log_batch_wait, default.log_batch_wait);
        assert_eq!(parsed.body_pace, default.body_pace);
        assert_eq!(parsed.body_memory_bytes, default.body_memory_bytes);
        assert_eq!(parsed.prices, default.prices);
        assert_eq!(parsed.redis_url, None);
        assert_eq!((parsed.metrics_listen, parsed.metrics_token), (None, None));
        assert_eq!(
            Cli::parse_from(["x"]).proxy.connection_limits(),
            ConnectionLimits::default()
        );
    }

    #[test]
    fn flags_become_the_config_with_floors() {
        let cli = Cli::parse_from([
            "x",
            "--max-attempts",
            "0",
            "--deadline-secs",
            "7",
            "--max-body-mb",
            "2",
            "--refresh-ms",
            "1",
            "--log-queue",
            "0",
        ]);
        let config = cli.proxy.config().unwrap_or_default();
        assert_eq!(config.engine.retry.max_attempts, 1, "at least one attempt");
        assert_eq!(config.engine.retry.deadline_ms, 7_000);
        assert_eq!(config.admission.max_body_bytes, 2 * 1024 * 1024);
        assert_eq!(
            config.refresh_interval,
            Duration::from_millis(50),
            "refresh floor"
        );
        assert_eq!(config.log_queue_capacity, 1);
        assert_eq!(
            cli.proxy.connection_limits().shutdown_grace,
            Duration::from_secs(30)
        );
    }

    #[test]
    fn metrics_flags_and_an_empty_token_is_none() {
        let cli = Cli::parse_from([
            "x",
            "--metrics-listen",
            "127.0.0.1:9464",
            "--metrics-token",
            "t0k",
        ]);
        let config = cli.proxy.config().unwrap_or_default();
        assert_eq!(config.metrics_listen, "127.0.0.1:9464".parse().ok());
        assert_eq!(config.metrics_token.as_deref(), Some("t0k"));
        let blank = Cli::parse_from(["x", "--metrics-token", " "]).proxy.config();
        assert_eq!(blank.unwrap_or_default().metrics_token, None);
        assert!(Cli::try_parse_from(["x", "--metrics-listen", "nowhere"]).is_err());
    }

    #[test]
    fn the_otlp_endpoint_must_be_an_http_url() {
        let given = config(&["--otlp-endpoint", "http://collector:4318"]);
        assert_eq!(
            given.map(|c| c.otlp_endpoint),
            Ok(Some("http://collector:4318".to_string()))
        );
        assert_eq!(config(&[]).map(|c| c.otlp_endpoint), Ok(None));
        let bad = config(&["--otlp-endpoint", "grpc://collector:4317"]);
        assert!(bad.is_err_and(|e| e.starts_with("--otlp-endpoint:")));
    }

    fn config(args: &[&str]) -> Result<ProxyConfig, String> {
        let mut argv = vec!["x"];
        argv.extend_from_slice(args);
        Cli::parse_from(argv).proxy.config()
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let given = config(&["--trusted-proxy", "127.0.0.1,10.0.0.0/8"]);
        assert!(given.is_ok_and(|c| !c.trusted_proxies.is_empty()));
        let bad = config(&["--trusted-proxy", "my-proxy"]);
        assert!(bad.is_err_and(|e| e.starts_with("--trusted-proxy:") && e.contains("my-proxy")));
    }

    #[test]
    fn alert_webhooks_must_be_http_urls() {
        let two = config(&[
            "--alert-webhook",
            "https://hooks.example/a",
            "--alert-webhook",
            "http://10.0.0.1:9/b",
        ]);
        assert_eq!(
            two.map(|c| c.alert_webhooks),
            Ok(vec![
                "https://hooks.example/a".to_string(),
                "http://10.0.0.1:9/b".to_string()
            ])
        );
        let listed = config(&["--alert-webhook", "https://a.example/x,https://b.example/y"]);
        assert_eq!(
            listed.map(|c| c.alert_webhooks.len()),
            Ok(2),
            "comma-separated like the env var"
        );
        let bad = config(&["--alert-webhook", "ftp://files.example/secret-path"]);
        let error = bad.err().unwrap_or_default();
        assert!(error.starts_with("--alert-webhook:"), "{error}");
        assert!(!error.contains("secret-path"), "a webhook URL is not echoed");
    }

    #[test]
    fn fallbacks_from_flags_and_a_loop_is_named() {
        let cli = Cli::parse_from(["x", "--fallback", "pro=flash", "--fallback", "flash=lite"]);
        let config = cli.proxy.config().unwrap_or_default();
        assert_eq!(
            config.engine.resilience.fallbacks.chain("pro"),
            vec!["flash", "lite"]
        );
        let cli = Cli::parse_from(["x", "--fallback", "a=b", "--fallback", "b=a"]);
        let error = cli.proxy.config().err().unwrap_or_default();
        assert!(
            error.starts_with("--fallback: ") && error.contains("a → b → a"),
            "{error}"
        );
        assert!(Cli::parse_from(["x", "--retry-empty"]).proxy.retry_empty);
        assert!(!Cli::parse_from(["x", "--retry-empty=false"]).proxy.retry_empty);
        assert!(Cli::parse_from(["x"]).proxy.retry_empty, "on by default");
        let cli = Cli::parse_from(["x", "--breaker-failures", "0", "--retry-budget-percent", "100"]);
        let config = cli.proxy.config().unwrap_or_default();
        assert_eq!(config.engine.resilience.breaker.failures, 0);
        assert_eq!(config.engine.resilience.retry_budget.percent, 100);
    }

    #[test]
    fn a_price_file_is_read_and_a_bad_one_is_named() {
        let dir = std::env::temp_dir().join(format!("gp-prices-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let good = dir.join("good.toml");
        let bad = dir.join("bad.toml");
        std::fs::write(&good, "[models.\"my-model\"]\ninput = 1\noutput = 2\n").unwrap_or_default();
        std::fs::write(&bad, "[models.x]\ninput = \"cheap\"\n").unwrap_or_default();
        let config = |path: &std::path::Path| {
            let path = path.to_string_lossy().into_owned();
            Cli::parse_from(["x", "--prices", &path]).proxy.config()
        };
        let table = config(&good).map(|c| c.prices).unwrap_or_default();
        assert_eq!(table.price("my-model").map(|p| p.output), Some(2.0));
        let error = config(&bad).err().unwrap_or_default();
        assert!(error.contains("bad.toml") && error.contains("input"), "{error}");
        let error = config(&dir.join("missing.toml")).err().unwrap_or_default();
        assert!(error.contains("cannot read the price table"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap_or_default();
    }
}
