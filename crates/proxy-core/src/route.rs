//! What a request path means: which API, which operation, which model, and where it
//! goes upstream. Pure string work, shared by every platform.

use crate::error::{ErrorShape, ProxyError};

/// Which wire dialect the client speaks; decides the error shape we answer in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    Gemini,
    OpenAi,
}

impl Api {
    /// The shape of the errors this API's clients understand.
    pub fn error_shape(self) -> ErrorShape {
        match self {
            Api::Gemini => ErrorShape::Gemini,
            Api::OpenAi => ErrorShape::OpenAi,
        }
    }

    /// The name request logs record.
    pub fn log_name(self) -> &'static str {
        match self {
            Api::Gemini => "gemini",
            Api::OpenAi => "openai",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    GenerateContent,
    StreamGenerateContent,
    CountTokens,
    EmbedContent,
    BatchEmbedContents,
    ListModels,
    GetModel,
    ChatCompletions,
    Embeddings,
    /// Anything else under the API prefixes: forwarded as it is.
    Passthrough,
}

impl Operation {
    /// The name recorded in the request log.
    pub fn log_name(self) -> &'static str {
        match self {
            Self::GenerateContent => "generateContent",
            Self::StreamGenerateContent => "streamGenerateContent",
            Self::CountTokens => "countTokens",
            Self::EmbedContent => "embedContent",
            Self::BatchEmbedContents => "batchEmbedContents",
            Self::ListModels => "models.list",
            Self::GetModel => "models.get",
            Self::ChatCompletions => "chat.completions",
            Self::Embeddings => "embeddings",
            Self::Passthrough => "passthrough",
        }
    }
}

/// How the upstream body is framed, so usage can be read from it as it streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// One JSON document, or Gemini's streamed JSON array of documents.
    Json,
    /// Server-sent events whose `data:` lines are JSON documents.
    Sse,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub api: Api,
    pub operation: Operation,
    /// Model from the path (Gemini) or, once the adapter read it, the body (OpenAI).
    pub model: Option<String>,
    /// Path to request upstream, query excluded.
    pub upstream_path: String,
}

impl Route {
    /// Model name used for per-model cooldowns and the log; `*` when none applies.
    pub fn model_or_any(&self) -> &str {
        self.model.as_deref().unwrap_or("*")
    }
}

/// Maps a raw (not yet percent-decoded) request path to a route: `NotFound` when it is
/// not under `/v1beta/` or `/v1/`, `BadRequest` when it could climb out of them.
///
/// `/v1/models` is both Gemini's v1 model list and the OpenAI-compatible one; the
/// caller's credential style settles it: OpenAI clients send `Authorization: Bearer`.
/// Whether `path` is under the API's prefixes (`/v1beta/`, `/v1/`): the proxy's to
/// answer. A dashboard sharing the listener answers every other path itself.
pub fn is_api_path(path: &str) -> bool {
    path.starts_with("/v1beta/") || path.starts_with("/v1/")
}

pub fn parse_route(path: &str, bearer_auth: bool) -> Result<Route, ProxyError> {
    let (version, rest) = if let Some(rest) = path.strip_prefix("/v1beta/") {
        ("v1beta", rest)
    } else if let Some(rest) = path.strip_prefix("/v1/") {
        ("v1", rest)
    } else {
        return Err(ProxyError::NotFound(path.to_string()));
    };
    check_segments(path)?;
    if version == "v1beta" {
        if let Some(openai_rest) = rest.strip_prefix("openai/") {
            return Ok(openai_route(openai_rest));
        }
    } else if let Some(route) = v1_openai_alias(rest, bearer_auth) {
        return Ok(route);
    }
    Ok(gemini_route(path, rest))
}

