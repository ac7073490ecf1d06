//! What a trace says about a finished request, decided once for every platform that
//! exports traces: the client's W3C `traceparent` to continue, one span for the
//! request and one per upstream attempt, named and described by OpenTelemetry's
//! GenAI semantic conventions plus the proxy's own `gemini_proxy.*` attributes.
//!
//! The platform builds the spans from the finished [`LogRecord`] (off the request's
//! way: nothing is traced while the request runs) and exports them in batches.

use crate::hex;
use crate::keys::KeyId;
use crate::log::LogRecord;

/// `gen_ai.system` / `gen_ai.provider.name` for Google's Gemini API (AI Studio).
pub const GEN_AI_SYSTEM: &str = "gcp.gemini";

/// A W3C trace context's parent (`traceparent: 00-<trace id>-<parent id>-<flags>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub parent_span_id: [u8; 8],
    /// The caller recorded its span (flag `01`): a parent-based sampler follows it.
    pub sampled: bool,
}

impl TraceParent {
    /// Parses a `traceparent` header (lowercase hex: W3C forbids uppercase); `None`
    /// for anything the W3C rules reject (then
    /// the request starts a trace of its own). A future version's extra fields are
    /// ignored, as the rules ask.
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let version = hex::decode::<1>(parts.next()?)?[0];
        let trace_id = hex::decode::<16>(parts.next()?)?;
        let parent_span_id = hex::decode::<8>(parts.next()?)?;
        let flags = hex::decode::<1>(parts.next()?)?[0];
        let rest = parts.next();
        let valid = match version {
            0xff => false,
            0 => rest.is_none(),
            _ => true,
        };
        let zero = trace_id == [0; 16] || parent_span_id == [0; 8];
        (valid && !zero).then_some(Self {
            trace_id,
            parent_span_id,
            sampled: flags & 1 == 1,
        })
    }
}

/// One upstream attempt, timed on the platform's monotonic clock
/// ([`crate::platform::Clock::monotonic_us`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptSpan {
    pub model: String,
    pub key_id: KeyId,
    /// [`crate::classify::Outcome::metric_label`], or `empty` for an empty answer.
    pub outcome: &'static str,
    /// Upstream's status, when it answered.
    pub status: Option<u16>,
    pub began_us: u64,
    pub ended_us: u64,
}

/// An attribute's value, as OpenTelemetry types them.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Strs(Vec<String>),
}

