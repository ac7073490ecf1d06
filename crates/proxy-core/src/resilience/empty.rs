//! Empty answers (`--retry-empty`): Gemini sometimes answers 200 with nothing in it (no
//! candidates, or a candidate that stopped with no parts), and another key often
//! answers properly. Such an answer is retried once on another key before the client
//! sees it. A safety or recitation block is not empty: it is the model's verdict, and
//! it is passed on.
//!
//! Streams (SSE: Gemini `alt=sse` and OpenAI streams) are checked while nothing has
//! been sent: their start is held back until an event with something in it arrives
//! (then everything goes on at once), or the stream ends with nothing, which counts as
//! an empty answer. A thought counts as something in a stream, so thinking is never
//! held back. Gemini's JSON-array streams are not checked (their elements cannot be
//! told apart before the array ends without a parser of their own).

use serde::Deserialize;

/// Which dialect's answers a request gets checked in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EmptyCheck {
    /// Not checked (streams, embeddings, counts, `--retry-empty` off).
    #[default]
    Off,
    /// A non-streamed `generateContent`.
    Gemini,
    /// A non-streamed OpenAI chat completion.
    OpenAi,
    /// A Gemini `streamGenerateContent?alt=sse`.
    GeminiStream,
    /// An OpenAI chat completion stream.
    OpenAiStream,
}

impl EmptyCheck {
    /// Checks a stream, whose start is held back only until it decides.
    pub fn is_stream(self) -> bool {
        matches!(self, Self::GeminiStream | Self::OpenAiStream)
    }

    /// Whether the start read so far decides (an event with something in it arrived);
    /// always false off streams, which are read to the end or the peek's bound.
    pub fn decided(self, start: &[u8]) -> bool {
        match self {
            Self::GeminiStream | Self::OpenAiStream => {
                complete_events(start).any(|event| self.event_is_empty(&event).is_none())
            }
            Self::Off | Self::Gemini | Self::OpenAi => false,
        }
    }

    /// `Some` when one stream event has nothing in it.
    fn event_is_empty(self, data: &[u8]) -> Option<Empty> {
        match self {
            Self::GeminiStream => gemini(data, true),
            Self::OpenAiStream if data == b"[DONE]" => Some(Empty {
                why: "done".into(),
                total_tokens: None,
            }),
            Self::OpenAiStream => openai(data),
            Self::Off | Self::Gemini | Self::OpenAi => None,
        }
    }
}

/// The data of each whole event in an SSE text (events end at a blank line; comment
/// lines and events without data are skipped).
fn complete_events(text: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    let mut rest = text;
    std::iter::from_fn(move || {
        loop {
            let (end, gap) = event_end(rest)?;
            let event = &rest[..end];
            rest = &rest[end + gap..];
            let mut data = Vec::new();
            for line in event.split(|b| *b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if let Some(value) = line.strip_prefix(b"data:") {
                    if !data.is_empty() {
                        data.push(b'\n');
                    }
                    data.extend_from_slice(value.strip_prefix(b" ").unwrap_or(value));
                }
            }
            if !data.is_empty() {
                return Some(data);
            }
        }
    })
}

