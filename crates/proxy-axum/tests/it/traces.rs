//! `--otlp-endpoint` seen by a collector: a real OTLP/HTTP receiver on port 0 decodes
//! the protobuf batches the exporter posts to `/v1/traces` and finds one span per
//! request with a child per upstream attempt, the GenAI attributes, the client's
//! `traceparent` continued (and its "not sampled" respected), and no secret.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode as SpanStatus};
use prost::Message;

use crate::harness::{FLASH, Harness, key};

#[derive(Clone, Default)]
struct Collector {
    /// Every batch as posted (for the secret check) and decoded.
    raw: Arc<Mutex<Vec<Bytes>>>,
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

async fn traces(State(c): State<Collector>, headers: HeaderMap, body: Bytes) -> (StatusCode, Vec<u8>) {
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/x-protobuf") {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new());
    }
    let Ok(request) = ExportTraceServiceRequest::decode(body.clone()) else {
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    c.raw.lock().unwrap_or_else(|p| p.into_inner()).push(body);
    let mut spans = c.spans.lock().unwrap_or_else(|p| p.into_inner());
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| text(a.value.as_ref()))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            spans.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
        }
    }
    (
        StatusCode::OK,
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

async fn collector() -> (Collector, String) {
    let c = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .with_state(c.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (c, base)
}

fn text(value: Option<&AnyValue>) -> Option<String> {
    match value?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn attribute<'a>(span: &'a Span, name: &str) -> Option<&'a any_value::Value> {
    span.attributes
        .iter()
        .find(|a| a.key == name)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
}

fn int(span: &Span, name: &str) -> Option<i64> {
    match attribute(span, name)? {
        any_value::Value::IntValue(n) => Some(*n),
        _ => None,
    }
}

fn string(span: &Span, name: &str) -> Option<String> {
    match attribute(span, name)? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_a_span_with_a_child_per_attempt_continuing_the_clients_trace() {
    let (collector, endpoint) = collector().await;
    let keys = [key("m-r429m-"), key("good")];
    let h = Harness::start_with(&keys, |config| {
        config.otlp_endpoint = Some(endpoint);
        config.otlp_service_name = "proxy-under-test".into();
    })
    .await;
    let traced = h
        .http
        .post(h.url(&format!("/v1beta/models/{FLASH}:generateContent")))
        .header("x-goog-api-key", &h.proxy_key)
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .body(r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#)
        .send()
        .await
        .expect("answers");
    assert_eq!(traced.status(), 200);
    let unsampled = h
        .http
        .post(h.url(&format!("/v1beta/models/{FLASH}:generateContent")))
        .header("x-goog-api-key", &h.proxy_key)
        .header(
            "traceparent",
            "00-11111111111111111111111111111111-2222222222222222-00",
        )
        .body(r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#)
        .send()
        .await
        .expect("answers");
    assert_eq!(unsampled.status(), 200);
    let fresh = h.generate("gemini-2.5-pro").await;
    assert_eq!(fresh.status(), 200);
    let proxy_key = h.proxy_key.clone();
    // The shutdown exports what is queued: no waiting on the batch timer.
    h.shutdown().await;

    let spans = collector.spans.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(spans.iter().all(|(service, _)| service == "proxy-under-test"));
    let spans: Vec<Span> = spans.into_iter().map(|(_, s)| s).collect();
    assert!(
        spans
            .iter()
            .all(|s| hex(&s.trace_id) != "11111111111111111111111111111111"),
        "the client said not sampled"
    );

    let in_trace: Vec<&Span> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == CLIENT_TRACE)
        .collect();
    let request = in_trace
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .expect("the request's span, in the client's trace");
    assert_eq!(
        hex(&request.parent_span_id),
        CLIENT_SPAN,
        "the client's span is its parent"
    );
    assert_eq!(request.name, format!("generate_content {FLASH}"));
    assert_eq!(string(request, "gen_ai.system").as_deref(), Some("gcp.gemini"));
    assert_eq!(string(request, "gen_ai.request.model").as_deref(), Some(FLASH));
    assert_eq!(string(request, "gen_ai.response.model").as_deref(), Some(FLASH));
    assert_eq!(
        int(request, "gen_ai.usage.input_tokens"),
        Some(fake_gemini::PROMPT_TOKENS as i64)
    );
    assert_eq!(
        int(request, "gen_ai.usage.output_tokens"),
        Some(fake_gemini::CANDIDATE_TOKENS as i64)
    );
    assert_eq!(int(request, "http.response.status_code"), Some(200));
    assert_eq!(int(request, "gemini_proxy.attempts"), Some(2));
    assert!(request.end_time_unix_nano >= request.start_time_unix_nano);

    let mut attempts: Vec<&Span> = in_trace
        .iter()
        .copied()
        .filter(|s| s.kind == SpanKind::Client as i32)
        .collect();
    attempts.sort_by_key(|s| int(s, "gemini_proxy.attempt"));
    assert_eq!(attempts.len(), 2, "one child per upstream attempt");
    for attempt in &attempts {
        assert_eq!(attempt.parent_span_id, request.span_id);
        assert!(attempt.start_time_unix_nano >= request.start_time_unix_nano);
        assert!(attempt.end_time_unix_nano <= request.end_time_unix_nano);
        assert!(attempt.start_time_unix_nano <= attempt.end_time_unix_nano);
    }
    assert!(attempts[0].end_time_unix_nano <= attempts[1].start_time_unix_nano);
    assert_eq!(
        string(attempts[0], "gemini_proxy.outcome").as_deref(),
        Some("rate_limited")
    );
    assert_eq!(int(attempts[0], "http.response.status_code"), Some(429));
    let status = attempts[0].status.as_ref().map(|s| s.code);
    assert_eq!(status, Some(SpanStatus::Error as i32));
    assert_eq!(string(attempts[1], "gemini_proxy.outcome").as_deref(), Some("ok"));
    let (first_key, second_key) = (
        int(attempts[0], "gemini_proxy.key_id"),
        int(attempts[1], "gemini_proxy.key_id"),
    );
    assert!(first_key.is_some() && second_key.is_some() && first_key != second_key);
    assert_eq!(int(request, "gemini_proxy.key_id"), second_key);

    let own = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32 && s.name == "generate_content gemini-2.5-pro")
        .expect("a request without traceparent starts its own trace");
    assert!(own.parent_span_id.is_empty());
    assert_ne!(hex(&own.trace_id), CLIENT_TRACE);

    for batch in collector.raw.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        for secret in keys.iter().chain([&proxy_key]) {
            let found = batch.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "a secret in an exported span");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_is_an_error_span_without_attempts() {
    let (collector, endpoint) = collector().await;
    let h = Harness::start_with(&[key("good")], |config| config.otlp_endpoint = Some(endpoint)).await;
    let refused = h
        .http
        .post(h.url(&format!("/v1beta/models/{FLASH}:generateContent")))
        .header("x-goog-api-key", "not-a-proxy-key")
        .body("{}")
        .send()
        .await
        .expect("answers");
    assert_eq!(refused.status(), 401);
    h.shutdown().await;
    let spans = collector.spans.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let (_, span) = spans
        .iter()
        .find(|(_, s)| int(s, "http.response.status_code") == Some(401))
        .expect("the refusal is traced");
    assert_eq!(
        span.status.as_ref().map(|s| s.code),
        Some(SpanStatus::Error as i32)
    );
    assert!(string(span, "error.type").is_some());
    assert!(
        spans.iter().all(|(_, s)| s.parent_span_id != span.span_id),
        "no attempt"
    );
}

/// fake-gemini is also an OTLP/HTTP sink (the bench's): the exporter's batches reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fakes_trace_sink_takes_the_batches() {
    let sink = fake_gemini::FakeGemini::start().await.expect("sink starts");
    let endpoint = sink.base_url();
    let h = Harness::start_with(&[key("good")], |config| config.otlp_endpoint = Some(endpoint)).await;
    assert_eq!(h.generate(FLASH).await.status(), 200);
    h.shutdown().await;
    assert!(sink.otlp_batches() >= 1, "the shutdown exported the queued spans");
}
