//! One client request, from its head to its log record: the pipeline every platform
//! runs. [`Admission`] admits or refuses it, the engine serves it, [`Prepared::settle`]
//! turns the verdict into the answer, and [`BodyObserver`] completes a streamed
//! answer's record. The platforms (axum, the Worker) only do the IO in between, so a
//! rule written here holds on both.

mod admission;
#[cfg(test)]
mod admission_table_tests;
#[cfg(test)]
mod governance_tests;
mod ids;
mod in_flight;
mod keep_alive;
mod observe;
mod refusals;
mod reply;
mod settle;

pub use admission::{
    Abandoned, Admission, AdmissionRules, Authorized, CLIENT_CLOSED_REQUEST, Prepared, RequestHead,
};
pub use ids::{RequestIds, request_id};
pub use in_flight::{AbandonSink, InFlight};
pub use keep_alive::{Alarm, KEEP_ALIVE_BLANK_LINE, KEEP_ALIVE_COMMENT};
pub use observe::{BodyEnd, BodyObserver, CUT_AT_SHUTDOWN};
pub use refusals::{RefusalCounts, RefusalSampler, SAMPLE_WINDOW_MS, SAMPLED_PER_SOURCE};
pub use reply::{JSON_CONTENT_TYPE, Refusal, Reply};
pub use settle::{Answer, CACHE_HEADER, CacheFill, SERVED_MODEL_HEADER, Settlement};

use crate::error::ProxyError;
use crate::route::{Api, BodyFormat, Operation, Route, wants_sse};

/// Client headers forwarded upstream. Credentials (`x-goog-api-key`, `authorization`)
/// are not, and neither is `accept-encoding`: the proxy reads the body to count tokens,
/// so it asks for it uncompressed. An allow-list, so a header nobody thought of (a
/// cookie, a credential under a new name) stays behind.
const FORWARDED_HEADERS: [&str; 6] = [
    "content-type",
    "accept",
    "user-agent",
    "x-goog-api-client",
    "x-server-timeout",
    "x-goog-request-params",
];

/// Upstream response headers passed back to the client.
pub const RETURNED_HEADERS: [&str; 3] = ["content-type", "content-length", "cache-control"];

/// Whether a client header (any case) goes upstream.
pub fn forwards_header(name: &str) -> bool {
    const UPLOAD: &str = "x-goog-upload-";
    FORWARDED_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name))
        || name
            .get(..UPLOAD.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(UPLOAD))
}

/// How the answer to a request will be framed, and whether it is a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framing {
    pub format: BodyFormat,
    pub stream: bool,
}

/// The two fields of an OpenAI request the proxy needs; serde skips the rest.
#[derive(serde::Deserialize)]
struct OpenAiFields {
    model: Option<String>,
    stream: Option<bool>,
}

/// Checks the body is JSON, takes the model from it on OpenAI routes, and works out the
/// answer's framing. `query` is the client's query without its `key` parameter.
pub fn inspect_body(
    route: &mut Route,
    has_body: bool,
    body: &[u8],
    query: &str,
) -> Result<Framing, ProxyError> {
    let invalid =
        |e: serde_json::Error| ProxyError::BadRequest(format!("Invalid JSON payload received: {e}"));
    let has_json = has_body && !body.is_empty();
    if has_json {
        check_json_text(body)?;
    }
    let framing = |format, stream| Framing { format, stream };
    match route.api {
        Api::OpenAi if has_json => {
            let fields: OpenAiFields = serde_json::from_slice(body).map_err(invalid)?;
            route.model = fields.model.map(|m| m.trim_start_matches("models/").to_string());
            let stream = fields.stream.unwrap_or(false);
            Ok(framing(
                if stream { BodyFormat::Sse } else { BodyFormat::Json },
                stream,
            ))
        }
        Api::OpenAi => Ok(framing(BodyFormat::Json, false)),
        Api::Gemini => {
            if has_json {
                serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(invalid)?;
            }
            match route.operation {
                Operation::StreamGenerateContent if wants_sse(query) => Ok(framing(BodyFormat::Sse, true)),
                Operation::StreamGenerateContent => Ok(framing(BodyFormat::Json, true)),
                _ => Ok(framing(BodyFormat::Json, false)),
            }
        }
    }
}

/// Deepest nesting of arrays and objects accepted in a request body: serde_json's own
/// default limit, far beyond any real request (schemas and function arguments
/// included), and short of what could exhaust a parser's stack upstream or here.
pub const MAX_JSON_DEPTH: usize = 128;

