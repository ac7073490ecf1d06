//! Google's OpenAI-compatible endpoints (`/v1beta/openai/...`): shapes as
//! the `openai` SDK parses them (chat.completion, chat.completion.chunk,
//! embedding list, model list). Errors from here are array-wrapped (see
//! `errors.rs`).

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;

use crate::body::{self, Resp, Step};
use crate::errors::ApiError;
use crate::models::{self, MODELS, ModelInfo};
use crate::native::BIG_TEXT;
use crate::scenario::{
    CANDIDATE_TOKENS, FULL_TEXT, ModelFlags, PROMPT_TOKENS, STREAM_CANDIDATE_TOKENS, STREAM_TEXTS,
};

/// The fields of a chat or embeddings request that the fake looks at.
#[derive(Deserialize, Default)]
pub struct Request {
    pub model: Option<String>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub input: Option<Value>,
}

#[derive(Deserialize, Default)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

impl Request {
    /// Model id without a leading `models/`.
    pub fn model_id(&self) -> Option<&str> {
        let m = self.model.as_deref()?;
        Some(m.strip_prefix("models/").unwrap_or(m))
    }
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<Choice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<Message<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta: Option<Message<'a>>,
    /// Serialized as `null` on non-final chunks, as OpenAI does.
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct Message<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    content: Option<&'a str>,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
}

impl Usage {
    /// Google counts thinking tokens as completion tokens here.
    fn new(flags: ModelFlags, candidates: u32) -> Self {
        let completion = candidates + flags.thoughts().unwrap_or(0);
        Usage {
            prompt_tokens: PROMPT_TOKENS,
            completion_tokens: completion,
            total_tokens: PROMPT_TOKENS + completion,
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn to_bytes<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

pub fn chat(req: &Request, model: &str, id: &str, flags: ModelFlags) -> Resp {
    let id = format!("chatcmpl-{id}");
    if req.stream {
        let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
        return chat_stream(model, &id, flags, include_usage);
    }
    let (content, finish) = if flags.blocked {
        (None, "content_filter")
    } else if flags.big {
        (Some(BIG_TEXT.as_str()), "stop")
    } else {
        (Some(FULL_TEXT), "stop")
    };
    let candidates = if flags.blocked { 0 } else { CANDIDATE_TOKENS };
    body::json(&Completion {
        id: &id,
        object: "chat.completion",
        created: now(),
        model,
        choices: vec![Choice {
            index: 0,
            message: Some(Message {
                role: Some("assistant"),
                content,
            }),
            delta: None,
            finish_reason: Some(finish),
        }],
        usage: Some(Usage::new(flags, candidates)),
    })
}

fn chunk<'a>(
    id: &'a str,
    created: u64,
    model: &'a str,
    choices: Vec<Choice<'a>>,
    usage: Option<Usage>,
) -> Vec<u8> {
    let c = Completion {
        id,
        object: "chat.completion.chunk",
        created,
        model,
        choices,
        usage,
    };
    sse_event(&to_bytes(&c))
}

fn sse_event(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    out
}

fn chat_stream(model: &str, id: &str, flags: ModelFlags, include_usage: bool) -> Resp {
    let created = now();
    let delay = flags.chunk_delay();
    let mut steps = Vec::with_capacity(6);
    let n = if flags.blocked { 0 } else { flags.chunks_to_send() };
    for (i, text) in STREAM_TEXTS.iter().take(n).enumerate() {
        let last = i + 1 == STREAM_TEXTS.len();
        let choice = Choice {
            index: 0,
            message: None,
            delta: Some(Message {
                role: (i == 0).then_some("assistant"),
                content: Some(text),
            }),
            finish_reason: last.then_some("stop"),
        };
        steps.push(Step::data(
            flags.delay_before(i),
            chunk(id, created, model, vec![choice], None),
        ));
    }
    if flags.blocked {
        let choice = Choice {
            index: 0,
            message: None,
            delta: Some(Message {
                role: Some("assistant"),
                content: None,
            }),
            finish_reason: Some("content_filter"),
        };
        steps.push(Step::data(delay, chunk(id, created, model, vec![choice], None)));
    } else if flags.midstream {
        let err = sse_event(&ApiError::midstream().body(false));
        steps.push(Step::data(None, err));
        return body::streamed(body::SSE, steps);
    } else if flags.drop {
        steps.push(Step::abort());
        return body::streamed(body::SSE, steps);
    }
    if include_usage {
        let candidates = if flags.blocked {
            0
        } else {
            STREAM_CANDIDATE_TOKENS[STREAM_CANDIDATE_TOKENS.len() - 1]
        };
        let usage = Some(Usage::new(flags, candidates));
        steps.push(Step::data(None, chunk(id, created, model, vec![], usage)));
    }
    steps.push(Step::data(None, Bytes::from_static(b"data: [DONE]\n\n")));
    body::streamed(body::SSE, steps)
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<Embedding>,
    model: &'a str,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct Embedding {
    object: &'static str,
    index: usize,
    embedding: [f32; 4],
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u32,
    total_tokens: u32,
}

/// One embedding per input: a string is one input, an array of strings is
/// one each, an array of token ids is one.
pub fn embeddings(req: &Request, model: &str) -> Resp {
    let count = match &req.input {
        Some(Value::String(_)) => 1,
        Some(Value::Array(items)) if items.iter().all(Value::is_number) && !items.is_empty() => 1,
        Some(Value::Array(items)) => items.len(),
        _ => {
            let err = ApiError::invalid_argument("Missing required parameter: 'input'.");
            return body::error(&err, true);
        }
    };
    body::json(&EmbeddingList {
        object: "list",
        data: (0..count)
            .map(|index| Embedding {
                object: "embedding",
                index,
                embedding: [0.1, 0.2, 0.3, 0.4],
            })
            .collect(),
        model,
        usage: EmbeddingUsage {
            prompt_tokens: 4,
            total_tokens: 4,
        },
    })
}

#[derive(Serialize)]
struct OaModel {
    id: &'static str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

impl From<&ModelInfo> for OaModel {
    fn from(m: &ModelInfo) -> Self {
        OaModel {
            id: m.name,
            object: "model",
            created: 0,
            owned_by: "google",
        }
    }
}

#[derive(Serialize)]
struct OaModelList {
    object: &'static str,
    data: Vec<OaModel>,
}

pub fn list_models() -> Resp {
    body::json(&OaModelList {
        object: "list",
        data: MODELS.iter().map(OaModel::from).collect(),
    })
}

pub fn get_model(id: &str) -> Resp {
    match models::find(id) {
        Some(m) => body::json(&OaModel::from(m)),
        None => {
            let id = id.strip_prefix("models/").unwrap_or(id);
            body::error(&ApiError::model_not_found(id, "v1beta"), true)
        }
    }
}

/// A chat completion stream with no content (`-empty-` keys): the role, a stop, the end.
pub fn empty_chat_stream(model: &str) -> Resp {
    let events = [
        serde_json::json!({"object": "chat.completion.chunk", "model": model,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]}),
        serde_json::json!({"object": "chat.completion.chunk", "model": model,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    ];
    let mut steps: Vec<Step> = events
        .iter()
        .map(|event| Step::data(None, sse_event(&serde_json::to_vec(event).unwrap_or_default())))
        .collect();
    steps.push(Step::data(None, Bytes::from_static(b"data: [DONE]\n\n")));
    body::streamed(body::SSE, steps)
}

/// A chat completion with no content (`-empty-` keys).
pub fn empty_chat(model: &str) -> Value {
    serde_json::json!({
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": 0, "total_tokens": PROMPT_TOKENS},
    })
}
