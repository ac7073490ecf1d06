//! Starts fake Gemini, a store, and the proxy on port 0; helpers to call and inspect.

use std::sync::Arc;
use std::time::Duration;

use fake_gemini::FakeGemini;
use proxy_axum::{ConnectionLimits, ProxyConfig, ProxyRuntime, Stopped, proxy_router, serve_with_limits};
use proxy_core::admin::{AdminStore, KeyRow, LogQuery};
use proxy_core::auth::{format_proxy_key, hash_proxy_key};
use proxy_core::keys::KeyLimits;
use proxy_core::log::LogRecord;
use proxy_core::retry::RetryPolicy;
use store_sqlite::SqliteStore;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const FLASH: &str = "gemini-2.5-flash";

/// A realistic-length upstream key whose text carries a fake-gemini behaviour marker.
pub fn key(label: &str) -> String {
    format!("AIzaSy{:0<33}", format!("{label}-x"))
}

pub struct Harness {
    pub fake: FakeGemini,
    pub store: Arc<SqliteStore>,
    pub base: String,
    pub proxy_key: String,
    pub upstream_keys: Vec<String>,
    pub http: reqwest::Client,
    runtime: Option<ProxyRuntime>,
    /// The binaries' listener, stopped by sending on `stop` (as SIGTERM does).
    server: JoinHandle<std::io::Result<Stopped>>,
    stop: Option<oneshot::Sender<()>>,
}

pub fn test_config(upstream: &str) -> ProxyConfig {
    let mut config = ProxyConfig {
        upstream_base_url: upstream.to_string(),
        ..ProxyConfig::default()
    };
    config.engine.retry = RetryPolicy {
        backoff_base_ms: 5,
        backoff_max_ms: 20,
        ..RetryPolicy::default()
    };
    config.engine.attempt_timeout_ms = 10_000;
    config.refresh_interval = Duration::from_millis(100);
    config.log_batch_size = 10;
    config
}

impl Harness {
    pub async fn start(keys: &[String]) -> Self {
        Self::start_with(keys, |_| {}).await
    }

    pub async fn start_with(keys: &[String], tweak: impl FnOnce(&mut ProxyConfig)) -> Self {
        Self::start_serving(keys, tweak, ConnectionLimits::default()).await
    }

    /// A proxy whose upstream keys all have `key_limits`.
    pub async fn start_limited(keys: &[String], key_limits: KeyLimits) -> Self {
        Self::start_full(keys, &key_limits, |_| {}, ConnectionLimits::default()).await
    }

    /// A proxy behind the binaries' listener with these connection limits.
    pub async fn start_serving(
        keys: &[String],
        tweak: impl FnOnce(&mut ProxyConfig),
        limits: ConnectionLimits,
    ) -> Self {
        Self::start_full(keys, &KeyLimits::default(), tweak, limits).await
    }