/// Refuses a path that URL parsers would rewrite on the way upstream: `.` and `..`
/// segments in any spelling (`%2e`, `.%2E`, …), which they resolve and so climb out
/// of `/v1/` or the upstream base URL's prefix; slashes and backslashes hidden as
/// `%2f`/`%5c` (or a raw `\`, a slash to URL parsers), which a gateway may decode into
/// new segments; and bytes outside RFC 3986's path characters, which parsers
/// re-encode. What is left is sent upstream exactly as it came.
fn check_segments(path: &str) -> Result<(), ProxyError> {
    let bad = |why: &str| Err(ProxyError::BadRequest(format!("Request path refused: {why}.")));
    for segment in path.split('/') {
        if !segment.bytes().all(is_path_char) {
            return bad("it contains characters not allowed in a URL path");
        }
        let Some(decoded) = strict_percent_decode(segment) else {
            return bad("it contains a malformed percent-escape");
        };
        if decoded == b"." || decoded == b".." {
            return bad("it contains a `.` or `..` segment");
        }
        if decoded.iter().any(|b| matches!(b, b'/' | b'\\')) {
            return bad("it contains an encoded slash or a backslash");
        }
    }
    Ok(())
}

/// RFC 3986 `pchar` plus `%` (escapes are checked separately).
fn is_path_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@%".contains(&byte)
}

/// Percent-decodes a path segment; `None` when a `%` is not followed by two hex digits.
fn strict_percent_decode(segment: &str) -> Option<Vec<u8>> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// True when a URL parsed from the upstream base URL plus `path_and_query` kept the
/// path exactly: `sent_path` (the parsed URL's path) is the base URL's path followed by
/// the request's. Each platform checks this with its own URL parser before sending,
/// so a path that parser would normalise can never take a key out of the base path.
pub fn keeps_upstream_path(base_path: &str, path_and_query: &str, sent_path: &str) -> bool {
    let path = path_and_query.split('?').next().unwrap_or("");
    sent_path
        .strip_prefix(base_path.trim_end_matches('/'))
        .is_some_and(|rest| rest == path)
}

fn v1_openai_alias(rest: &str, bearer_auth: bool) -> Option<Route> {
    let is_models = rest == "models" || (rest.starts_with("models/") && !rest.contains(':'));
    match rest {
        "chat/completions" | "embeddings" => Some(openai_route(rest)),
        _ if is_models && bearer_auth => Some(openai_route(rest)),
        _ => None,
    }
}

fn openai_route(rest: &str) -> Route {
    let operation = match rest {
        "chat/completions" => Operation::ChatCompletions,
        "embeddings" => Operation::Embeddings,
        "models" => Operation::ListModels,
        _ if rest.starts_with("models/") => Operation::GetModel,
        _ => Operation::Passthrough,
    };
    Route {
        api: Api::OpenAi,
        operation,
        model: None,
        upstream_path: format!("/v1beta/openai/{rest}"),
    }
}

fn gemini_route(path: &str, rest: &str) -> Route {
    let (operation, model) = match rest.strip_prefix("models/") {
        None if rest == "models" => (Operation::ListModels, None),
        None => (Operation::Passthrough, None),
        Some(target) => match target.split_once(':') {
            None => (Operation::GetModel, Some(target)),
            Some((model, method)) => (gemini_method(method), Some(model)),
        },
    };
    Route {
        api: Api::Gemini,
        operation,
        model: model.filter(|m| !m.is_empty()).map(str::to_string),
        upstream_path: path.to_string(),
    }
}

fn gemini_method(method: &str) -> Operation {
    match method {
        "generateContent" => Operation::GenerateContent,
        "streamGenerateContent" => Operation::StreamGenerateContent,
        "countTokens" => Operation::CountTokens,
        "embedContent" => Operation::EmbedContent,
        "batchEmbedContents" => Operation::BatchEmbedContents,
        _ => Operation::Passthrough,
    }
}

/// Splits a raw query string into the `key` parameter (a client credential, which must
/// never travel upstream) and the rest, kept byte for byte in its original order.
///
/// Google percent-decodes parameter names and also reads the system parameter as
/// `$key`, so every such spelling (`%6Bey`, `%24key`, …, and `KEY` in any case, which
/// no Gemini parameter uses) is taken out. When the spellings carry different values
/// none of them is trusted as the credential.
pub fn take_key_param(query: &str) -> (Option<String>, String) {
    let mut keys: Vec<String> = Vec::new();
    let mut kept: Vec<&str> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if is_key_name(name) {
            keys.push(percent_decode(value));
        } else {
            kept.push(pair);
        }
    }
    let key = match keys.split_first() {
        Some((first, rest)) if rest.iter().all(|k| k == first) => Some(first.clone()),
        _ => None,
    };
    (key, kept.join("&"))
}

