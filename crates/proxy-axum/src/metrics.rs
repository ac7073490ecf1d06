//! `GET /metrics`: the proxy's Prometheus metrics, in one registry per running proxy.
//!
//! Requests, tokens, cost, durations and attempts are counted from each finished log
//! record as it is queued ([`RecordSink`]), so every request is counted once whatever
//! way it ended; key states, the log queue and dropped records are read when scraped.
//! Label values are bounded by the core's rules ([`proxy_core::telemetry`]): known
//! models or `other`, proxy keys by id.

use std::sync::Arc;

use prometheus::{
    CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use proxy_core::governance::prices::PriceTable;
use proxy_core::log::LogRecord;
use proxy_core::pool::KeyStatus;
use proxy_core::telemetry::{model_label, proxy_key_label, tokens_by_kind};

use crate::alerts::AlertHandle;
use crate::batcher::BatchQueue;
use crate::traces::Traces;

/// Seconds: from 5 ms to 10 minutes (thinking models answer in minutes).
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0, 600.0,
];
/// Seconds of the proxy's own time: from 25 µs to 100 ms.
const OVERHEAD_BUCKETS: [f64; 12] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
];

/// The proxy's metrics.
pub struct Metrics {
    registry: Registry,
    prices: PriceTable,
    requests: IntCounterVec,
    attempts: IntCounterVec,
    keys: IntGaugeVec,
    tokens: IntCounterVec,
    cost: CounterVec,
    duration: HistogramVec,
    ttfb: HistogramVec,
    overhead: HistogramVec,
    log_queue_depth: IntGauge,
    dropped: IntCounter,
    streams: IntGauge,
}

/// What the scrape reads from the running proxy.
pub struct Scrape<'a> {
    pub keys: &'a [KeyStatus],
    pub now_ms: u64,
    pub log_queue_depth: usize,
    pub dropped_log_records: u64,
}

