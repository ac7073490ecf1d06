//! Gemini native endpoints (`/v1beta/models/...`) in Google's camelCase wire
//! format.
//!
//! Responses are serialized from borrowed, derive-based structs: no maps or
//! intermediate `Value`s, so the success path stays cheap for benchmarks.

use std::sync::LazyLock;

use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::body::{self, Resp, Step};
use crate::errors::ApiError;
use crate::models::{self, MODELS, ModelInfo};
use crate::route::query_param;
use crate::scenario::{
    BIG_TEXT_LEN, CANDIDATE_TOKENS, FULL_TEXT, ModelFlags, PROMPT_TOKENS, SLOW_CHUNK_DELAY,
    STREAM_CANDIDATE_TOKENS, STREAM_TEXTS,
};

/// Top-level fields of `GenerateContentRequest`, in both spellings proto JSON accepts.
const GENERATE_FIELDS: [&str; 16] = [
    "model",
    "contents",
    "tools",
    "toolConfig",
    "tool_config",
    "safetySettings",
    "safety_settings",
    "systemInstruction",
    "system_instruction",
    "generationConfig",
    "generation_config",
    "cachedContent",
    "cached_content",
    "labels",
    "serviceTier",
    "service_tier",
];

/// The first top-level field of a generate request body that Google would reject as
/// unknown: `Some(Ok(name))`; `None` when every name is known; `Some(Err(()))` when
/// the body is not a JSON object (the caller reports what is wrong with it).
pub fn unknown_request_field(body: &[u8]) -> Option<Result<String, ()>> {
    let fields: std::collections::HashMap<String, IgnoredAny> = match serde_json::from_slice(body) {
        Ok(fields) => fields,
        Err(_) => return Some(Err(())),
    };
    let mut unknown: Vec<String> = fields
        .into_keys()
        .filter(|name| !GENERATE_FIELDS.contains(&name.as_str()))
        .collect();
    unknown.sort();
    unknown.into_iter().next().map(Ok)
}

pub static BIG_TEXT: LazyLock<String> = LazyLock::new(|| "x".repeat(BIG_TEXT_LEN));

const EMBEDDING_VALUES: [f32; 4] = [0.1, 0.2, 0.3, 0.4];
const EMBED_RESPONSE: &[u8] = br#"{"embedding":{"values":[0.1,0.2,0.3,0.4]}}"#;
const COUNT_TOKENS_RESPONSE: &[u8] =
    br#"{"totalTokens":12,"promptTokensDetails":[{"modality":"TEXT","tokenCount":12}]}"#;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateResponse<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    candidates: Option<[Candidate<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_feedback: Option<PromptFeedback>,
    usage_metadata: Usage,
    model_version: &'a str,
    response_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    content: Content<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'static str>,
    index: u32,
}

#[derive(Serialize)]
struct Content<'a> {
    parts: [Part<'a>; 1],
    role: &'static str,
}