fn is_key_name(raw_name: &str) -> bool {
    let name = percent_decode(raw_name).to_ascii_lowercase();
    name == "key" || name == "$key"
}

/// True when the query asks Gemini for server-sent events (`alt=sse`).
pub fn wants_sse(query: &str) -> bool {
    query.split('&').any(|pair| pair == "alt=sse")
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'%' if i + 2 < bytes.len() => std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok()),
            _ => None,
        };
        match (decoded, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, bearer: bool, api: Api, op: Operation, model: Option<&str>, up: &str) {
        let route = parse_route(path, bearer).unwrap_or_else(|e| panic!("no route for {path}: {e}"));
        assert_eq!(route.api, api, "{path}");
        assert_eq!(route.operation, op, "{path}");
        assert_eq!(route.model.as_deref(), model, "{path}");
        assert_eq!(route.upstream_path, up, "{path}");
    }

    #[test]
    fn gemini_native_routes() {
        use Operation::*;
        let g = Api::Gemini;
        let p = "/v1beta/models/gemini-2.5-flash:generateContent";
        check(p, false, g, GenerateContent, Some("gemini-2.5-flash"), p);
        let p = "/v1/models/gemini-2.5-pro:streamGenerateContent";
        check(p, false, g, StreamGenerateContent, Some("gemini-2.5-pro"), p);
        let p = "/v1beta/models/m:countTokens";
        check(p, false, g, CountTokens, Some("m"), p);
        let p = "/v1beta/models/text-embedding-004:embedContent";
        check(p, false, g, EmbedContent, Some("text-embedding-004"), p);
        let p = "/v1beta/models/e:batchEmbedContents";
        check(p, false, g, BatchEmbedContents, Some("e"), p);
        check("/v1beta/models", false, g, ListModels, None, "/v1beta/models");
        check("/v1/models", false, g, ListModels, None, "/v1/models");
        check(
            "/v1beta/models/gemini-2.5-flash",
            false,
            g,
            GetModel,
            Some("gemini-2.5-flash"),
            "/v1beta/models/gemini-2.5-flash",
        );
        check(
            "/v1beta/cachedContents",
            false,
            g,
            Passthrough,
            None,
            "/v1beta/cachedContents",
        );
        check(
            "/v1beta/models/m:predict",
            false,
            g,
            Passthrough,
            Some("m"),
            "/v1beta/models/m:predict",
        );
    }

    #[test]
    fn openai_routes_and_aliases() {
        use Operation::*;
        let o = Api::OpenAi;
        let chat = "/v1beta/openai/chat/completions";
        check(chat, true, o, ChatCompletions, None, chat);
        check("/v1/chat/completions", false, o, ChatCompletions, None, chat);
        check(
            "/v1/embeddings",
            true,
            o,
            Embeddings,
            None,
            "/v1beta/openai/embeddings",
        );
        check(
            "/v1beta/openai/models",
            true,
            o,
            ListModels,
            None,
            "/v1beta/openai/models",
        );
        check("/v1/models", true, o, ListModels, None, "/v1beta/openai/models");
        check(
            "/v1/models/gemini-2.5-flash",
            true,
            o,
            GetModel,
            None,
            "/v1beta/openai/models/gemini-2.5-flash",
        );
        check(
            "/v1beta/openai/images/generations",
            true,
            o,
            Passthrough,
            None,
            "/v1beta/openai/images/generations",
        );
    }

    #[test]
    fn unknown_prefixes_have_no_route() {
        for path in ["/", "/v2/models", "/v1beta", "/healthz", "/v1betax/models"] {
            assert!(
                matches!(parse_route(path, false), Err(ProxyError::NotFound(_))),
                "{path}"
            );
        }
    }

    #[test]
    fn key_param_is_taken_out_of_the_query() {
        assert_eq!(
            take_key_param("alt=sse&key=abc"),
            (Some("abc".into()), "alt=sse".into())
        );
        assert_eq!(
            take_key_param("key=a%2Bb&pageSize=2"),
            (Some("a+b".into()), "pageSize=2".into())
        );
        assert_eq!(
            take_key_param("pageSize=2&pageToken=x"),
            (None, "pageSize=2&pageToken=x".into())
        );
        assert_eq!(take_key_param(""), (None, String::new()));
        assert_eq!(take_key_param("key=%zz%"), (Some("%zz%".into()), String::new()));
        assert_eq!(take_key_param("key"), (Some(String::new()), String::new()));
        assert!(wants_sse("key=x&alt=sse"));
        assert!(!wants_sse("alt=json"));
    }

    #[test]
    fn paths_that_could_climb_out_are_bad_requests() {
        for path in [
            "/v1/../x",
            "/v1/%2e%2e/x",
            "/v1beta/models/%2E%2e/x",
            "/v1beta/models/.%2E",
            "/v1beta/models/%2e.",
            "/v1beta/./models",
            "/v1beta/files/%2e",
            "/v1beta/files%2F..%2Fx",
            "/v1beta/files%2fx",
            "/v1beta/files%5Cx",
            "/v1beta/files%5cx",
            "/v1beta/files\\x",
            "/v1beta/files/%zz",
            "/v1beta/files/%2",
            "/v1beta/files/a b",
            "/v1beta/files/a\"b",
            "/v1beta/openai/%2e%2e/%2e%2e/x",
        ] {
            assert!(
                matches!(parse_route(path, false), Err(ProxyError::BadRequest(_))),
                "{path}: {:?}",
                parse_route(path, false)
            );
        }
        // Dots inside a segment, and escapes of ordinary characters, are fine.
        for path in [
            "/v1beta/models/gemini-2.5-flash:generateContent",
            "/v1beta/files/a..b",
            "/v1beta/files/...",
            "/v1beta/tunedModels/my%2Dmodel",
            "/v1beta/cachedContents/",
        ] {
            assert!(parse_route(path, false).is_ok(), "{path}");
        }
    }

    #[test]
    fn every_spelling_of_the_key_param_is_taken() {
        for query in [
            "%6Bey=k",
            "%6bey=k",
            "%6B%65%79=k",
            "$key=k",
            "%24key=k",
            "KEY=k",
            "kEy=k",
        ] {
            assert_eq!(
                take_key_param(&format!("a=1&{query}&b=2")),
                (Some("k".into()), "a=1&b=2".into()),
                "{query}"
            );
        }
        assert_eq!(
            take_key_param("key=k&%6Bey=k"),
            (Some("k".into()), String::new()),
            "the same key twice is still that key"
        );
        assert_eq!(
            take_key_param("key=k&%6Bey=other&pageSize=1"),
            (None, "pageSize=1".into()),
            "conflicting spellings: none is trusted, all are stripped"
        );
        assert_eq!(
            take_key_param("keys=1&apikey=2"),
            (None, "keys=1&apikey=2".into())
        );
    }

    #[test]
    fn upstream_path_must_be_kept_exactly() {
        let route = "/v1beta/models?pageSize=1";
        assert!(keeps_upstream_path("/prefix", route, "/prefix/v1beta/models"));
        assert!(keeps_upstream_path("/prefix/", route, "/prefix/v1beta/models"));
        assert!(keeps_upstream_path("", route, "/v1beta/models"));
        assert!(keeps_upstream_path("/", route, "/v1beta/models"));
        assert!(!keeps_upstream_path("/prefix", route, "/v1beta/models"));
        assert!(!keeps_upstream_path("/prefix", "/v1/../x", "/prefix/x"));
        assert!(!keeps_upstream_path("/prefix", "/v1/a b", "/prefix/v1/a%20b"));
    }
}
