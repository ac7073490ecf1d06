//! Token usage for OpenAI-compatible streams whose client did not ask for it.
//!
//! Google's OpenAI-compatible endpoint reports a stream's usage only when the request
//! sets `stream_options.include_usage`, in one extra chunk (`"choices": []` plus a
//! `usage` object) just before `data: [DONE]`. Without it the request log records no
//! tokens. So on OpenAI chat routes the proxy asks for usage anyway, reads it from the
//! upstream bytes as always, and removes that chunk before the client sees it.
//!
//! How a platform uses it, for an OpenAI-route chat-completions request:
//! 1. Before the upstream call: `if let Some(body) = request_usage(&body)`, send that
//!    body instead (its length changed) and keep a [`UsageChunkFilter`] for the answer.
//!    Never call it for Gemini-native bodies: they must pass byte for byte.
//! 2. On a 2xx SSE answer, per upstream chunk: feed the chunk to the
//!    [`MetaReader`](crate::stream_meta::MetaReader) first (it must see the usage), then
//!    send `filter.push(&chunk)` to the client (skip it when empty). Drop any upstream
//!    `content-length`: the client's body is shorter. Error answers pass unfiltered.
//! 3. When upstream ends: send `filter.finish()` if it is not empty.

use std::ops::Range;

use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// The body rewritten to ask for `stream_options.include_usage`, or `None` when it
/// needs no rewrite: not a JSON object, not `"stream": true`, usage already requested,
/// or a `stream_options` upstream would reject anyway (then it answers the client).
/// Every other byte of the body is kept, other `stream_options` fields included.
pub fn request_usage(body: &[u8]) -> Option<Bytes> {
    // A derived struct would also accept a JSON array, by position.
    if first_non_space(body) != Some(b'{') {
        return None;
    }
    let request: RequestProbe = serde_json::from_slice(body).ok()?;
    if request.stream != Some(true) {
        return None;
    }
    let (range, text): (Range<usize>, &[u8]) = match request.stream_options {
        None => {
            // The body has a `stream` field, so its object is not empty.
            let close = body.iter().rposition(|b| !b.is_ascii_whitespace())?;
            (close..close, b",\"stream_options\":{\"include_usage\":true}")
        }
        Some(options) if options.get() == "null" => {
            (range_in(body, options.get())?, b"{\"include_usage\":true}")
        }
        Some(options) => {
            let options = options.get();
            if !options.starts_with('{') {
                return None;
            }
            let probe: OptionsProbe = serde_json::from_str(options).ok()?;
            match probe.include_usage {
                Some(value) if asks_not(value) => (range_in(body, value.get())?, b"true"),
                Some(_) => return None,
                None => {
                    let open = range_in(body, options)?.start + 1;
                    let empty = first_non_space(&body[open..]) == Some(b'}');
                    let text: &[u8] = if empty {
                        b"\"include_usage\":true"
                    } else {
                        b"\"include_usage\":true,"
                    };
                    (open..open, text)
                }
            }
        }
    };
    let mut out = Vec::with_capacity(body.len() + text.len());
    out.extend_from_slice(&body[..range.start]);
    out.extend_from_slice(text);
    out.extend_from_slice(&body[range.end..]);
    Some(Bytes::from(out))
}

/// `false` and `null` ask for no usage and are replaced; `true` needs nothing, and any
/// other value is left for upstream to reject.
fn asks_not(value: &RawValue) -> bool {
    matches!(value.get(), "false" | "null")
}

#[derive(Deserialize)]
struct RequestProbe<'a> {
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default, borrow, deserialize_with = "present")]
    stream_options: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct OptionsProbe<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    include_usage: Option<&'a RawValue>,
}

/// `Some` whenever the field is there, `null` included (plain `Option` maps `null` to
/// `None`, and the rewrite would then add a second `stream_options`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Where `part`, borrowed out of `whole` by the parser, lies in it.
fn range_in(whole: &[u8], part: &str) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= whole.len()).then_some(start..end)
}