#[derive(Serialize)]
struct Part<'a> {
    text: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    block_reason: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Usage {
    prompt_token_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidates_token_count: Option<u32>,
    total_token_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    cached_content_token_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens_details: Option<[ModalityCount; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thoughts_token_count: Option<u32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModalityCount {
    modality: &'static str,
    token_count: u32,
}

impl Usage {
    fn new(flags: ModelFlags, candidates: u32) -> Self {
        Usage {
            prompt_token_count: PROMPT_TOKENS,
            candidates_token_count: Some(candidates),
            total_token_count: flags.total(candidates),
            cached_content_token_count: flags.cached_tokens(),
            prompt_tokens_details: Some([ModalityCount {
                modality: "TEXT",
                token_count: PROMPT_TOKENS,
            }]),
            thoughts_token_count: flags.thoughts(),
        }
    }

    /// A blocked prompt produced no output: only prompt tokens count.
    fn blocked() -> Self {
        Usage {
            prompt_token_count: PROMPT_TOKENS,
            candidates_token_count: None,
            total_token_count: PROMPT_TOKENS,
            cached_content_token_count: None,
            prompt_tokens_details: None,
            thoughts_token_count: None,
        }
    }
}

fn to_bytes<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

fn response_bytes(
    model: &str,
    id: &str,
    flags: ModelFlags,
    text: &str,
    candidates: u32,
    finish: bool,
) -> Vec<u8> {
    if flags.blocked {
        return to_bytes(&GenerateResponse {
            candidates: None,
            prompt_feedback: Some(PromptFeedback {
                block_reason: "SAFETY",
            }),
            usage_metadata: Usage::blocked(),
            model_version: model,
            response_id: id,
        });
    }
    to_bytes(&GenerateResponse {
        candidates: Some([Candidate {
            content: Content {
                parts: [Part { text }],
                role: "model",
            },
            finish_reason: finish.then_some("STOP"),
            index: 0,
        }]),
        prompt_feedback: None,
        usage_metadata: Usage::new(flags, candidates),
        model_version: model,
        response_id: id,
    })
}

pub fn generate(model: &str, id: &str, flags: ModelFlags) -> Resp {
    let text = if flags.big { BIG_TEXT.as_str() } else { FULL_TEXT };
    let bytes = response_bytes(model, id, flags, text, CANDIDATE_TOKENS, true);
    if !flags.long_stream {
        return body::json_bytes(bytes);
    }
    // A `longstream` model's whole answer is slow in coming too: half of it now, the
    // rest after a long pause (a body still on its way that is not a stream).
    let (first, rest) = bytes.split_at(bytes.len() / 2);
    let pause = SLOW_CHUNK_DELAY * crate::scenario::LONG_STREAM_EXTRA_CHUNKS as u32;
    let steps = vec![
        Step::data(None, first.to_vec()),
        Step::data(Some(pause), rest.to_vec()),
    ];
    body::streamed(body::JSON, steps)
}

/// `streamGenerateContent`: SSE (`alt=sse`) or a streamed JSON array, one
/// body frame per chunk, with the model-selected delays and failures.
pub fn stream(model: &str, id: &str, flags: ModelFlags, sse: bool) -> Resp {
    let delay = flags.chunk_delay();
    let chunks: Vec<Vec<u8>> = if flags.blocked {
        vec![response_bytes(model, id, flags, "", 0, false)]
    } else {
        STREAM_TEXTS
            .iter()
            .zip(STREAM_CANDIDATE_TOKENS)
            .enumerate()
            .take(flags.chunks_to_send())
            .map(|(i, (text, tokens))| {
                let last = i + 1 == STREAM_TEXTS.len();
                response_bytes(model, id, flags, text, tokens, last)
            })
            .collect()
    };
    let mut steps = Vec::with_capacity(chunks.len() + 2);
    if flags.long_stream {
        let filler = response_bytes(model, id, flags, "…", 1, false);
        for i in 0..crate::scenario::LONG_STREAM_EXTRA_CHUNKS {
            steps.push(Step::data(delay, frame(sse, i == 0, &filler)));
        }
    }
    let first = steps.is_empty();
    for (i, chunk) in chunks.into_iter().enumerate() {
        steps.push(Step::data(
            flags.delay_before(i),
            frame(sse, first && i == 0, &chunk),
        ));
    }
    if flags.midstream && !flags.blocked {
        let err = ApiError::midstream().body(false);
        steps.push(Step::data(None, frame(sse, false, &err)));
    } else if flags.drop && !flags.blocked {
        steps.push(Step::abort());
        return body::streamed(content_type(sse), steps);
    }
    if !sse {
        steps.push(Step::data(None, Bytes::from_static(b"]")));
    }
    body::streamed(content_type(sse), steps)
}

fn content_type(sse: bool) -> &'static str {
    if sse { body::SSE } else { body::JSON }
}

/// Wire framing of one stream element, matching Google byte for byte:
/// SSE `data: {..}\r\n\r\n`; JSON array `[{..}` then `,\r\n{..}` (the
/// closing `]` is its own frame).
fn frame(sse: bool, first: bool, json: &[u8]) -> Vec<u8> {
    let (pre, post): (&[u8], &[u8]) = match (sse, first) {
        (true, _) => (b"data: ", b"\r\n\r\n"),
        (false, true) => (b"[", b""),
        (false, false) => (b",\r\n", b""),
    };
    let mut out = Vec::with_capacity(pre.len() + json.len() + post.len());
    out.extend_from_slice(pre);
    out.extend_from_slice(json);
    out.extend_from_slice(post);
    out
}

pub fn count_tokens() -> Resp {
    body::json_bytes(Bytes::from_static(COUNT_TOKENS_RESPONSE))
}

pub fn embed() -> Resp {
    body::json_bytes(Bytes::from_static(EMBED_RESPONSE))
}

#[derive(Deserialize)]
struct BatchEmbedRequest {
    #[serde(default)]
    requests: Vec<IgnoredAny>,
}

#[derive(Serialize)]
struct BatchEmbedResponse {
    embeddings: Vec<Values>,
}

#[derive(Serialize)]
struct Values {
    values: [f32; 4],
}

/// One embedding per element of the request's `requests` array.
pub fn batch_embed(body: &[u8]) -> Resp {
    match serde_json::from_slice::<BatchEmbedRequest>(body) {
        Ok(req) => body::json(&BatchEmbedResponse {
            embeddings: (0..req.requests.len())
                .map(|_| Values {
                    values: EMBEDDING_VALUES,
                })
                .collect(),
        }),
        Err(e) => body::error(&ApiError::invalid_json(&e.to_string()), false),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelList<'a> {
    models: &'a [ModelInfo],
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;

/// Paginated model list; page tokens are the decimal offset of the next
/// page (opaque to clients, which must pass them back unchanged).
pub fn list_models(query: Option<&str>) -> Resp {
    let size = match query_param(query, "pageSize") {
        None | Some("") => DEFAULT_PAGE_SIZE,
        Some(s) => match s.parse::<usize>() {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(n) => n.min(MAX_PAGE_SIZE),
            Err(_) => {
                let msg = format!("Invalid value at 'page_size' (TYPE_INT32), \"{s}\"");
                return body::error(&ApiError::invalid_argument(msg), false);
            }
        },
    };
    let start = match query_param(query, "pageToken") {
        None | Some("") => 0,
        Some(t) => match t.parse::<usize>() {
            Ok(n) if n <= MODELS.len() => n,
            _ => return body::error(&ApiError::invalid_argument("Invalid page token."), false),
        },
    };
    let end = start.saturating_add(size).min(MODELS.len());
    let page = MODELS.get(start..end).unwrap_or_default();
    body::json(&ModelList {
        models: page,
        next_page_token: (end < MODELS.len()).then(|| end.to_string()),
    })
}

pub fn get_model(id: &str, version: &str) -> Resp {
    match models::find(id) {
        Some(m) => body::json(m),
        None => body::error(&ApiError::model_not_found(id, version), false),
    }
}

/// A 200 with nothing in it: a candidate that stopped with no parts (`-empty-` keys).
pub fn empty_answer(model: &str) -> serde_json::Value {
    serde_json::json!({
        "candidates": [{"content": {"role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": PROMPT_TOKENS, "totalTokenCount": PROMPT_TOKENS},
        "modelVersion": model,
    })
}

/// A stream with nothing in it (`-empty-` keys): one event, a candidate that stopped
/// with no parts.
pub fn empty_stream(model: &str, sse: bool) -> Resp {
    let event = serde_json::to_vec(&empty_answer(model)).unwrap_or_default();
    let mut steps = vec![Step::data(None, frame(sse, true, &event))];
    if !sse {
        steps.push(Step::data(None, Bytes::from_static(b"]")));
    }
    body::streamed(content_type(sse), steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_match_google() {
        assert_eq!(frame(false, true, b"{}"), b"[{}");
        assert_eq!(frame(false, false, b"{}"), b",\r\n{}");
        assert_eq!(frame(true, false, b"{}"), b"data: {}\r\n\r\n");
    }

    #[test]
    fn thinking_usage_totals() {
        let flags = ModelFlags::from_model("gemini-thinking");
        let v: serde_json::Value =
            serde_json::from_slice(&response_bytes("m", "id", flags, "t", 7, true)).unwrap_or_default();
        assert_eq!(v["usageMetadata"]["thoughtsTokenCount"], 4);
        assert_eq!(v["usageMetadata"]["totalTokenCount"], 23);
        assert_eq!(v["candidates"][0]["finishReason"], "STOP");
    }
}