impl Metrics {
    /// Every metric, registered in a registry of its own; `prices` decides which
    /// models get a label of their own.
    pub fn new(prices: PriceTable) -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("gemini_proxy".into()), None)?;
        let counter = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
            let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        };
        let histogram =
            |name: &str, help: &str, buckets: &[f64]| -> Result<HistogramVec, prometheus::Error> {
                let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
                let metric = HistogramVec::new(opts, &["route", "model"])?;
                registry.register(Box::new(metric.clone()))?;
                Ok(metric)
            };
        let requests = counter(
            "requests_total",
            "Requests answered, by route, model served, status and proxy key id.",
            &["route", "model", "status", "proxy_key"],
        )?;
        let attempts = counter(
            "upstream_attempts_total",
            "Calls to Google, by model and outcome (ok, empty, rate_limited, invalid_key, server_error, client_error, timeout, connect_error).",
            &["model", "outcome"],
        )?;
        let tokens = counter(
            "tokens_total",
            "Tokens Google reported, by model and kind (prompt, output, thinking, cached).",
            &["model", "kind"],
        )?;
        let cost = CounterVec::new(
            Opts::new(
                "cost_usd_total",
                "What the answers cost at the price table's prices, in USD.",
            ),
            &["model"],
        )?;
        registry.register(Box::new(cost.clone()))?;
        let keys = IntGaugeVec::new(
            Opts::new(
                "keys",
                "Upstream keys by state (healthy, cooling, invalid, disabled).",
            ),
            &["state"],
        )?;
        registry.register(Box::new(keys.clone()))?;
        let duration = histogram(
            "request_duration_seconds",
            "From the request's arrival to its answer's last byte.",
            &DURATION_BUCKETS,
        )?;
        let ttfb = histogram(
            "ttfb_seconds",
            "From the request's arrival to the answer's first byte.",
            &DURATION_BUCKETS,
        )?;
        let overhead = histogram(
            "overhead_seconds",
            "The proxy's own time until the answer's headers: without the body's upload, upstream's time, backoff and the queue.",
            &OVERHEAD_BUCKETS,
        )?;
        let log_queue_depth = IntGauge::new("log_queue_depth", "Log records waiting to be written.")?;
        registry.register(Box::new(log_queue_depth.clone()))?;
        let dropped = IntCounter::new(
            "log_records_dropped_total",
            "Log records dropped because the store could not keep up.",
        )?;
        registry.register(Box::new(dropped.clone()))?;
        let streams = IntGauge::new("streams_active", "Answers being streamed to clients now.")?;
        registry.register(Box::new(streams.clone()))?;
        Ok(Self {
            registry,
            prices,
            requests,
            attempts,
            keys,
            tokens,
            cost,
            duration,
            ttfb,
            overhead,
            log_queue_depth,
            dropped,
            streams,
        })
    }

    /// Counts a finished request.
    pub fn observe(&self, record: &LogRecord) {
        let model = model_label(record.serving_model(), &self.prices);
        let status = record.status.to_string();
        let proxy_key = proxy_key_label(record.proxy_key_id);
        self.requests
            .with_label_values(&[record.route.as_str(), model, &status, &proxy_key])
            .inc();
        for attempt in &record.attempt_spans {
            let attempt_model = model_label(Some(&attempt.model), &self.prices);
            self.attempts
                .with_label_values(&[attempt_model, attempt.outcome])
                .inc();
        }
        for (kind, count) in tokens_by_kind(record) {
            self.tokens.with_label_values(&[model, kind]).inc_by(count);
        }
        if let Some(cost) = record.cost_usd.filter(|c| *c > 0.0) {
            self.cost.with_label_values(&[model]).inc_by(cost);
        }
        let labels = [record.route.as_str(), model];
        self.duration
            .with_label_values(&labels)
            .observe(record.latency_ms as f64 / 1e3);
        if let Some(ttfb) = record.ttfb_ms {
            self.ttfb.with_label_values(&labels).observe(ttfb as f64 / 1e3);
        }
        if let Some(overhead) = record.overhead_us {
            self.overhead
                .with_label_values(&labels)
                .observe(overhead as f64 / 1e6);
        }
    }

    /// A stream began; the guard counts it until it is dropped.
    pub fn stream_started(&self) -> StreamGuard {
        self.streams.inc();
        StreamGuard(self.streams.clone())
    }

    /// The metrics as Prometheus text, with the scrape-time readings.
    pub fn render(&self, scrape: &Scrape<'_>) -> String {
        for state in ["healthy", "cooling", "invalid", "disabled"] {
            let count = scrape
                .keys
                .iter()
                .filter(|k| key_state(k, scrape.now_ms) == state)
                .count();
            self.keys.with_label_values(&[state]).set(count as i64);
        }
        self.log_queue_depth.set(scrape.log_queue_depth as i64);
        let seen = self.dropped.get();
        if scrape.dropped_log_records > seen {
            self.dropped.inc_by(scrape.dropped_log_records - seen);
        }
        let mut out = Vec::new();
        // Encoding into memory only fails on a metric family the registry itself built
        // wrong; an empty answer then says so to the scraper.
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(%error, "the metrics could not be encoded");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// A key's state as the `keys{state}` gauge counts it: disabled, invalid, cooling
/// (for any model now), or healthy.
fn key_state(key: &KeyStatus, now_ms: u64) -> &'static str {
    if !key.enabled {
        "disabled"
    } else if key.state.invalid_reason.is_some() {
        "invalid"
    } else if key.state.cooldowns.values().any(|until| *until > now_ms) {
        "cooling"
    } else {
        "healthy"
    }
}

/// Counts one active stream while it lives.
pub struct StreamGuard(IntGauge);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Where finished records go: counted in the metrics, traced, their alerts raised,
/// then queued for the store.
#[derive(Clone)]
pub struct RecordSink {
    pub(crate) logs: BatchQueue<LogRecord>,
    pub(crate) metrics: Arc<Metrics>,
    /// With `--alert-webhook`: where the record's alerts go.
    pub(crate) alerts: Option<AlertHandle>,
    /// With `--otlp-endpoint`: the record's spans.
    pub(crate) traces: Option<Arc<Traces>>,
}

impl RecordSink {
    pub fn submit(&self, mut record: LogRecord) {
        self.metrics.observe(&record);
        if let Some(traces) = &self.traces {
            traces.record(&record);
        }
        if let Some(alerts) = &self.alerts {
            for event in record.alerts.drain(..) {
                alerts.raise(event, None);
            }
        }
        self.logs.submit(record);
    }
}