/// What serde skips without looking: the body must be UTF-8 (JSON is), and not nested
/// past [`MAX_JSON_DEPTH`] (skipping unknown fields does not count depth).
fn check_json_text(body: &[u8]) -> Result<(), ProxyError> {
    if std::str::from_utf8(body).is_err() {
        return Err(ProxyError::BadRequest(
            "Invalid JSON payload received: the body is not valid UTF-8.".into(),
        ));
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in body {
        match (in_string, escaped, byte) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_string = false,
            (true, false, _) => {}
            (false, _, b'"') => in_string = true,
            (false, _, b'[' | b'{') => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(ProxyError::BadRequest(format!(
                        "Invalid JSON payload received: nested deeper than {MAX_JSON_DEPTH} levels."
                    )));
                }
            }
            (false, _, b']' | b'}') => depth = depth.saturating_sub(1),
            (false, _, _) => {}
        }
    }
    Ok(())
}

/// Upstream path and query for a route; `query` has no client credential in it.
pub fn upstream_target(route: &Route, query: &str) -> String {
    if query.is_empty() {
        route.upstream_path.clone()
    } else {
        format!("{}?{query}", route.upstream_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::parse_route;

    fn check(path: &str, body: &str, query: &str) -> Result<(Framing, Option<String>), ProxyError> {
        let mut route = parse_route(path, true)?;
        let framing = inspect_body(&mut route, true, body.as_bytes(), query)?;
        Ok((framing, route.model))
    }

    #[test]
    fn framing_and_model_per_dialect() {
        let sse = Framing {
            format: BodyFormat::Sse,
            stream: true,
        };
        let array = Framing {
            format: BodyFormat::Json,
            stream: true,
        };
        let plain = Framing {
            format: BodyFormat::Json,
            stream: false,
        };
        let path = "/v1beta/models/m:streamGenerateContent";
        assert_eq!(check(path, "{}", "alt=sse").ok(), Some((sse, Some("m".into()))));
        assert_eq!(check(path, "{}", "").ok(), Some((array, Some("m".into()))));
        let chat = "/v1/chat/completions";
        let body = r#"{"model":"models/gemini-2.5-flash","stream":true,"messages":[]}"#;
        assert_eq!(
            check(chat, body, "").ok(),
            Some((sse, Some("gemini-2.5-flash".into())))
        );
        assert_eq!(
            check(chat, r#"{"model":"x"}"#, "").ok(),
            Some((plain, Some("x".into())))
        );
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        for (path, body) in [
            ("/v1beta/models/m:generateContent", "{oops"),
            ("/v1/chat/completions", "[1,"),
        ] {
            assert!(
                matches!(check(path, body, ""), Err(ProxyError::BadRequest(m)) if m.contains("Invalid JSON"))
            );
        }
    }

    #[test]
    fn invalid_utf8_and_deep_nesting_are_bad_requests() {
        let deep = |n: usize| format!("{{\"contents\":{}{}}}", "[".repeat(n), "]".repeat(n));
        let ok = format!(r#"{{"s":"[[[[{}\"\\"}}"#, "[".repeat(500));
        for path in ["/v1beta/models/m:generateContent", "/v1/chat/completions"] {
            assert!(check(path, &deep(MAX_JSON_DEPTH - 1), "").is_ok(), "{path}");
            assert!(
                matches!(check(path, &deep(MAX_JSON_DEPTH + 1), ""), Err(ProxyError::BadRequest(m)) if m.contains("nested")),
                "{path}"
            );
            assert!(
                check(path, &ok, "").is_ok(),
                "brackets inside strings don't count: {path}"
            );
            let mut route = parse_route(path, true)
                .map_err(|_| ())
                .unwrap_or_else(|_| panic!("{path}"));
            let bad = b"{\"contents\":\"\xff\xfe\"}";
            assert!(
                matches!(inspect_body(&mut route, true, bad, ""), Err(ProxyError::BadRequest(m)) if m.contains("UTF-8")),
                "{path}"
            );
        }
    }

    #[test]
    fn only_allowed_headers_travel() {
        for name in [
            "content-type",
            "x-goog-upload-protocol",
            "User-Agent",
            "X-Goog-Upload-Command",
        ] {
            assert!(forwards_header(name), "{name}");
        }
        for name in [
            "x-goog-api-key",
            "authorization",
            "cookie",
            "accept-encoding",
            "host",
            "X-Goog-Api-Key",
            "x-goog",
        ] {
            assert!(!forwards_header(name), "{name}");
        }
    }
}
