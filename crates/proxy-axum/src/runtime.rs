//! Starting and stopping the proxy: load the pool, spawn the background writers and
//! the refresher, hand out the shared state the router serves from.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use proxy_core::Engine;
use proxy_core::alerts::AlertEvent;
use proxy_core::auth::ProxyKeyTable;
use proxy_core::governance::Governor;
use proxy_core::health::{Health, HealthInput, LimitSharing, PlatformCounts};
use proxy_core::key_check::KeyCheck;
use proxy_core::keys::KeyId;
use proxy_core::log::LogRecord;
use proxy_core::log_chain::LogChain;
use proxy_core::mark_guard::MarkingSuspended;
use proxy_core::platform::{KeySnapshot, KeyStore, LogSink, StoreError};
use proxy_core::pool::{KeyPool, StateChange};
use proxy_core::request::{RefusalSampler, RequestIds};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::alerts::{AlertHandle, Alerter, Delivery};
use crate::batcher::{BatchQueue, BatchWriter};
use crate::body::BodyBudget;
use crate::clock::{TokioClock, unix_ms};
use crate::config::ProxyConfig;
use crate::metrics::{Metrics, RecordSink, Scrape};
use crate::refresh::refresh_loop;
use crate::router::metrics_router;
use crate::shared_cache::{CacheSharing, SharedCache};
use crate::shared_counts::{SharedCounts, SharingStatus};
use crate::traces::Traces;
use crate::upstream::HyperUpstream;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot read keys from the store: {0}")]
    Store(StoreError),
    #[error("cannot build the upstream HTTP client: {0}")]
    Client(String),
    #[error("cannot share limits: {0}")]
    Redis(String),
    #[error("the metrics could not be set up: {0}")]
    Metrics(String),
    #[error("cannot send alerts: {0}")]
    Alerts(String),
    #[error("cannot export traces: {0}")]
    Traces(String),
    #[error("cannot listen for metrics on {0}: {1}")]
    MetricsListen(SocketAddr, std::io::Error),
}

/// Everything a request needs, shared by all requests.
pub struct ProxyState {
    pub(crate) engine: Engine<HyperUpstream, TokioClock>,
    proxy_keys: RwLock<Arc<ProxyKeyTable>>,
    /// Finished records: counted in the metrics, queued for the store.
    pub(crate) records: RecordSink,
    pub(crate) state_changes: BatchQueue<StateChange>,
    pub(crate) config: ProxyConfig,
    pub(crate) ids: RequestIds,
    pub(crate) refusals: RefusalSampler,
    /// Memory for the request bodies being read and served, shared by all requests.
    pub(crate) body_budget: BodyBudget,
    /// The refresher's last read of the store failed.
    store_unreachable: AtomicBool,
    /// Set when the shutdown grace ran out: requests dropped from now on were cut by
    /// the server, not left by their client.
    cut: Arc<AtomicBool>,
    /// Where limits are counted, when they are shared (else per instance).
    sharing: Option<SharingStatus>,
    /// What the cache's sharing did, when it is shared (else per instance).
    cache_sharing: Option<CacheSharing>,
    /// With `--alert-webhook`: where key marks are told.
    alerts: Option<AlertHandle>,
}

impl ProxyState {
    /// What sharing the response cache did so far (`None` when it is not shared).
    pub fn cache_sharing(&self) -> Option<CacheSharing> {
        self.cache_sharing.clone()
    }

    /// The client of a request from `peer`: the address a trusted reverse proxy
    /// reports in `X-Forwarded-For` (`--trusted-proxy`), else the peer.
    pub fn client_ip(&self, peer: std::net::IpAddr, headers: &axum::http::HeaderMap) -> std::net::IpAddr {
        if self.config.trusted_proxies.is_empty() {
            return peer;
        }
        // Several headers are one list, in order.
        let forwarded: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        self.config
            .trusted_proxies
            .client(peer, Some(&forwarded.join(",")))
    }

    /// The metrics as Prometheus text (`GET /metrics`).
    pub fn metrics_text(&self) -> String {
        let keys = self
            .engine
            .pool()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .statuses();
        self.records.metrics.render(&Scrape {
            keys: &keys,
            now_ms: unix_ms(),
            log_queue_depth: self.records.logs.depth(),
            dropped_log_records: self.dropped_logs(),
        })
    }

