//! Every setting's default, once. The binaries' flags (`default_value_t = …`), the
//! native `ProxyConfig::default`, the engine's and retry policy's `Default`, and the
//! Worker's configuration all read these constants, so changing a default here changes
//! it everywhere; nothing else may spell one out.

/// Google's Gemini API (`GEMINI_BASE_URL`).
pub const UPSTREAM_BASE_URL: &str = "https://generativelanguage.googleapis.com";
/// Attempts per request, each on a different key (`GEMINI_PROXY_MAX_ATTEMPTS`).
pub const MAX_ATTEMPTS: u32 = 5;
/// Time budget for all attempts of one request (`GEMINI_PROXY_DEADLINE_SECS`).
pub const DEADLINE_SECS: u64 = 600;
/// Wait for one attempt's response headers (`GEMINI_PROXY_ATTEMPT_TIMEOUT_SECS`).
/// Thinking models can be silent for minutes before a non-streamed answer.
pub const ATTEMPT_TIMEOUT_SECS: u64 = 300;
/// Largest request body in MiB (`GEMINI_PROXY_MAX_BODY_MB`); inline images make 20 MB
/// bodies normal.
pub const MAX_BODY_MB: u64 = 64;
/// Request bodies are stored only when asked (`GEMINI_PROXY_LOG_BODIES`).
pub const LOG_BODIES: bool = false;
/// A stored request body is cut to this many bytes.
pub const LOGGED_BODY_LIMIT: usize = 64 * 1024;
/// Largest upstream error body read to classify it.
pub const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// How often a native process re-reads keys from its store (`GEMINI_PROXY_REFRESH_MS`).
pub const REFRESH_MS: u64 = 2_000;
/// The same setting on the Worker: each isolate reloads lazily, on a request that
/// finds its copy older than this, and every reload is a Supabase REST call, so the
/// edge waits longer between them.
pub const WORKER_REFRESH_MS: u64 = 10_000;
/// Refresh intervals below this are raised to it.
pub const REFRESH_FLOOR_MS: u64 = 50;
/// Log records that may wait for the store before new ones are dropped and counted
/// (`GEMINI_PROXY_LOG_QUEUE`).
pub const LOG_QUEUE: usize = 10_000;
/// Log records written per store call.
pub const LOG_BATCH: usize = 500;
/// How long a log batch that is not full waits for more records, in milliseconds
/// (`GEMINI_PROXY_LOG_BATCH_WAIT_MS`): under load one store write then carries
/// hundreds of records, not a handful; a record reaches the store this much later.
pub const LOG_BATCH_WAIT_MS: u64 = 100;
/// Key-state changes that may wait for the store.
pub const STATE_QUEUE: usize = 10_000;
/// Key-state changes written per store call.
pub const STATE_BATCH: usize = 100;
/// On SIGTERM/Ctrl-C, time in-flight streams get (`GEMINI_PROXY_SHUTDOWN_GRACE_SECS`).
pub const SHUTDOWN_GRACE_SECS: u64 = 30;
/// A request head (and a new connection's first one) must arrive within this many
/// seconds of its first byte, or of the connection opening
/// (`GEMINI_PROXY_HEADER_TIMEOUT_SECS`): half-sent heads cannot hold a connection.
pub const HEADER_TIMEOUT_SECS: u64 = 10;
/// A kept-alive connection with no request in flight is closed after this many
/// seconds (`GEMINI_PROXY_IDLE_TIMEOUT_SECS`); nginx's `keepalive_timeout`, longer
/// than the 60 s idle timeout of common load balancers so they close first.
pub const IDLE_TIMEOUT_SECS: u64 = 75;
/// Client connections open at once (`GEMINI_PROXY_MAX_CONNECTIONS`); beyond it new
/// ones wait in the kernel's queue. Lowered at start to fit the open-file limit.
pub const MAX_CONNECTIONS: usize = 4_096;
/// A request body gets this many seconds before its minimum rate applies
/// (`GEMINI_PROXY_BODY_TIMEOUT_SECS`).
pub const BODY_TIMEOUT_SECS: u64 = 10;
/// After that, a body must keep arriving at this many KiB/s on average
/// (`GEMINI_PROXY_MIN_BODY_RATE_KIB`), or it is refused with 408: 32 KiB/s is a slow
/// mobile uplink, and a 64 MiB body at that rate still gets 34 minutes.
pub const MIN_BODY_RATE_KIB: u64 = 32;
/// Request bodies held in memory at once, in MiB (`GEMINI_PROXY_BODY_MEMORY_MB`);
/// beyond it a request gets 503 with `Retry-After` instead of the process running out
/// of memory.
pub const BODY_MEMORY_MB: u64 = 512;
/// The `Retry-After` of that 503.
pub const BODY_MEMORY_RETRY_SECS: u64 = 1;
/// TCP connect timeout to upstream, in seconds.
pub const CONNECT_TIMEOUT_SECS: u64 = 10;
/// First backoff after a 5xx or transport error; doubles per attempt up to the max.
pub const BACKOFF_BASE_MS: u64 = 100;
pub const BACKOFF_MAX_MS: u64 = 2_000;

