//! Empty answers (`--retry-empty`): Gemini sometimes answers 200 with nothing in it (no
//! candidates, or a candidate that stopped with no parts), and another key often
//! answers properly. Such an answer is retried once on another key before the client
//! sees it. A safety or recitation block is not empty: it is the model's verdict, and
//! it is passed on.

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
    parts: Vec<serde_json::Map<String, serde_json::Value>>,
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
        EmptyCheck::Gemini => gemini(body),
        EmptyCheck::OpenAi => openai(body),
    }
}

fn gemini(body: &[u8]) -> Option<Empty> {
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
        reason_ok && !parts.iter().any(has_content)
    });
    empty.then(|| Empty {
        why: format!("finishReason {} with no parts", finish(&answer.candidates[0])),
        total_tokens,
    })
}

/// A part with something for the client: text that is not a thought, or anything that
/// is not text (a function call, inline data, code, …).
fn has_content(part: &serde_json::Map<String, serde_json::Value>) -> bool {
    let thought = part.get("thought").and_then(serde_json::Value::as_bool) == Some(true);
    part.iter().any(|(name, value)| match name.as_str() {
        "text" => !thought && value.as_str().is_some_and(|t| !t.is_empty()),
        "thought" | "thoughtSignature" => false,
        _ => true,
    })
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
