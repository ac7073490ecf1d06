//! Model fallback: which model serves a request when its own is overloaded (5xx from
//! the keys tried, its breaker open) or every key is rate limited for it. Given as
//! `FROM=TO` pairs (`--fallback`, `GEMINI_PROXY_FALLBACK="a=b,c=d"`); chains follow
//! (`a=b`, `b=c`: a falls back to b, then c), loops are refused when the pairs are read.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::platform::{ModelIn, PreparedRequest};

/// The operator's fallback pairs, checked: one target per model, no loops.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fallbacks {
    next: BTreeMap<String, String>,
}

impl Fallbacks {
    /// Reads pairs, each `FROM=TO` or a comma-separated list of them (the environment
    /// variable's form). A `models/` prefix is dropped, as clients may send it.
    pub fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut next = BTreeMap::new();
        for pair in items.into_iter().flat_map(|item| item.split(',')) {
            let pair = pair.trim();
            if pair.is_empty() {
                continue;
            }
            let Some((from, to)) = pair.split_once('=') else {
                return Err(format!("fallback {pair:?}: expected FROM=TO"));
            };
            let (from, to) = (model_name(from), model_name(to));
            if from.is_empty() || to.is_empty() {
                return Err(format!("fallback {pair:?}: both models must be named (FROM=TO)"));
            }
            if from == to {
                return Err(format!("fallback {pair:?}: a model cannot fall back to itself"));
            }
            match next.get(&from) {
                Some(earlier) if *earlier != to => {
                    return Err(format!(
                        "fallback for {from} given twice ({earlier} and {to}); give one, and chain further ones ({to}=…)"
                    ));
                }
                _ => {
                    next.insert(from, to);
                }
            }
        }
        let fallbacks = Self { next };
        fallbacks.check_loops()?;
        Ok(fallbacks)
    }

    pub fn is_empty(&self) -> bool {
        self.next.is_empty()
    }

    /// The model that serves `model`'s requests when it cannot.
    pub fn next(&self, model: &str) -> Option<&str> {
        self.next.get(model_name_ref(model)).map(String::as_str)
    }

    /// Every model after `model` in its chain, in order.
    pub fn chain(&self, model: &str) -> Vec<&str> {
        let mut chain = Vec::new();
        let mut current = model_name_ref(model);
        while let Some(next) = self.next.get(current) {
            // Loops are refused by `parse`; this only guards a hand-built value.
            if chain.contains(&next.as_str()) || next == model {
                break;
            }
            chain.push(next.as_str());
            current = next;
        }
        chain
    }

    /// The pairs as given, `FROM=TO` in model order (for `/healthz` and the logs).
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.next.iter().map(|(from, to)| (from.as_str(), to.as_str()))
    }

    fn check_loops(&self) -> Result<(), String> {
        for start in self.next.keys() {
            let mut path = vec![start.as_str()];
            let mut current = start.as_str();
            while let Some(next) = self.next.get(current) {
                path.push(next);
                if next == start {
                    return Err(format!("fallbacks loop: {}", path.join(" → ")));
                }
                if path[..path.len() - 1].contains(&next.as_str()) {
                    // A loop further down the chain; it is reported from its own start.
                    break;
                }
                current = next;
            }
        }
        Ok(())
    }
}

/// `request` as it asks `to` instead of `from`: the path's `models/FROM:` or the
/// body's `model` field rewritten. `None` when the request does not name `from` where
/// it says it does (then it cannot fall back).
pub fn retarget(request: &PreparedRequest, from: &str, to: &str) -> Option<PreparedRequest> {
    let mut retargeted = request.clone();
    match request.model_in {
        ModelIn::Nowhere => return None,
        ModelIn::Path => {
            let needle = format!("/models/{}:", model_name_ref(from));
            let at = request.path_and_query.find(&needle)?;
            let path = &request.path_and_query;
            retargeted.path_and_query = format!("{}/models/{to}:{}", &path[..at], &path[at + needle.len()..]);
        }
        ModelIn::Body => {
            let mut body: serde_json::Value = serde_json::from_slice(&request.body).ok()?;
            let named = body.get("model").and_then(serde_json::Value::as_str)?;
            if model_name_ref(named) != model_name_ref(from) {
                return None;
            }
            body["model"] = serde_json::Value::String(to.to_string());
            retargeted.body = Bytes::from(serde_json::to_vec(&body).ok()?);
        }
    }
    Some(retargeted)
}

