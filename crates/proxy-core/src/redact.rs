//! Scrubbing upstream keys out of text before it is logged or returned.
//!
//! Google echoes the key in some error messages (`Consumer 'api_key:AIza…' has been
//! suspended`). Known secrets are replaced exactly; anything shaped like a Gemini key
//! (`AIza…`, `AQ.…`, `IQ.…`, or whatever follows `api_key:`) is masked as well, so a key
//! the pool does not know about (removed a second ago, another project's) cannot leak.

use crate::keys::mask_key;

/// Shortest run after a key prefix that we treat as a key. Real keys are 39+ chars.
const MIN_KEY_BODY: usize = 16;
/// Characters `mask_key` keeps before its `…`.
const MASK_HEAD: usize = 4;
const API_KEY_LABEL: &str = "api_key:";
const PREFIXES: [&str; 4] = [API_KEY_LABEL, "AIza", "AQ.", "IQ."];

/// Returns `text` with every known secret and every key-shaped token masked.
pub fn scrub(text: &str, known_secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for secret in known_secrets {
        if secret.len() >= 8 && out.contains(secret) {
            out = out.replace(secret, &mask_key(secret));
        }
    }
    mask_key_shaped_tokens(&out)
}

/// True when `text` contains any of `secrets` (used by tests and debug assertions).
pub fn contains_any(text: &str, secrets: &[&str]) -> bool {
    secrets.iter().any(|s| !s.is_empty() && text.contains(s))
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

fn mask_key_shaped_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((at, prefix)) = earliest_prefix(rest) {
        out.push_str(&rest[..at]);
        let after_prefix = &rest[at + prefix.len()..];
        let body_len = after_prefix
            .char_indices()
            .find(|(_, c)| !is_key_char(*c))
            .map_or(after_prefix.len(), |(i, _)| i);
        // After `api_key:` anything is a key; a bare prefix needs a key-length body.
        let labelled = prefix == API_KEY_LABEL;
        let token_start = if labelled { at + prefix.len() } else { at };
        let token = &rest[token_start..at + prefix.len() + body_len];
        let is_key = if labelled {
            body_len > 0 && !is_mask(&after_prefix[..body_len], &after_prefix[body_len..])
        } else {
            body_len >= MIN_KEY_BODY
        };
        out.push_str(&rest[at..token_start]);
        if is_key {
            out.push_str(&mask_key(token));
        } else {
            out.push_str(token);
        }
        rest = &after_prefix[body_len..];
    }
    out.push_str(rest);
    out
}

/// True when a labelled token is already a mask (`AIza…1234`, from a known secret or an
/// earlier scrub): a head no longer than the mask's, then its `…`. Masking it again
/// would read `…****…1234`.
fn is_mask(body: &str, after: &str) -> bool {
    body.chars().count() <= MASK_HEAD && after.starts_with('…')
}

fn earliest_prefix(text: &str) -> Option<(usize, &'static str)> {
    PREFIXES
        .iter()
        .filter_map(|p| text.find(p).map(|at| (at, *p)))
        .min_by_key(|(at, p)| (*at, std::cmp::Reverse(p.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AIzaSyAbcdefghijklmnopqrstuvwxyz0123456";

    fn check(input: &str, known: &[&str], must_not_contain: &[&str], must_contain: &[&str]) {
        let out = scrub(input, known);
        for s in must_not_contain {
            assert!(!out.contains(s), "{out:?} still contains {s:?}");
        }
        for s in must_contain {
            assert!(out.contains(s), "{out:?} lost {s:?}");
        }
    }

    #[test]
    fn scrubs_known_and_key_shaped_tokens() {
        check(
            &format!("Permission denied: Consumer 'api_key:{KEY}' has been suspended."),
            &[],
            &[KEY, "bcdefghij"],
            &["Permission denied", "api_key:AIza…3456", "has been suspended."],
        );
        check(
            &format!("bad key {KEY}!"),
            &[KEY],
            &[KEY],
            &["bad key AIza…3456!"],
        );
        check(
            "token AQ.Ab8RN6Lxxxxxxxxxxxxxxxxxxxxxxxxxxx end",
            &[],
            &["Ab8RN6Lxxxxxxxx"],
            &["token AQ.A…xxxx end"],
        );
        check(
            "odd-secret-value here",
            &["odd-secret-value"],
            &["odd-secret-value"],
            &["here"],
        );
    }

    #[test]
    fn a_known_key_after_api_key_is_masked_once() {
        let text = format!("Permission denied: Consumer 'api_key:{KEY}' has been suspended.");
        assert_eq!(
            scrub(&text, &[KEY]),
            "Permission denied: Consumer 'api_key:AIza…3456' has been suspended."
        );
        // Scrubbing is idempotent: text scrubbed once (a log, a passed-on error) stays.
        let once = scrub(&text, &[]);
        assert_eq!(scrub(&once, &[KEY]), once);
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        for text in [
            "The model is overloaded.",
            "AIza short",
            "IQ.test",
            "",
            "ünïcödé AIza",
        ] {
            assert_eq!(scrub(text, &[]), text);
        }
    }

    #[test]
    fn contains_any_detects() {
        assert!(contains_any(&format!("x{KEY}y"), &[KEY]));
        assert!(!contains_any("nothing", &[KEY, ""]));
    }
}
