//! Reading usage, finish/block reasons and errors out of a response while it streams.
//!
//! Answers are passed to the client chunk by chunk; buffering them to parse at the end
//! would cost memory (inline images run to megabytes) and nothing else needs the whole
//! body. So a byte-level scanner follows the JSON structure, keeps only the key path,
//! and copies out just the few scalar values the request log wants. SSE framing is
//! peeled off by a second small state machine in front of it. Neither can fail: bytes
//! that are not JSON are skipped, never an error.

use serde::Serialize;

use crate::route::BodyFormat;

/// Token counts as Gemini reports them (OpenAI's names map onto these).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub prompt_tokens: Option<u64>,
    pub candidates_tokens: Option<u64>,
    pub thoughts_tokens: Option<u64>,
    pub cached_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
}

/// What the log wants to know about an answer's content.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseMeta {
    pub usage: Usage,
    pub finish_reason: Option<String>,
    pub block_reason: Option<String>,
    /// An error object inside a 200 answer (mid-stream errors).
    pub error_status: Option<String>,
    pub error_message: Option<String>,
    pub bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Prompt,
    Candidates,
    Thoughts,
    Cached,
    Total,
    FinishReason,
    BlockReason,
    ErrorStatus,
    ErrorMessage,
}

/// Key paths we copy out; `[]` stands for any array element. Leading arrays (Gemini's
/// streamed JSON array) are ignored before matching.
const FIELDS: &[(&[&str], Field)] = &[
    (&["usageMetadata", "promptTokenCount"], Field::Prompt),
    (&["usageMetadata", "candidatesTokenCount"], Field::Candidates),
    (&["usageMetadata", "thoughtsTokenCount"], Field::Thoughts),
    (&["usageMetadata", "cachedContentTokenCount"], Field::Cached),
    (&["usageMetadata", "totalTokenCount"], Field::Total),
    (&["candidates", "[]", "finishReason"], Field::FinishReason),
    (&["promptFeedback", "blockReason"], Field::BlockReason),
    (&["error", "status"], Field::ErrorStatus),
    (&["error", "message"], Field::ErrorMessage),
    (&["usage", "prompt_tokens"], Field::Prompt),
    (&["usage", "completion_tokens"], Field::Candidates),
    (&["usage", "total_tokens"], Field::Total),
    (
        &["usage", "completion_tokens_details", "reasoning_tokens"],
        Field::Thoughts,
    ),
    (
        &["usage", "prompt_tokens_details", "cached_tokens"],
        Field::Cached,
    ),
    (&["choices", "[]", "finish_reason"], Field::FinishReason),
];

const MAX_KEY_LEN: usize = 64;
const MAX_VALUE_LEN: usize = 512;

#[derive(Debug)]
enum Frame {
    Object { key: Option<Key>, awaiting_key: bool },
    Array,
}

/// An object's current key, its first [`MAX_KEY_LEN`] bytes kept inline: the scanner
/// reads every answer, and a heap string per key was most of its cost.
#[derive(Clone, Copy)]
struct Key {
    bytes: [u8; MAX_KEY_LEN],
    len: u8,
}