/// Consecutive upstream 5xx for a model (on any keys) that open its circuit breaker
/// (`GEMINI_PROXY_BREAKER_FAILURES`; 0 switches breakers off).
pub const BREAKER_FAILURES: u32 = 5;
/// The first pause of an open breaker (`GEMINI_PROXY_BREAKER_PAUSE_SECS`); it doubles
/// each time a probe fails, up to the max (`GEMINI_PROXY_BREAKER_MAX_PAUSE_SECS`).
pub const BREAKER_PAUSE_SECS: u64 = 10;
pub const BREAKER_MAX_PAUSE_SECS: u64 = 300;
/// Retries after model-wide failures in flight, as a percentage of requests in flight
/// (`GEMINI_PROXY_RETRY_BUDGET_PERCENT`; Envoy's default), and how many are always
/// allowed (`GEMINI_PROXY_RETRY_BUDGET_FLOOR`).
pub const RETRY_BUDGET_PERCENT: u32 = 20;
pub const RETRY_BUDGET_FLOOR: u32 = 3;

/// Seconds of upstream silence on an SSE answer before the proxy sends a `: keep-alive`
/// comment (`GEMINI_PROXY_SSE_HEARTBEAT_SECS`); 0: never.
pub const SSE_HEARTBEAT_SECS: u64 = 0;

/// Retry an empty non-streamed answer (no candidates, or a stop with no parts; not a
/// safety block) once on another key (`GEMINI_PROXY_RETRY_EMPTY`).
pub const RETRY_EMPTY: bool = true;

/// Seconds a request may wait for a key when none has room for its model
/// (`GEMINI_PROXY_QUEUE_WAIT_SECS`); 0: answer 429 at once.
pub const QUEUE_WAIT_SECS: u64 = 0;
/// Requests waiting for a key at once, across models (`GEMINI_PROXY_QUEUE_MAX`);
/// beyond it a request gets 429 at once.
pub const QUEUE_MAX: usize = 1_000;

/// Seconds an identical non-streamed generate/count/embed answer is served from memory
/// (`GEMINI_PROXY_CACHE_TTL_SECS`); 0: no cache.
pub const CACHE_TTL_SECS: u64 = 0;
/// MiB of answers the cache keeps at most (`GEMINI_PROXY_CACHE_MAX_MB`).
pub const CACHE_MAX_MB: u64 = 64;
/// One cache for every proxy key (`GEMINI_PROXY_CACHE_SHARED`); else one per key.
pub const CACHE_SHARED: bool = false;

/// Milliseconds a non-streamed request waits for upstream's headers before the same
/// request also goes to a second key, the first answer winning
/// (`GEMINI_PROXY_HEDGE_AFTER_MS`); 0: never.
pub const HEDGE_AFTER_MS: u64 = 0;

/// MiB to bytes, saturating (a huge setting means "no practical limit", not a wrap).
pub fn mib_to_bytes(mib: u64) -> usize {
    usize::try_from(mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX)
}

/// What the shared governance counts' Redis keys start with.
/// The traces' `service.name` (`--otlp-service-name`, `OTEL_SERVICE_NAME`).
pub const OTLP_SERVICE_NAME: &str = "gemini-proxy";
pub const REDIS_PREFIX: &str = "gemini-proxy";
