//! Traces over OTLP/HTTP (`--otlp-endpoint`): each finished record becomes one span
//! for the request and one child per upstream attempt, as the core describes them
//! (`proxy_core::trace`), continuing the client's `traceparent`.
//!
//! Nothing is traced while a request runs: the spans are built from its record when
//! it is queued, with the times the engine took, and the SDK's batch processor
//! exports them from a thread of its own. The exporter's HTTP calls run on the
//! proxy's tokio runtime through its reqwest client ([`OtlpClient`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use opentelemetry::trace::{
    Span, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
    TracerProvider as _,
};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use proxy_core::log::LogRecord;
use proxy_core::trace::{self as core_trace, Attributes, TraceParent};

use crate::clock::monotonic_us;

/// How long one export may take before it is given up.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The OTLP/HTTP path for traces, appended to a base endpoint as the OpenTelemetry
/// specification does for `OTEL_EXPORTER_OTLP_ENDPOINT`.
const TRACES_PATH: &str = "/v1/traces";

/// Where traces go: the OTLP/HTTP URL for `endpoint` (a base URL, or one already
/// ending in `/v1/traces`).
pub fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    match base.ends_with(TRACES_PATH) {
        true => base.to_string(),
        false => format!("{base}{TRACES_PATH}"),
    }
}

/// The running trace pipeline.
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl Traces {
    /// Starts exporting to `endpoint` (see [`traces_url`]) as `service_name`. Must be
    /// called on the tokio runtime the exports should run on.
    pub fn start(endpoint: &str, service_name: &str) -> Result<Self, String> {
        let url = traces_url(endpoint);
        let host = reqwest::Url::parse(&url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .ok_or_else(|| format!("the OTLP endpoint {endpoint:?} is not an http(s) URL"))?;
        let http = reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        let client = OtlpClient {
            http,
            runtime: tokio::runtime::Handle::current(),
            host,
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(EXPORT_TIMEOUT)
            .with_http_client(client)
            .build()
            .map_err(|e| e.to_string())?;
        let resource = Resource::builder()
            .with_service_name(service_name.to_string())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("gemini-proxy");
        Ok(Self { provider, tracer })
    }

    /// Turns a finished record into its spans (ended: the batch processor takes them).
    pub fn record(&self, record: &LogRecord) {
        let parent = match record.trace_parent {
            Some(parent) => Context::new().with_remote_span_context(remote(parent)),
            None => Context::new(),
        };
        let clock = WallClock::now();
        let started = match record.arrived_us {
            0 => UNIX_EPOCH + Duration::from_millis(record.started_at_ms),
            arrived => clock.at(arrived),
        };
        let mut span = self
            .tracer
            .span_builder(core_trace::span_name(&record.route, record.model.as_deref()))
            .with_kind(SpanKind::Server)
            .with_start_time(started)
            .with_attributes(key_values(core_trace::request_attributes(record)))
            .start_with_context(&self.tracer, &parent);
        if core_trace::request_failed(record) {
            let why = record
                .error_kind
                .clone()
                .unwrap_or_else(|| format!("HTTP {}", record.status));
            span.set_status(Status::error(why));
        }
        let request = parent.with_span(span);
        for (index, attempt) in record.attempt_spans.iter().enumerate() {
            let mut child = self
                .tracer
                .span_builder(core_trace::span_name(&record.route, Some(&attempt.model)))
                .with_kind(SpanKind::Client)
                .with_start_time(clock.at(attempt.began_us))
                .with_attributes(key_values(core_trace::attempt_attributes(
                    record,
                    attempt,
                    index + 1,
                )))
                .start_with_context(&self.tracer, &request);
            if attempt.outcome != "ok" {
                child.set_status(Status::error(attempt.outcome));
            }
            child.end_with_timestamp(clock.at(attempt.ended_us));
        }
        request.span().end_with_timestamp(clock.wall);
    }

    /// Exports what is still queued, then stops.
    pub async fn shutdown(&self) {
        let provider = self.provider.clone();
        // The SDK's shutdown blocks until its thread exported, and the export runs on
        // this runtime: never block one of its workers on it.
        let stopped = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        match stopped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "traces still queued could not be exported"),
            Err(error) => tracing::warn!(%error, "the trace exporter ended abnormally"),
        }
    }
}

/// The client's span, as the parent of the request's.
fn remote(parent: TraceParent) -> SpanContext {
    let flags = match parent.sampled {
        true => TraceFlags::SAMPLED,
        false => TraceFlags::default(),
    };
    SpanContext::new(
        TraceId::from_bytes(parent.trace_id),
        SpanId::from_bytes(parent.parent_span_id),
        flags,
        true,
        TraceState::default(),
    )
}

/// Monotonic microseconds as wall-clock times, read once per record.
struct WallClock {
    wall: SystemTime,
    monotonic_us: u64,
}

impl WallClock {
    fn now() -> Self {
        Self {
            wall: SystemTime::now(),
            monotonic_us: monotonic_us(),
        }
    }

    fn at(&self, monotonic_us: u64) -> SystemTime {
        let ago = Duration::from_micros(self.monotonic_us.saturating_sub(monotonic_us));
        self.wall.checked_sub(ago).unwrap_or(self.wall)
    }
}

fn key_values(attributes: Attributes) -> Vec<KeyValue> {
    attributes
        .into_iter()
        .map(|(name, value)| {
            let value = match value {
                core_trace::Value::Str(s) => Value::from(s),
                core_trace::Value::Int(n) => Value::I64(n),
                core_trace::Value::Bool(b) => Value::Bool(b),
                core_trace::Value::Strs(list) => {
                    Value::Array(Array::String(list.into_iter().map(StringValue::from).collect()))
                }
            };
            KeyValue::new(name, value)
        })
        .collect()
}

/// The exporter's HTTP client: the proxy's reqwest, run on the proxy's runtime (the
/// batch processor calls from a thread of its own, outside any runtime).
#[derive(Debug)]
struct OtlpClient {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
    /// The collector's host, for the log (its URL may carry credentials).
    host: String,
}

#[async_trait]
impl HttpClient for OtlpClient {
    async fn send_bytes(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpError> {
        let http = self.http.clone();
        let (parts, body) = request.into_parts();
        let sending = async move {
            let response = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            let mut answer = http::Response::new(body);
            *answer.status_mut() = status;
            *answer.headers_mut() = headers;
            Ok::<_, reqwest::Error>(answer)
        };
        let answer = match self.runtime.spawn(sending).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(error)) => {
                // reqwest's text names the URL: the host alone goes in the log.
                let why = if error.is_timeout() {
                    "timed out"
                } else {
                    "unreachable"
                };
                tracing::warn!(host = %self.host, "the trace collector is {why}");
                return Err(format!("the trace collector at {} is {why}", self.host).into());
            }
            Err(error) => return Err(Box::new(error)),
        };
        if !answer.status().is_success() {
            tracing::warn!(host = %self.host, status = answer.status().as_u16(), "the trace collector refused a batch");
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_appended_once() {
        assert_eq!(
            traces_url("http://collector:4318"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://otel.example/v1/traces"),
            "https://otel.example/v1/traces"
        );
    }

    #[test]
    fn monotonic_times_map_onto_the_wall_clock() {
        let clock = WallClock {
            wall: UNIX_EPOCH + Duration::from_secs(1000),
            monotonic_us: 5_000_000,
        };
        assert_eq!(clock.at(4_000_000), UNIX_EPOCH + Duration::from_secs(999));
        assert_eq!(clock.at(6_000_000), clock.wall, "never after now");
    }
}