    /// Answers in this instance's response cache, and their bytes.
    pub fn cache_usage(&self) -> (usize, usize) {
        self.engine.resilience().cache().usage()
    }

    pub(crate) fn proxy_keys(&self) -> Arc<ProxyKeyTable> {
        self.proxy_keys
            .read()
            .map_or_else(|p| p.into_inner().clone(), |t| t.clone())
    }

    /// Replaces keys and proxy keys with a fresh snapshot from the store.
    pub(crate) fn apply_snapshot(&self, snapshot: KeySnapshot) {
        let table = Arc::new(ProxyKeyTable::new(snapshot.proxy_keys));
        match self.proxy_keys.write() {
            Ok(mut current) => *current = table,
            Err(poisoned) => *poisoned.into_inner() = table,
        }
        let mut pool = self.engine.pool().lock().unwrap_or_else(|p| p.into_inner());
        let invalid_before = pool.invalid_ids();
        pool.sync(snapshot.keys);
        if let Some(alerts) = &self.alerts {
            let invalid_now = pool.invalid_ids();
            for key_id in invalid_before.into_iter().filter(|id| !invalid_now.contains(id)) {
                // A key gone from the store is not back.
                if let Some(masked) = pool.masked_of(key_id) {
                    alerts.raise(AlertEvent::KeyBack { key_id }, Some(masked));
                }
            }
        }
    }

    /// Queues what the attempts taught about keys for the store; a key marked invalid
    /// is told to the operator (`--alert-webhook`).
    pub(crate) fn learned(&self, changes: Vec<StateChange>) {
        for change in changes {
            if let (Some(alerts), StateChange::Invalid { key_id, reason }) = (&self.alerts, &change) {
                let masked = self
                    .engine
                    .pool()
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .masked_of(*key_id);
                let event = AlertEvent::KeyInvalid {
                    key_id: *key_id,
                    reason: reason.clone(),
                };
                alerts.raise(event, masked);
            }
            self.state_changes.submit(change);
        }
    }

    /// Requests waiting for a key now (`--queue-wait-secs`).
    pub fn queued(&self) -> usize {
        self.engine.resilience().queue().len()
    }

    /// Hands a finished record to the log writer, its latency measured now.
    pub(crate) fn log(&self, mut record: LogRecord) {
        record.close(unix_ms());
        self.records.submit(record);
    }

    /// Marks every request still running as cut by the shutdown (the listener calls
    /// this just before it drops them).
    pub fn cut_at_shutdown(&self) {
        self.cut.store(true, Ordering::Release);
    }

    /// What the answers' bodies read to tell a cut from a client leaving.
    pub(crate) fn cut_flag(&self) -> Arc<AtomicBool> {
        self.cut.clone()
    }

    pub(crate) fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Acquire)
    }

    pub(crate) fn set_store_unreachable(&self, unreachable: bool) {
        self.store_unreachable.store(unreachable, Ordering::Relaxed);
    }

    /// Re-checks one upstream key with a cheap upstream call; an invalid verdict is
    /// already in the pool when this returns (the caller persists `change`).
    pub async fn check_key(&self, key_id: KeyId) -> Option<KeyCheck> {
        self.engine.check_key(key_id).await
    }

    /// Set while the pool refuses invalid marks after a burst of them (the keys keep
    /// serving); `/healthz` can report it.
    pub fn marking_suspended(&self, now_ms: u64) -> Option<MarkingSuspended> {
        let pool = self.engine.pool().lock().unwrap_or_else(|p| p.into_inner());
        pool.marking_suspended(now_ms)
    }

    /// Bytes of request bodies held in memory now.
    pub fn body_memory_in_use(&self) -> usize {
        self.body_budget.in_use_bytes()
    }

    /// Log records dropped because the writer could not keep up.
    pub fn dropped_logs(&self) -> u64 {
        self.records.logs.dropped()
    }

    /// The `/healthz` answer (the core's, as on every platform).
    pub fn health(&self) -> Health {
        let now = unix_ms();
        let counts = PlatformCounts {
            proxy_keys: self.proxy_keys().len(),
            dropped_log_records: self.dropped_logs(),
            store_unreachable: self.store_unreachable.load(Ordering::Relaxed),
            refusals: self.refusals.counts(),
            limits: self
                .sharing
                .as_ref()
                .map_or(LimitSharing::Local, SharingStatus::get),
            unpriced_models: self.engine.governor().unpriced_models(),
        };
        Health::of(HealthInput::gather(&self.engine, counts, now), now)
    }
}