pub type Attributes = Vec<(&'static str, Value)>;

/// `gen_ai.operation.name` for a route's log name.
pub fn operation_name(route: &str) -> &str {
    match route {
        "generateContent" | "streamGenerateContent" => "generate_content",
        "chat.completions" => "chat",
        "embedContent" | "batchEmbedContents" | "embeddings" => "embeddings",
        other => other,
    }
}

/// The GenAI conventions' span name: `{operation} {model}` (the operation alone when
/// no model applies).
pub fn span_name(route: &str, model: Option<&str>) -> String {
    let operation = operation_name(route);
    match model.map(|m| m.trim_start_matches("models/")) {
        Some(model) if !model.is_empty() => format!("{operation} {model}"),
        _ => operation.to_string(),
    }
}

/// Whether the request's span is an error: the client got no answer, or an answer
/// the record found wanting (a block, a safety stop, a stream cut short).
pub fn request_failed(record: &LogRecord) -> bool {
    record.status >= 400 || record.error_kind.is_some()
}

/// The request span's attributes. No secret is among them: keys appear by id.
pub fn request_attributes(record: &LogRecord) -> Attributes {
    let int = |n: u64| Value::Int(i64::try_from(n).unwrap_or(i64::MAX));
    let mut out: Attributes = vec![
        ("gen_ai.system", Value::Str(GEN_AI_SYSTEM.into())),
        ("gen_ai.provider.name", Value::Str(GEN_AI_SYSTEM.into())),
        (
            "gen_ai.operation.name",
            Value::Str(operation_name(&record.route).into()),
        ),
        ("http.response.status_code", Value::Int(record.status.into())),
        ("gemini_proxy.request_id", Value::Str(record.id.clone())),
        ("gemini_proxy.route", Value::Str(record.route.clone())),
        ("gemini_proxy.api", Value::Str(record.api.clone())),
        ("gemini_proxy.stream", Value::Bool(record.stream)),
        ("gemini_proxy.attempts", Value::Int(record.attempts.into())),
    ];
    let model = |m: &str| Value::Str(m.trim_start_matches("models/").to_string());
    let optional = [
        ("gen_ai.request.model", record.model.as_deref().map(model)),
        (
            "gen_ai.response.model",
            record
                .served_model
                .as_deref()
                .or(record.answered_key_id.and(record.model.as_deref()))
                .map(model),
        ),
        ("gen_ai.usage.input_tokens", record.prompt_tokens.map(int)),
        ("gen_ai.usage.output_tokens", record.candidates_tokens.map(int)),
        (
            "gemini_proxy.usage.thinking_tokens",
            record.thoughts_tokens.map(int),
        ),
        ("gemini_proxy.usage.cached_tokens", record.cached_tokens.map(int)),
        (
            "gen_ai.response.finish_reasons",
            record.finish_reason.clone().map(|r| Value::Strs(vec![r])),
        ),
        ("gemini_proxy.proxy_key_id", record.proxy_key_id.map(Value::Int)),
        ("gemini_proxy.key_id", record.answered_key_id.map(Value::Int)),
        (
            "gemini_proxy.cost_usd",
            record.cost_usd.map(|c| Value::Str(format!("{c:.9}"))),
        ),
        ("gemini_proxy.cache", record.cache.clone().map(Value::Str)),
        (
            "gemini_proxy.block_reason",
            record.block_reason.clone().map(Value::Str),
        ),
        ("error.type", record.error_kind.clone().map(Value::Str)),
        ("client.address", record.client_ip.clone().map(Value::Str)),
        ("user_agent.original", record.user_agent.clone().map(Value::Str)),
    ];
    out.extend(optional.into_iter().filter_map(|(k, v)| Some((k, v?))));
    if !record.notes.is_empty() {
        out.push(("gemini_proxy.notes", Value::Strs(record.notes.clone())));
    }
    out
}

/// An attempt span's attributes; `number` counts from 1.
pub fn attempt_attributes(record: &LogRecord, attempt: &AttemptSpan, number: usize) -> Attributes {
    let mut out: Attributes = vec![
        ("gen_ai.system", Value::Str(GEN_AI_SYSTEM.into())),
        ("gen_ai.provider.name", Value::Str(GEN_AI_SYSTEM.into())),
        (
            "gen_ai.operation.name",
            Value::Str(operation_name(&record.route).into()),
        ),
        (
            "gen_ai.request.model",
            Value::Str(attempt.model.trim_start_matches("models/").to_string()),
        ),
        ("gemini_proxy.key_id", Value::Int(attempt.key_id)),
        ("gemini_proxy.outcome", Value::Str(attempt.outcome.into())),
        (
            "gemini_proxy.attempt",
            Value::Int(i64::try_from(number).unwrap_or(i64::MAX)),
        ),
    ];
    if let Some(status) = attempt.status {
        out.push(("http.response.status_code", Value::Int(status.into())));
    }
    if attempt.outcome != "ok" {
        out.push(("error.type", Value::Str(attempt.outcome.into())));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_follows_the_w3c_rules() {
        let parent = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("the spec's example");
        assert_eq!(parent.trace_id[0], 0x4b);
        assert_eq!(parent.trace_id[15], 0x36);
        assert_eq!(
            parent.parent_span_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert!(parent.sampled);
        let unsampled = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
        assert!(!unsampled.expect("valid").sampled);
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes";
        assert!(
            TraceParent::parse(future).is_some(),
            "a later version may add fields"
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn names_follow_the_genai_conventions() {
        assert_eq!(
            span_name("generateContent", Some("models/gemini-2.5-flash")),
            "generate_content gemini-2.5-flash"
        );
        assert_eq!(
            span_name("chat.completions", Some("gemini-2.5-pro")),
            "chat gemini-2.5-pro"
        );
        assert_eq!(span_name("models.list", None), "models.list");
    }

    #[test]
    fn attributes_carry_usage_and_ids_but_no_secret() {
        let record = LogRecord {
            id: "r1".into(),
            route: "streamGenerateContent".into(),
            api: "gemini".into(),
            stream: true,
            status: 200,
            attempts: 2,
            model: Some("gemini-2.5-flash".into()),
            answered_key_id: Some(7),
            proxy_key_id: Some(3),
            prompt_tokens: Some(11),
            candidates_tokens: Some(5),
            finish_reason: Some("STOP".into()),
            ..LogRecord::default()
        };
        let attributes = request_attributes(&record);
        let get = |name: &str| {
            attributes
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("gen_ai.system"), Some(Value::Str("gcp.gemini".into())));
        assert_eq!(
            get("gen_ai.operation.name"),
            Some(Value::Str("generate_content".into()))
        );
        assert_eq!(
            get("gen_ai.request.model"),
            Some(Value::Str("gemini-2.5-flash".into()))
        );
        assert_eq!(
            get("gen_ai.response.model"),
            Some(Value::Str("gemini-2.5-flash".into()))
        );
        assert_eq!(get("gen_ai.usage.input_tokens"), Some(Value::Int(11)));
        assert_eq!(get("gen_ai.usage.output_tokens"), Some(Value::Int(5)));
        assert_eq!(
            get("gen_ai.response.finish_reasons"),
            Some(Value::Strs(vec!["STOP".into()]))
        );
        assert_eq!(get("gemini_proxy.key_id"), Some(Value::Int(7)));
        assert_eq!(get("error.type"), None);
        assert!(!request_failed(&record));

        let failed = LogRecord {
            status: 429,
            error_kind: Some("all_keys_cooling".into()),
            ..record.clone()
        };
        assert!(request_failed(&failed));
        let attempt = AttemptSpan {
            model: "gemini-2.5-flash".into(),
            key_id: 4,
            outcome: "rate_limited",
            status: Some(429),
            began_us: 10,
            ended_us: 20,
        };
        let attempt_attributes = attempt_attributes(&failed, &attempt, 1);
        assert!(attempt_attributes.contains(&("gemini_proxy.key_id", Value::Int(4))));
        assert!(attempt_attributes.contains(&("error.type", Value::Str("rate_limited".into()))));
        assert!(attempt_attributes.contains(&("http.response.status_code", Value::Int(429))));
    }
}
