//! The audit trail's fields: a hash of the prompt that identifies it without storing
//! it (`--log-bodies` stores bodies), and the client's user agent, bounded.

use sha2::{Digest, Sha256};

use crate::canonical::write_canonical;

/// The longest user agent kept, in characters.
pub const USER_AGENT_MAX: usize = 256;

/// The fields that hold a request's prompt, in every dialect: Gemini's generate and
/// count (`contents`, `systemInstruction`, `tools`, `toolConfig`, `cachedContent`),
/// embed (`content`, `requests`), OpenAI's chat and embeddings (`messages`, `tools`,
/// `input`). Generation settings (temperature, …) are not the prompt.
const PROMPT_FIELDS: [&str; 12] = [
    "cachedContent",
    "content",
    "contents",
    "input",
    "messages",
    "prompt",
    "requests",
    "systemInstruction",
    "system_instruction",
    "toolConfig",
    "tool_choice",
    "tools",
];

/// Hex SHA-256 over the prompt fields of a JSON body in canonical form (keys sorted,
/// no whitespace): the same prompt hashes the same however it is written, any change
/// to it hashes differently. `None` for a body that is not a JSON object or holds no
/// prompt field.
pub fn prompt_sha256(body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    let serde_json::Value::Object(mut map) = serde_json::from_slice(body).ok()? else {
        return None;
    };
    map.retain(|name, _| PROMPT_FIELDS.contains(&name.as_str()));
    if map.is_empty() {
        return None;
    }
    let mut canonical = Vec::with_capacity(body.len());
    write_canonical(&serde_json::Value::Object(map), &mut canonical);
    Some(crate::hex::encode(&Sha256::digest(&canonical)))
}

/// A user agent as kept: at most [`USER_AGENT_MAX`] characters.
pub fn user_agent(given: &str) -> String {
    given.chars().take(USER_AGENT_MAX).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_prompt_hashes_the_same_and_any_change_differently() {
        let a = prompt_sha256(
            br#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"temperature":0}}"#,
        );
        let same = prompt_sha256(br#"{ "generationConfig": {"temperature": 1}, "contents": [ {"parts":[{"text":"hi"}], "role":"user"} ] }"#);
        assert!(
            a.as_ref()
                .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        );
        assert_eq!(
            a, same,
            "key order, whitespace and settings do not change the prompt"
        );
        let other = prompt_sha256(br#"{"contents":[{"role":"user","parts":[{"text":"hi!"}]}]}"#);
        assert_ne!(a, other);
        let system = prompt_sha256(
            br#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"systemInstruction":{"parts":[{"text":"be brief"}]}}"#,
        );
        assert_ne!(a, system, "the system instruction is part of the prompt");
        let chat = prompt_sha256(br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
        assert!(chat.is_some());
        assert_ne!(
            chat,
            prompt_sha256(br#"{"model":"m","messages":[{"role":"user","content":"ho"}]}"#)
        );
        assert_eq!(prompt_sha256(b""), None);
        assert_eq!(prompt_sha256(b"[1]"), None);
        assert_eq!(prompt_sha256(br#"{"pageSize":5}"#), None, "no prompt");
    }

    #[test]
    fn user_agents_are_cut() {
        assert_eq!(user_agent("google-genai/1.0"), "google-genai/1.0");
        assert_eq!(user_agent(&"é".repeat(300)).chars().count(), USER_AGENT_MAX);
    }

    /// Stored hashes are searched later (`logs list --prompt-sha256`), so the hash of
    /// a prompt is pinned: a new build must find what an old one stored.
    #[test]
    fn a_prompts_hash_is_stable_across_builds() {
        let hash = prompt_sha256(
            "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"h\\u00e9 \\\"q\\\" \\n \u{1F600}\"}]}],\"tools\":[{\"x\":1.5,\"b\":null,\"a\":[true]}]}".as_bytes(),
        );
        assert_eq!(
            hash.as_deref(),
            Some("e406e2c43ce0f695115ebfb5bafdc4324663b306f36aee0037f75074ea28356a")
        );
    }
}