    async fn start_full(
        keys: &[String],
        key_limits: &KeyLimits,
        tweak: impl FnOnce(&mut ProxyConfig),
        limits: ConnectionLimits,
    ) -> Self {
        let fake = FakeGemini::start().await.expect("fake gemini starts");
        let store = Arc::new(SqliteStore::open_in_memory().expect("store opens"));
        for (i, secret) in keys.iter().enumerate() {
            store
                .add_key_with_limits(secret, &format!("key{i}"), key_limits)
                .await
                .expect("key added");
        }
        let proxy_key = format_proxy_key(&[0x5a; 24]);
        store
            .create_proxy_key("tests", &hash_proxy_key(&proxy_key))
            .await
            .expect("proxy key created");
        let mut config = test_config(&fake.base_url());
        tweak(&mut config);
        let runtime = ProxyRuntime::start(store.clone(), store.clone(), config)
            .await
            .expect("proxy starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let app = proxy_router(runtime.state());
        let (stop, stopped) = oneshot::channel::<()>();
        let state = runtime.state();
        let server = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            serve_with_limits(listener, app, limits, shutdown, || state.cut_at_shutdown()).await
        });
        Self {
            fake,
            store,
            base,
            proxy_key,
            upstream_keys: keys.to_vec(),
            http: reqwest::Client::new(),
            runtime: Some(runtime),
            server,
            stop: Some(stop),
        }
    }

    /// Where `GET /metrics` listens with `--metrics-listen`.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.runtime.as_ref().expect("running").metrics_addr()
    }

    /// The running proxy's shared state.
    pub fn runtime_state(&self) -> Arc<proxy_axum::ProxyState> {
        self.runtime.as_ref().expect("running").state()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POSTs JSON to a Gemini path with the proxy key in `x-goog-api-key`.
    pub async fn post(&self, path: &str, body: &str) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header("x-goog-api-key", &self.proxy_key)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("proxy answers")
    }

    pub async fn generate(&self, model: &str) -> reqwest::Response {
        self.post(
            &format!("/v1beta/models/{model}:generateContent"),
            r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#,
        )
        .await
    }

    /// Waits until the stored records satisfy `check` (they are written in the
    /// background, in batches), then returns them oldest first.
    pub async fn logs_where(&self, check: impl Fn(&[LogRecord]) -> bool) -> Vec<LogRecord> {
        for _ in 0..500 {
            let query = LogQuery {
                limit: 1000,
                ..LogQuery::default()
            };
            let mut records = self.store.list_logs(&query).await.expect("logs readable");
            records.reverse();
            if check(&records) {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the log records never reached the expected condition");
    }

    /// Waits until at least `count` log records are stored (they are written in the
    /// background), then returns them oldest first.
    pub async fn logs(&self, count: usize) -> Vec<LogRecord> {
        for _ in 0..500 {
            let query = LogQuery {
                limit: 1000,
                ..LogQuery::default()
            };
            let mut records = self.store.list_logs(&query).await.expect("logs readable");
            if records.len() >= count {
                records.reverse();
                return records;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("fewer than {count} log records were written");
    }

    /// Sends generateContent until it answers `status` (background refreshes make
    /// store changes visible within a few intervals); returns the last status seen.
    pub async fn generate_until(&self, status: u16) -> u16 {
        let mut seen = 0;
        for _ in 0..100 {
            seen = self.generate(FLASH).await.status().as_u16();
            if seen == status {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        seen
    }

    /// Waits until `check` holds for the stored key rows (state is persisted in the
    /// background).
    pub async fn wait_keys(&self, check: impl Fn(&[KeyRow]) -> bool) -> Vec<KeyRow> {
        for _ in 0..500 {
            let rows = self.store.list_keys().await.expect("keys readable");
            if check(&rows) {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("key state never reached the expected condition");
    }

    /// The upstream keys fake Gemini saw, in order.
    pub fn keys_used(&self) -> Vec<String> {
        self.fake
            .requests()
            .into_iter()
            .filter_map(|r| r.api_key)
            .collect()
    }

    pub fn key_index(&self, secret: &str) -> usize {
        self.upstream_keys
            .iter()
            .position(|k| k == secret)
            .expect("known key")
    }

    /// The stored key rows once every queued key-state change is written. Key state has
    /// its own batch writer, so a log row arriving says nothing about a mark still in
    /// that queue: stopping the proxy flushes both writers, and a wrong mark shows.
    pub async fn settled_key_rows(self) -> Vec<KeyRow> {
        let store = self.shutdown().await;
        store.list_keys().await.expect("keys readable")
    }

    /// Stops the server and flushes logs, as graceful shutdown does.
    pub async fn shutdown(self) -> Arc<SqliteStore> {
        self.stop_serving().await.store
    }

    /// SIGTERM's path: stop accepting, wait for in-flight requests up to the grace,
    /// cut the rest, then flush the writers.
    pub async fn stop_serving(mut self) -> Stop {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let stopped = (&mut self.server)
            .await
            .expect("server task")
            .expect("server ends cleanly");
        let dropped_logs = match self.runtime.take() {
            Some(runtime) => runtime.shutdown().await,
            None => 0,
        };
        Stop {
            stopped,
            dropped_logs,
            store: self.store.clone(),
        }
    }
}

/// What stopping a harness reported.
pub struct Stop {
    pub stopped: Stopped,
    pub dropped_logs: u64,
    pub store: Arc<SqliteStore>,
}