fn first_non_space(bytes: &[u8]) -> Option<u8> {
    bytes.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// Longest event held back for inspection. A usage-only chunk is a few hundred bytes;
/// a longer event goes out as it arrives, so memory stays bounded whatever upstream
/// sends (inline images run to megabytes).
const MAX_HELD: usize = 8 * 1024;

/// Passes an OpenAI SSE stream through unchanged except for its usage-only chunk (the
/// event whose JSON has `"choices": []` and a `usage` object), which it removes along
/// with that event's blank line. Events may be split anywhere across chunks; at most
/// one incomplete event (up to [`MAX_HELD`] bytes) is held back. A `usage` attached to
/// a chunk that also has choices is left alone: dropping it would lose content.
#[derive(Debug, Default)]
pub struct UsageChunkFilter {
    /// The current event's bytes, held until its blank line says whether it goes out.
    held: Vec<u8>,
    /// The current event outgrew [`MAX_HELD`]: the rest of it goes straight out.
    passing: bool,
    lines: Lines,
    /// The byte before was an event's end; a `\n` now completes its `\r\n` blank line
    /// and shares its fate (`true`: it was removed).
    last_event_removed: Option<bool>,
}

impl UsageChunkFilter {
    pub fn new() -> Self {
        Self::default()
    }

    /// The part of the stream so far that can go to the client now.
    pub fn push(&mut self, chunk: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(chunk.len());
        let mut start = 0;
        for (i, &byte) in chunk.iter().enumerate() {
            let last_removed = self.last_event_removed.take();
            match (self.lines.step(byte), last_removed) {
                (Step::CrLfTail, Some(removed)) => {
                    if !removed {
                        out.push(byte);
                    }
                    start = i + 1;
                }
                (Step::EventEnd, _) => {
                    self.take(&chunk[start..=i], &mut out);
                    self.last_event_removed = Some(self.end_event(&mut out));
                    start = i + 1;
                }
                _ => {}
            }
        }
        self.take(&chunk[start..], &mut out);
        Bytes::from(out)
    }

    /// What is left when upstream ends: an unterminated last event, unless it is the
    /// usage chunk (clients discard an unterminated event anyway).
    pub fn finish(mut self) -> Bytes {
        let mut out = Vec::new();
        if !self.passing && !self.held.is_empty() {
            self.end_event(&mut out);
        }
        Bytes::from(out)
    }

    fn take(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.passing {
            out.extend_from_slice(bytes);
            return;
        }
        if self.held.len() + bytes.len() > MAX_HELD {
            out.append(&mut self.held);
            out.extend_from_slice(bytes);
            self.passing = true;
        } else {
            self.held.extend_from_slice(bytes);
        }
    }

    /// Sends or removes the event just ended; `true` when removed.
    fn end_event(&mut self, out: &mut Vec<u8>) -> bool {
        if std::mem::take(&mut self.passing) {
            return false;
        }
        let remove = is_usage_only(&self.held);
        if !remove {
            out.extend_from_slice(&self.held);
        }
        self.held.clear();
        remove
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Other,
    /// A blank line: the event is complete.
    EventEnd,
    /// The `\n` of a `\r\n` whose `\r` already ended a line.
    CrLfTail,
}

/// SSE line ends (`\r\n`, `\n` or `\r`), followed byte by byte.
#[derive(Debug, Default)]
struct Lines {
    in_line: bool,
    after_cr: bool,
}

impl Lines {
    fn step(&mut self, byte: u8) -> Step {
        if std::mem::replace(&mut self.after_cr, byte == b'\r') && byte == b'\n' {
            return Step::CrLfTail;
        }
        if byte != b'\r' && byte != b'\n' {
            self.in_line = true;
            return Step::Other;
        }
        if std::mem::replace(&mut self.in_line, false) {
            Step::Other
        } else {
            Step::EventEnd
        }
    }
}

/// Whether a complete event is the usage-only chunk: its data (the `data:` lines'
/// values joined by `\n`, as an SSE client reads them) is an object with an empty
/// `choices` array and a `usage` object.
fn is_usage_only(event: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Chunk {
        choices: Option<Vec<IgnoredAny>>,
        usage: Option<serde_json::Map<String, serde_json::Value>>,
    }
    let data = event_data(event);
    if first_non_space(&data) != Some(b'{') {
        return false;
    }
    match serde_json::from_slice::<Chunk>(&data) {
        Ok(chunk) => chunk.choices.is_some_and(|c| c.is_empty()) && chunk.usage.is_some(),
        Err(_) => false,
    }
}

fn event_data(event: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    let mut first = true;
    for line in event.split(|&b| b == b'\n' || b == b'\r') {
        let value = match line.strip_prefix(b"data") {
            Some(b"") => b"".as_slice(),
            Some(rest) => match rest.strip_prefix(b":") {
                Some(value) => value.strip_prefix(b" ").unwrap_or(value),
                None => continue,
            },
            None => continue,
        };
        if !std::mem::replace(&mut first, false) {
            data.push(b'\n');
        }
        data.extend_from_slice(value);
    }
    data
}

#[cfg(test)]
#[path = "openai_usage_tests.rs"]
mod tests;