impl Key {
    fn of(raw: &[u8]) -> Self {
        let len = raw.len().min(MAX_KEY_LEN);
        let mut bytes = [0; MAX_KEY_LEN];
        bytes[..len].copy_from_slice(&raw[..len]);
        Self {
            bytes,
            len: len as u8,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StrRole {
    Key,
    /// A string value; copied only when it is a field we want.
    Value(Option<Field>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lexeme {
    Between,
    Str { role: StrRole, escaped: bool },
    Scalar { field: Option<Field> },
}

/// Follows JSON structure byte by byte and reports the [`FIELDS`] it meets.
#[derive(Debug)]
struct JsonScanner {
    stack: Vec<Frame>,
    lexeme: Lexeme,
    buf: Vec<u8>,
}

impl JsonScanner {
    fn new() -> Self {
        Self {
            stack: Vec::new(),
            lexeme: Lexeme::Between,
            buf: Vec::new(),
        }
    }

    /// Forgets everything: the next byte starts a new document (an SSE event).
    fn reset(&mut self) {
        self.stack.clear();
        self.lexeme = Lexeme::Between;
        self.buf.clear();
    }

    fn feed(&mut self, bytes: &[u8], meta: &mut ResponseMeta) {
        for &byte in bytes {
            self.step(byte, meta);
        }
    }

    fn step(&mut self, byte: u8, meta: &mut ResponseMeta) {
        match self.lexeme {
            Lexeme::Str { role, escaped } => {
                let limit = match role {
                    StrRole::Key => MAX_KEY_LEN,
                    StrRole::Value(Some(_)) => MAX_VALUE_LEN,
                    StrRole::Value(None) => 0,
                };
                if !escaped && byte == b'"' {
                    self.end_string(role, meta);
                    return;
                }
                if self.buf.len() < limit {
                    self.buf.push(byte);
                }
                // Escapes are kept raw: we only need to know where the string ends.
                let escaped = !escaped && byte == b'\\';
                self.lexeme = Lexeme::Str { role, escaped };
            }
            Lexeme::Scalar { field } => {
                if matches!(byte, b',' | b'}' | b']' | b':') || byte.is_ascii_whitespace() {
                    if let Some(field) = field {
                        record(meta, field, &self.buf);
                    }
                    self.lexeme = Lexeme::Between;
                    self.structural(byte);
                } else if field.is_some() && self.buf.len() < MAX_VALUE_LEN {
                    self.buf.push(byte);
                }
            }
            Lexeme::Between => self.structural(byte),
        }
    }

    fn end_string(&mut self, role: StrRole, meta: &mut ResponseMeta) {
        match role {
            StrRole::Key => {
                if let Some(Frame::Object { key, .. }) = self.stack.last_mut() {
                    *key = Some(Key::of(&self.buf));
                }
            }
            StrRole::Value(Some(field)) => record(meta, field, &self.buf),
            StrRole::Value(None) => {}
        }
        self.lexeme = Lexeme::Between;
    }

    fn structural(&mut self, byte: u8) {
        match byte {
            b'{' => self.stack.push(Frame::Object {
                key: None,
                awaiting_key: true,
            }),
            b'[' => self.stack.push(Frame::Array),
            b'}' | b']' => {
                self.stack.pop();
            }
            b':' => {
                if let Some(Frame::Object { awaiting_key, .. }) = self.stack.last_mut() {
                    *awaiting_key = false;
                }
            }
            b',' => {
                if let Some(Frame::Object { key, awaiting_key }) = self.stack.last_mut() {
                    *key = None;
                    *awaiting_key = true;
                }
            }
            b'"' => {
                self.buf.clear();
                self.lexeme = match self.stack.last() {
                    Some(Frame::Object {
                        awaiting_key: true, ..
                    }) => Lexeme::Str {
                        role: StrRole::Key,
                        escaped: false,
                    },
                    _ => Lexeme::Str {
                        role: StrRole::Value(self.current_field()),
                        escaped: false,
                    },
                };
            }
            _ if byte.is_ascii_whitespace() => {}
            _ => {
                self.buf.clear();
                let field = self.current_field();
                if field.is_some() {
                    self.buf.push(byte);
                }
                self.lexeme = Lexeme::Scalar { field };
            }
        }
    }

    /// The field the value starting now belongs to, if it is one we copy out.
    fn current_field(&self) -> Option<Field> {
        let frames = self.stack.iter().skip_while(|f| matches!(f, Frame::Array));
        // No field's path is longer than 3, so a deeper value is none of them.
        let mut path: [&[u8]; 3] = [&[]; 3];
        let mut depth = 0;
        for frame in frames {
            if depth == path.len() {
                return None;
            }
            path[depth] = match frame {
                Frame::Object { key: Some(key), .. } => key.as_bytes(),
                Frame::Object { key: None, .. } => return None,
                Frame::Array => b"[]",
            };
            depth += 1;
        }
        let path = &path[..depth];
        FIELDS
            .iter()
            .find(|(p, _)| p.len() == path.len() && p.iter().zip(path).all(|(a, b)| a.as_bytes() == *b))
            .map(|(_, f)| *f)
    }
}

fn record(meta: &mut ResponseMeta, field: Field, raw: &[u8]) {
    let text = String::from_utf8_lossy(raw);
    if text == "null" {
        return;
    }
    let number = || text.parse::<u64>().ok();
    let usage = &mut meta.usage;
    match field {
        Field::Prompt => usage.prompt_tokens = number().or(usage.prompt_tokens),
        Field::Candidates => usage.candidates_tokens = number().or(usage.candidates_tokens),
        Field::Thoughts => usage.thoughts_tokens = number().or(usage.thoughts_tokens),
        Field::Cached => usage.cached_tokens = number().or(usage.cached_tokens),
        Field::Total => usage.total_tokens = number().or(usage.total_tokens),
        Field::FinishReason => meta.finish_reason = Some(text.into_owned()),
        Field::BlockReason => meta.block_reason = Some(text.into_owned()),
        Field::ErrorStatus => meta.error_status = Some(text.into_owned()),
        Field::ErrorMessage => meta.error_message = Some(text.into_owned()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SseState {
    LineStart,
    FieldName { len: usize, is_data: bool },
    DataValueStart,
    Data,
    SkipLine,
}

/// Incremental reader of an upstream body's [`ResponseMeta`].
#[derive(Debug)]
pub struct MetaReader {
    format: BodyFormat,
    json: JsonScanner,
    sse: SseState,
    /// The previous byte ended a line with `\r`; a following `\n` belongs to it.
    after_cr: bool,
    meta: ResponseMeta,
}

impl MetaReader {
    pub fn new(format: BodyFormat) -> Self {
        Self {
            format,
            json: JsonScanner::new(),
            sse: SseState::LineStart,
            after_cr: false,
            meta: ResponseMeta::default(),
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        self.meta.bytes += chunk.len() as u64;
        match self.format {
            BodyFormat::Json => self.json.feed(chunk, &mut self.meta),
            BodyFormat::Sse => {
                for &byte in chunk {
                    self.sse_step(byte);
                }
            }
        }
    }

    pub fn meta(&self) -> &ResponseMeta {
        &self.meta
    }

    pub fn finish(mut self) -> ResponseMeta {
        // A scalar at the very end of a document has no delimiter after it.
        self.json.step(b' ', &mut self.meta);
        self.meta
    }

    fn sse_step(&mut self, byte: u8) {
        let after_cr = std::mem::replace(&mut self.after_cr, false);
        if byte == b'\n' && after_cr {
            return;
        }
        let line_end = byte == b'\n' || byte == b'\r';
        if byte == b'\r' {
            self.after_cr = true;
        }
        self.sse = match (self.sse, line_end) {
            (SseState::LineStart, true) => {
                // A blank line ends the event; the next `data:` is a new document.
                self.json.step(b' ', &mut self.meta);
                self.json.reset();
                SseState::LineStart
            }
            (SseState::Data, true) => {
                self.json.step(b'\n', &mut self.meta);
                SseState::LineStart
            }
            (_, true) => SseState::LineStart,
            (SseState::LineStart, false) => field_name_step(0, true, byte),
            (SseState::FieldName { len, is_data }, false) => field_name_step(len, is_data, byte),
            (SseState::DataValueStart, false) if byte == b' ' => SseState::Data,
            (SseState::DataValueStart | SseState::Data, false) => {
                self.json.step(byte, &mut self.meta);
                SseState::Data
            }
            (SseState::SkipLine, false) => SseState::SkipLine,
        };
    }
}

/// Matches the field name against `data` one byte at a time, without buffering it.
fn field_name_step(len: usize, is_data: bool, byte: u8) -> SseState {
    const DATA: &[u8] = b"data";
    if byte == b':' {
        return if is_data && len == DATA.len() {
            SseState::DataValueStart
        } else {
            SseState::SkipLine
        };
    }
    let still_data = is_data && DATA.get(len) == Some(&byte);
    SseState::FieldName {
        len: len + 1,
        is_data: still_data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `body` in chunks of every size from 1 to 7 bytes and checks each result,
    /// so no value may depend on where the network happened to split the stream.
    fn check(format: BodyFormat, body: &str, expected: impl Fn(&ResponseMeta)) {
        for chunk in 1..=7 {
            let mut reader = MetaReader::new(format);
            for piece in body.as_bytes().chunks(chunk) {
                reader.feed(piece);
            }
            let meta = reader.finish();
            assert_eq!(meta.bytes, body.len() as u64);
            expected(&meta);
        }
    }

    const CHUNK1: &str = r#"{"candidates":[{"content":{"parts":[{"text":"Hel\"lo"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":3,"totalTokenCount":15}}"#;
    const CHUNK2: &str = r#"{"candidates":[{"content":{"parts":[{"text":" world"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":9,"thoughtsTokenCount":4,"cachedContentTokenCount":6,"totalTokenCount":25},"modelVersion":"x"}"#;

    fn full_usage(meta: &ResponseMeta) {
        assert_eq!(meta.usage.prompt_tokens, Some(12));
        assert_eq!(meta.usage.candidates_tokens, Some(9));
        assert_eq!(meta.usage.thoughts_tokens, Some(4));
        assert_eq!(meta.usage.cached_tokens, Some(6));
        assert_eq!(meta.usage.total_tokens, Some(25));
        assert_eq!(meta.finish_reason.as_deref(), Some("STOP"));
        assert_eq!(meta.error_status, None);
    }

    #[test]
    fn gemini_sse_keeps_last_cumulative_usage() {
        let body = format!("data: {CHUNK1}\r\n\r\ndata: {CHUNK2}\r\n\r\n");
        check(BodyFormat::Sse, &body, full_usage);
        let lf_only = format!("data:{CHUNK1}\n\ndata: {CHUNK2}\n\n");
        check(BodyFormat::Sse, &lf_only, full_usage);
    }

    #[test]
    fn gemini_json_array_stream_and_single_document() {
        check(
            BodyFormat::Json,
            &format!("[{CHUNK1}\r\n,\r\n{CHUNK2}]"),
            full_usage,
        );
        check(BodyFormat::Json, CHUNK2, full_usage);
    }

    #[test]
    fn mid_stream_errors_and_block_reasons() {
        let body = format!(
            r#"[{CHUNK1},{{"error":{{"code":500,"message":"Internal error encountered.","status":"INTERNAL"}}}}]"#
        );
        check(BodyFormat::Json, &body, |m| {
            assert_eq!(m.error_status.as_deref(), Some("INTERNAL"));
            assert_eq!(m.error_message.as_deref(), Some("Internal error encountered."));
            assert_eq!(m.usage.candidates_tokens, Some(3));
        });
        let blocked = r#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":12,"totalTokenCount":12}}"#;
        check(BodyFormat::Json, blocked, |m| {
            assert_eq!(m.block_reason.as_deref(), Some("SAFETY"));
            assert_eq!(m.finish_reason, None);
            assert_eq!(m.usage.total_tokens, Some(12));
        });
    }

    #[test]
    fn openai_stream_with_usage_chunk_and_done() {
        let body = concat!(
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}],\"usage\":null}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":7,\"total_tokens\":19,",
            "\"completion_tokens_details\":{\"reasoning_tokens\":2},\"prompt_tokens_details\":{\"cached_tokens\":3}}}\n\n",
            "data: [DONE]\n\n"
        );
        check(BodyFormat::Sse, body, |m| {
            assert_eq!(m.finish_reason.as_deref(), Some("stop"));
            assert_eq!(m.usage.prompt_tokens, Some(12));
            assert_eq!(m.usage.candidates_tokens, Some(7));
            assert_eq!(m.usage.thoughts_tokens, Some(2));
            assert_eq!(m.usage.cached_tokens, Some(3));
            assert_eq!(m.usage.total_tokens, Some(19));
        });
    }

    #[test]
    fn lookalike_paths_and_garbage_are_ignored() {
        let nested = r#"{"x":{"usageMetadata":{"promptTokenCount":99}},"candidates":[{"content":{"parts":[{"text":"usageMetadata"}]}}]}"#;
        check(BodyFormat::Json, nested, |m| {
            assert_eq!(m.usage, Usage::default())
        });
        check(BodyFormat::Json, "}}]]{{[[\"\\", |m| {
            assert_eq!(m.usage, Usage::default())
        });
        check(
            BodyFormat::Sse,
            "event: x\nid: 3\n: comment\ndatum: {}\n\n",
            |m| assert_eq!(m.finish_reason, None),
        );
    }
}