fn model_name(text: &str) -> String {
    model_name_ref(text.trim()).to_string()
}

fn model_name_ref(text: &str) -> &str {
    text.strip_prefix("models/").unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_from_flags_and_the_environment_chain() {
        let fallbacks = Fallbacks::parse([
            "gemini-2.5-pro=gemini-2.5-flash",
            "models/gemini-2.5-flash=x, y=z",
        ])
        .unwrap_or_default();
        assert_eq!(fallbacks.next("gemini-2.5-pro"), Some("gemini-2.5-flash"));
        assert_eq!(fallbacks.next("models/gemini-2.5-pro"), Some("gemini-2.5-flash"));
        assert_eq!(fallbacks.chain("gemini-2.5-pro"), vec!["gemini-2.5-flash", "x"]);
        assert_eq!(fallbacks.chain("y"), vec!["z"]);
        assert!(fallbacks.chain("z").is_empty());
        assert_eq!(fallbacks.next("unknown"), None);
        assert!(Fallbacks::parse([""]).is_ok_and(|f| f.is_empty()));
        let again = Fallbacks::parse(["a=b", "a=b"]).unwrap_or_default();
        assert_eq!(again.pairs().collect::<Vec<_>>(), vec![("a", "b")]);
    }

    #[test]
    fn loops_and_malformed_pairs_are_refused_by_name() {
        let error = |items: &[&str]| Fallbacks::parse(items.iter().copied()).err().unwrap_or_default();
        assert!(error(&["a=b", "b=c", "c=a"]).contains("loop: a → b → c → a"));
        assert!(error(&["a=a"]).contains("itself"));
        assert!(error(&["a"]).contains("FROM=TO"));
        assert!(error(&["=b"]).contains("both models"));
        assert!(error(&["a=b", "a=c"]).contains("given twice"));
        assert!(
            Fallbacks::parse(["a=b", "b=c", "d=b"]).is_ok(),
            "two chains may join"
        );
    }

    fn request(path: &str, body: &str, model_in: ModelIn) -> PreparedRequest {
        PreparedRequest {
            method: "POST".into(),
            path_and_query: path.into(),
            headers: vec![],
            body: Bytes::from(body.to_string()),
            model_in,
            empty_check: Default::default(),
            empty_hold_ms: 0,
            stream: false,
        }
    }

    #[test]
    fn a_request_is_retargeted_where_it_names_its_model() {
        let gemini = request(
            "/v1beta/models/a:streamGenerateContent?alt=sse",
            "{}",
            ModelIn::Path,
        );
        let moved = retarget(&gemini, "a", "b").map(|r| r.path_and_query);
        assert_eq!(
            moved.as_deref(),
            Some("/v1beta/models/b:streamGenerateContent?alt=sse")
        );
        assert!(retarget(&gemini, "x", "b").is_none());
        let openai = request(
            "/v1beta/openai/chat/completions",
            r#"{"model":"models/a","stream":true,"messages":[{"content":"a"}]}"#,
            ModelIn::Body,
        );
        let moved = retarget(&openai, "a", "b").map(|r| r.body).unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(&moved).unwrap_or_default();
        assert_eq!(body["model"], "b");
        assert_eq!(body["stream"], true);
        assert_eq!(body["messages"][0]["content"], "a");
        assert!(retarget(&request("/v1beta/models", "", ModelIn::Nowhere), "a", "b").is_none());
    }
}