/// Where the first event ends, and the length of the blank line ending it.
fn event_end(text: &[u8]) -> Option<(usize, usize)> {
    let at = |gap: &[u8]| {
        text.windows(gap.len())
            .position(|w| w == gap)
            .map(|i| (i, gap.len()))
    };
    match (at(b"\n\n"), at(b"\r\n\r\n")) {
        (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// Whether a whole stream is an empty answer: every event had nothing in it.
fn stream_is_empty(check: EmptyCheck, body: &[u8]) -> Option<Empty> {
    let mut last = Empty {
        why: "a stream with no events".into(),
        total_tokens: None,
    };
    for event in complete_events(body) {
        let empty = check.event_is_empty(&event)?;
        if empty.why != "done" {
            last = Empty {
                why: empty.why,
                total_tokens: empty.total_tokens.or(last.total_tokens),
            };
        }
    }
    Some(Empty {
        why: format!("a stream with nothing in it ({})", last.why),
        ..last
    })
}

/// Why an answer counts as empty, and what it used (it is not what the client gets,
/// so its tokens go in the log's note).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Empty {
    pub why: String,
    pub total_tokens: Option<u64>,
}

/// Finish reasons that leave an answer empty by accident rather than by verdict.
const EMPTY_FINISH: [&str; 4] = ["STOP", "OTHER", "FINISH_REASON_UNSPECIFIED", "stop"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiAnswer {
    #[serde(default)]
    candidates: Vec<GeminiCandidate>,
    prompt_feedback: Option<serde::de::IgnoredAny>,
    usage_metadata: Option<GeminiUsage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiCandidate {
    content: Option<GeminiContent>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct GeminiContent {
    #[serde(default)]
    parts: Vec<GeminiPart>,
}

/// What the check needs of a part, read without keeping it: every non-streamed answer
/// is checked, and a map of `Value`s per part was most of the check's cost.
#[derive(Default)]
struct GeminiPart {
    /// `text` is a non-empty string.
    text: bool,
    /// `thought` is `true`.
    thought: bool,
    /// A field besides `text`, `thought` and `thoughtSignature` (a function call,
    /// inline data, …), whatever its value.
    other: bool,
}

impl<'de> Deserialize<'de> for GeminiPart {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = GeminiPart;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a part object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<GeminiPart, M::Error> {
                let mut part = GeminiPart::default();
                while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match &*name {
                        "text" => part.text |= map.next_value::<Shape>()? == Shape::NonEmptyText,
                        "thought" => part.thought |= map.next_value::<Shape>()? == Shape::True,
                        "thoughtSignature" => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            part.other = true;
                        }
                    }
                }
                Ok(part)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// The one thing a part's value says to the check.
#[derive(PartialEq, Eq)]
enum Shape {
    NonEmptyText,
    True,
    Other,
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> serde::de::Visitor<'de> for Any {
            type Value = Shape;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<Shape, E> {
                Ok(if v.is_empty() {
                    Shape::Other
                } else {
                    Shape::NonEmptyText
                })
            }
            fn visit_bool<E>(self, v: bool) -> Result<Shape, E> {
                Ok(if v { Shape::True } else { Shape::Other })
            }
            fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_unit<E>(self) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_none<E>(self) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Shape::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Shape::Other)
            }
        }
        deserializer.deserialize_any(Any)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiUsage {
    total_token_count: Option<u64>,
}

#[derive(Deserialize)]
struct OpenAiAnswer {
    #[serde(default)]
    choices: Vec<OpenAiChoice>,
    usage: Option<OpenAiUsage>,
}

#[derive(Deserialize)]
struct OpenAiChoice {
    /// A stream's chunks carry the same as `delta`.
    #[serde(alias = "delta")]
    message: Option<serde_json::Map<String, serde_json::Value>>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct OpenAiUsage {
    total_tokens: Option<u64>,
}

/// Whether a whole 2xx body is an empty answer; `None` for anything with content, a
/// block, or a body that is not the dialect's answer (passed on as it is).
pub fn empty_answer(check: EmptyCheck, body: &[u8]) -> Option<Empty> {
    match check {
        EmptyCheck::Off => None,
        EmptyCheck::Gemini => gemini(body, false),
        EmptyCheck::OpenAi => openai(body),
        EmptyCheck::GeminiStream | EmptyCheck::OpenAiStream => stream_is_empty(check, body),
    }
}

/// `thoughts_count`: in a stream a thought was sent on, so it is something.
fn gemini(body: &[u8], thoughts_count: bool) -> Option<Empty> {
    let answer: GeminiAnswer = serde_json::from_slice(body).ok()?;
    let total_tokens = answer.usage_metadata.and_then(|u| u.total_token_count);
    if answer.candidates.is_empty() {
        // No candidates because the prompt was blocked is a verdict, not an accident.
        return answer.prompt_feedback.is_none().then(|| Empty {
            why: "no candidates".into(),
            total_tokens,
        });
    }
    let finish = |c: &GeminiCandidate| c.finish_reason.clone().unwrap_or_else(|| "none".into());
    let empty = answer.candidates.iter().all(|c| {
        let reason_ok = c
            .finish_reason
            .as_deref()
            .is_none_or(|r| EMPTY_FINISH.contains(&r));
        let parts = c.content.as_ref().map_or(&[][..], |content| &content.parts[..]);
        reason_ok && !parts.iter().any(|part| has_content(part, thoughts_count))
    });
    empty.then(|| Empty {
        why: format!("finishReason {} with no parts", finish(&answer.candidates[0])),
        total_tokens,
    })
}

/// A part with something for the client: text that is not a thought (unless
/// `thoughts_count`), or anything that is not text (a function call, inline data, …).
fn has_content(part: &GeminiPart, thoughts_count: bool) -> bool {
    let thought = !thoughts_count && part.thought;
    part.other || (part.text && !thought)
}

fn openai(body: &[u8]) -> Option<Empty> {
    let answer: OpenAiAnswer = serde_json::from_slice(body).ok()?;
    let total_tokens = answer.usage.and_then(|u| u.total_tokens);
    if answer.choices.is_empty() {
        return Some(Empty {
            why: "no choices".into(),
            total_tokens,
        });
    }
    let empty = answer.choices.iter().all(|choice| {
        let reason_ok = choice
            .finish_reason
            .as_deref()
            .is_none_or(|r| EMPTY_FINISH.contains(&r));
        let message = choice.message.as_ref();
        let content = message.and_then(|m| m.get("content"));
        let text = content
            .and_then(serde_json::Value::as_str)
            .is_some_and(|t| !t.is_empty());
        let other = message.is_some_and(|m| {
            m.iter()
                .any(|(name, value)| name != "content" && name != "role" && !value.is_null())
        });
        reason_ok && !text && !other
    });
    empty.then(|| Empty {
        why: format!(
            "finish_reason {} with no content",
            answer.choices[0].finish_reason.as_deref().unwrap_or("none")
        ),
        total_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gemini_empty(body: &str) -> Option<String> {
        empty_answer(EmptyCheck::Gemini, body.as_bytes()).map(|e| e.why)
    }

    #[test]
    fn gemini_empty_answers_and_what_is_not_one() {
        assert_eq!(
            gemini_empty(r#"{"usageMetadata":{"totalTokenCount":9}}"#).as_deref(),
            Some("no candidates")
        );
        let stop = r#"{"candidates":[{"content":{"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"totalTokenCount":12}}"#;
        assert_eq!(
            empty_answer(EmptyCheck::Gemini, stop.as_bytes()),
            Some(Empty {
                why: "finishReason STOP with no parts".into(),
                total_tokens: Some(12)
            })
        );
        let empty_text = r#"{"candidates":[{"content":{"parts":[{"text":""}]},"finishReason":"OTHER"}]}"#;
        assert!(gemini_empty(empty_text).is_some());
        let thoughts_only =
            r#"{"candidates":[{"content":{"parts":[{"text":"hmm","thought":true}]},"finishReason":"STOP"}]}"#;
        assert!(gemini_empty(thoughts_only).is_some(), "thoughts are no answer");
        let signature_only = r#"{"candidates":[{"content":{"parts":[{"text":"","thoughtSignature":"c2ln"}]},"finishReason":"STOP"}]}"#;
        assert!(gemini_empty(signature_only).is_some(), "a signature is no answer");
        let not_text =
            r#"{"candidates":[{"content":{"parts":[{"text":7,"thought":"yes"}]},"finishReason":"STOP"}]}"#;
        assert!(
            gemini_empty(not_text).is_some(),
            "text that is not a string is none"
        );
        let unknown =
            r#"{"candidates":[{"content":{"parts":[{"executableCode":null}]},"finishReason":"STOP"}]}"#;
        assert!(
            gemini_empty(unknown).is_none(),
            "any other field counts as content"
        );
        assert!(
            gemini(thoughts_only.as_bytes(), true).is_none(),
            "but a streamed thought was sent on"
        );
        for answer in [
            r#"{"candidates":[{"content":{"parts":[{"text":"hi"}]},"finishReason":"STOP"}]}"#,
            r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{}}}]},"finishReason":"STOP"}]}"#,
            r#"{"candidates":[{"content":{"parts":[{"inlineData":{"mimeType":"image/png","data":"AA=="}}]}}]}"#,
            // Verdicts: passed on, not retried.
            r#"{"candidates":[{"finishReason":"SAFETY"}]}"#,
            r#"{"candidates":[{"finishReason":"RECITATION"}]}"#,
            r#"{"candidates":[{"content":{},"finishReason":"MAX_TOKENS"}]}"#,
            r#"{"promptFeedback":{"blockReason":"SAFETY"}}"#,
            // Not an answer at all.
            "not json",
            "[1]",
        ] {
            assert_eq!(gemini_empty(answer), None, "{answer}");
        }
        assert_eq!(empty_answer(EmptyCheck::Off, b"{}"), None);
    }

    const GEMINI_EMPTY_EVENT: &str = r#"{"candidates":[{"content":{"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"totalTokenCount":7}}"#;

    #[test]
    fn a_gemini_stream_decides_at_its_first_event_with_something() {
        let check = EmptyCheck::GeminiStream;
        let text = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]}}]}\r\n\r\n";
        assert!(check.decided(text.as_bytes()));
        assert!(
            !check.decided(&text.as_bytes()[..text.len() - 2]),
            "not whole yet"
        );
        let thought = r#"data: {"candidates":[{"content":{"parts":[{"text":"hm","thought":true}]}}]}"#;
        assert!(
            check.decided(format!("{thought}\n\n").as_bytes()),
            "a thought is sent on"
        );
        let nothing = format!("data: {GEMINI_EMPTY_EVENT}\r\n\r\n");
        assert!(!check.decided(nothing.as_bytes()));
        assert!(!check.decided(b": keep-alive\n\n"), "a comment is no event");
        assert_eq!(
            empty_answer(check, nothing.as_bytes()),
            Some(Empty {
                why: "a stream with nothing in it (finishReason STOP with no parts)".into(),
                total_tokens: Some(7),
            })
        );
        let blocked = "data: {\"candidates\":[{\"finishReason\":\"SAFETY\"}]}\n\n";
        assert!(check.decided(blocked.as_bytes()), "a verdict decides");
        assert_eq!(
            empty_answer(check, format!("{nothing}{blocked}").as_bytes()),
            None
        );
        assert_eq!(empty_answer(check, format!("{nothing}{text}").as_bytes()), None);
        assert_eq!(
            empty_answer(check, b"").map(|e| e.why).as_deref(),
            Some("a stream with nothing in it (a stream with no events)")
        );
        assert!(
            !EmptyCheck::Gemini.decided(text.as_bytes()),
            "non-streamed reads on"
        );
    }

    #[test]
    fn an_openai_stream_decides_at_its_first_delta_with_something() {
        let check = EmptyCheck::OpenAiStream;
        let role = r#"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#;
        let stop = r#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
        let usage = r#"data: {"choices":[],"usage":{"total_tokens":5}}"#;
        let empty = format!("{role}\n\n{stop}\n\n{usage}\n\ndata: [DONE]\n\n");
        assert!(!check.decided(empty.as_bytes()));
        let why = empty_answer(check, empty.as_bytes()).map(|e| (e.why, e.total_tokens));
        assert_eq!(
            why,
            Some(("a stream with nothing in it (no choices)".into(), Some(5)))
        );
        let text = r#"data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#;
        assert!(check.decided(format!("{role}\n\n{text}\n\n").as_bytes()));
        let tool = r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0}]}}]}"#;
        assert!(check.decided(format!("{tool}\n\n").as_bytes()));
    }

    #[test]
    fn openai_empty_answers_and_what_is_not_one() {
        let openai = |body: &str| empty_answer(EmptyCheck::OpenAi, body.as_bytes()).map(|e| e.why);
        let empty = r#"{"choices":[{"message":{"role":"assistant","content":""},"finish_reason":"stop"}],"usage":{"total_tokens":5}}"#;
        assert_eq!(
            openai(empty).as_deref(),
            Some("finish_reason stop with no content")
        );
        assert!(openai(r#"{"choices":[{"message":{"role":"assistant","content":null}}]}"#).is_some());
        assert_eq!(openai(r#"{"choices":[]}"#).as_deref(), Some("no choices"));
        for answer in [
            r#"{"choices":[{"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#,
            r#"{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"1"}]},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[{"message":{"role":"assistant","content":""},"finish_reason":"content_filter"}]}"#,
        ] {
            assert_eq!(openai(answer), None, "{answer}");
        }
    }
}
