//! What metrics say about a finished request, decided once for every platform that
//! exports them: bounded label values (a model the price table does not know is
//! `other`, a proxy key is its id, never its secret) and the token kinds.

use crate::governance::prices::PriceTable;
use crate::log::LogRecord;

/// The label of every model the price table does not know (bounds the label set:
/// clients choose model names).
pub const OTHER_MODEL: &str = "other";

/// `model` as a label: itself (without `models/`) when priced, else [`OTHER_MODEL`].
pub fn model_label<'a>(model: Option<&'a str>, prices: &PriceTable) -> &'a str {
    match model.map(|m| m.trim_start_matches("models/")) {
        Some(model) if prices.price(model).is_some() => model,
        _ => OTHER_MODEL,
    }
}

/// A proxy key as a label: its id, or `none` for a request no key was found for.
pub fn proxy_key_label(id: Option<i64>) -> String {
    id.map_or_else(|| "none".to_string(), |id| id.to_string())
}

/// The request's tokens by kind (`tokens_total{kind}`): prompt, output, thinking and
/// cached; kinds the answer did not report are left out.
pub fn tokens_by_kind(record: &LogRecord) -> impl Iterator<Item = (&'static str, u64)> {
    [
        ("prompt", record.prompt_tokens),
        ("output", record.candidates_tokens),
        ("thinking", record.thoughts_tokens),
        ("cached", record.cached_tokens),
    ]
    .into_iter()
    .filter_map(|(kind, count)| Some((kind, count?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_models_fold_into_other() {
        let prices = PriceTable::builtin();
        assert_eq!(model_label(Some("gemini-2.5-flash"), &prices), "gemini-2.5-flash");
        assert_eq!(
            model_label(Some("models/gemini-2.5-pro"), &prices),
            "gemini-2.5-pro"
        );
        assert_eq!(model_label(Some("my-own-model-4711"), &prices), OTHER_MODEL);
        assert_eq!(model_label(None, &prices), OTHER_MODEL);
    }

    #[test]
    fn tokens_are_listed_by_kind() {
        let record = LogRecord {
            prompt_tokens: Some(12),
            candidates_tokens: Some(9),
            cached_tokens: Some(0),
            ..LogRecord::default()
        };
        let kinds: Vec<_> = tokens_by_kind(&record).collect();
        assert_eq!(kinds, vec![("prompt", 12), ("output", 9), ("cached", 0)]);
        assert_eq!(proxy_key_label(Some(7)), "7");
        assert_eq!(proxy_key_label(None), "none");
    }
}