/// A running proxy: its state plus the background tasks to stop on shutdown.
pub struct ProxyRuntime {
    state: Arc<ProxyState>,
    log_writer: BatchWriter,
    state_writer: BatchWriter,
    refresher: JoinHandle<()>,
    stop_refresh: Arc<Notify>,
    store_changed: Arc<Notify>,
    shared_counts: Option<SharedCounts>,
    shared_cache: Option<SharedCache>,
    /// `--metrics-listen`: the metrics' own listener, its address and its stop.
    metrics_server: Option<(SocketAddr, JoinHandle<()>, Arc<Notify>)>,
    alerter: Option<Alerter>,
    traces: Option<Arc<Traces>>,
}

impl ProxyRuntime {
    /// Loads the key set once (failing clearly if the store cannot be read) and starts
    /// the background tasks. `store` serves keys; `sink` takes logs.
    pub async fn start(
        store: Arc<dyn KeyStore>,
        sink: Arc<dyn LogSink>,
        config: ProxyConfig,
    ) -> Result<Self, StartError> {
        let snapshot = store.load().await.map_err(StartError::Store)?;
        let upstream = HyperUpstream::new(&config.upstream_base_url, config.connect_timeout)
            .map_err(|e| StartError::Client(e.to_string()))?;
        let pool = Arc::new(Mutex::new(KeyPool::new(Vec::new())));
        let governor = Arc::new(Governor::new(config.prices.clone()));
        let shared_counts = match &config.redis_url {
            Some(url) => Some(
                SharedCounts::spawn(governor.clone(), url, &config.redis_prefix)
                    .map_err(StartError::Redis)?,
            ),
            None => None,
        };
        let engine = Engine::new(pool, upstream, TokioClock, config.engine.clone()).with_governor(governor);
        let cache = engine.resilience().cache();
        let shared_cache = match &config.redis_url {
            Some(url) if cache.is_on() => Some(
                SharedCache::spawn(cache.clone(), url, &config.redis_prefix).map_err(StartError::Redis)?,
            ),
            _ => None,
        };
        let (logs, log_writer) = spawn_log_writer(sink, &config);
        let metrics =
            Arc::new(Metrics::new(config.prices.clone()).map_err(|e| StartError::Metrics(e.to_string()))?);
        let (alerter, alerts) = match config.alert_webhooks.is_empty() {
            true => (None, None),
            false => {
                let delivery = Delivery {
                    urls: config.alert_webhooks.clone(),
                    backoff: config.alert_backoff,
                };
                let (alerter, handle) = Alerter::spawn(delivery, logs.clone()).map_err(StartError::Alerts)?;
                (Some(alerter), Some(handle))
            }
        };
        let traces = match &config.otlp_endpoint {
            Some(endpoint) => Some(Arc::new(
                Traces::start(endpoint, &config.otlp_service_name).map_err(StartError::Traces)?,
            )),
            None => None,
        };
        let records = RecordSink {
            logs,
            metrics,
            alerts: alerts.clone(),
            traces: traces.clone(),
        };
        let (state_changes, state_writer) = spawn_state_writer(store.clone());
        let body_budget = BodyBudget::new(config.body_memory_bytes);
        let state = Arc::new(ProxyState {
            engine,
            proxy_keys: RwLock::new(Arc::new(ProxyKeyTable::default())),
            records,
            state_changes,
            config,
            ids: RequestIds::new(std::process::id() ^ (unix_ms() as u32)),
            refusals: RefusalSampler::default(),
            body_budget,
            store_unreachable: AtomicBool::new(false),
            cut: Arc::new(AtomicBool::new(false)),
            sharing: shared_counts.as_ref().map(SharedCounts::status),
            cache_sharing: shared_cache.as_ref().map(SharedCache::counts),
            alerts,
        });
        state.apply_snapshot(snapshot);
        let metrics_server = match state.config.metrics_listen {
            Some(addr) => Some(serve_metrics(addr, state.clone()).await?),
            None => None,
        };
        let stop_refresh = Arc::new(Notify::new());
        let store_changed = Arc::new(Notify::new());
        let refresher = tokio::spawn(refresh_loop(
            state.clone(),
            store,
            stop_refresh.clone(),
            store_changed.clone(),
        ));
        Ok(Self {
            state,
            log_writer,
            state_writer,
            refresher,
            stop_refresh,
            store_changed,
            shared_counts,
            shared_cache,
            metrics_server,
            alerter,
            traces,
        })
    }

    pub fn state(&self) -> Arc<ProxyState> {
        self.state.clone()
    }

    /// Where `GET /metrics` listens with `--metrics-listen` (the bound address).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_server.as_ref().map(|(addr, _, _)| *addr)
    }

    /// Notify this to refresh the key pool now (the store announced a change).
    pub fn store_changed(&self) -> Arc<Notify> {
        self.store_changed.clone()
    }

    /// Stops refreshing and flushes queued key state and logs. Call after the server
    /// stopped accepting and in-flight requests ended, so their records are included.
    /// Returns how many log records were dropped since start (never written).
    pub async fn shutdown(self) -> u64 {
        self.stop_refresh.notify_one();
        if let Err(error) = self.refresher.await {
            tracing::warn!(%error, "refresher ended abnormally");
        }
        self.state_writer.shutdown().await;
        self.log_writer.shutdown().await;
        if let Some(shared) = self.shared_counts {
            shared.shutdown().await;
        }
        if let Some(shared) = self.shared_cache {
            shared.shutdown().await;
        }
        if let Some(alerter) = self.alerter {
            alerter.shutdown().await;
        }
        // After the log writer: every record, and so every span, has been made.
        if let Some(traces) = &self.traces {
            traces.shutdown().await;
        }
        if let Some((_, task, stop)) = self.metrics_server {
            stop.notify_one();
            if let Err(error) = task.await {
                tracing::warn!(%error, "the metrics listener ended abnormally");
            }
        }
        let dropped = self.state.dropped_logs();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "log records were dropped because the store could not keep up"
            );
        }
        dropped
    }
}

/// The request-log writer. It links every record into its hash chain
/// (`proxy_core::log_chain`) as it writes it, once: a batch written again after a
/// failure keeps its links.
fn spawn_log_writer(sink: Arc<dyn LogSink>, config: &ProxyConfig) -> (BatchQueue<LogRecord>, BatchWriter) {
    // Unique per writer: two instances (or two proxies in one process) never share a
    // chain.
    let writer = crate::clock::unique_id();
    let chain = Arc::new(Mutex::new(LogChain::new(writer)));
    BatchWriter::spawn(
        "request-log",
        config.log_queue_capacity,
        config.log_batch_size,
        config.log_batch_wait,
        move |mut batch: Vec<LogRecord>| {
            let sink = sink.clone();
            {
                let mut chain = chain.lock().unwrap_or_else(|p| p.into_inner());
                let now = unix_ms();
                batch.iter_mut().for_each(|record| chain.link(record, now));
            }
            async move {
                let result = sink.write_logs(&batch).await;
                (batch, result)
            }
        },
    )
}

fn spawn_state_writer(store: Arc<dyn KeyStore>) -> (BatchQueue<StateChange>, BatchWriter) {
    BatchWriter::spawn(
        "key-state",
        10_000,
        100,
        std::time::Duration::ZERO,
        move |batch| {
            let store = store.clone();
            async move {
                let result = store.save_state(&batch).await;
                (batch, result)
            }
        },
    )
}

/// Serves `GET /metrics` alone on `addr` until told to stop.
async fn serve_metrics(
    addr: SocketAddr,
    state: Arc<ProxyState>,
) -> Result<(SocketAddr, JoinHandle<()>, Arc<Notify>), StartError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| StartError::MetricsListen(addr, e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| StartError::MetricsListen(addr, e))?;
    tracing::info!(%bound, "metrics on http://{bound}/metrics");
    let stop = Arc::new(Notify::new());
    let stopping = stop.clone();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, metrics_router(state))
            .with_graceful_shutdown(async move { stopping.notified().await })
            .await;
        if let Err(error) = served {
            tracing::warn!(%error, "the metrics listener failed");
        }
    });
    Ok((bound, task, stop))
}
