//! What a request cost: a price table per model, in USD per million tokens, applied to
//! the usage the answer reported.
//!
//! Gemini bills prompt tokens (less the cached ones) at the input price, cached tokens
//! at the cached price, candidates at the output price and thinking tokens at the
//! thinking price (the output price unless the table says otherwise). Some models have
//! a higher tier for prompts over 200k tokens; it applies to the whole request.
//!
//! Costs are counted in nano-dollars (integers) so budgets add up exactly however many
//! requests go into them.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One model's prices, USD per million tokens.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    pub input: f64,
    #[serde(default)]
    pub output: f64,
    /// Thinking tokens; the output price when absent.
    #[serde(default)]
    pub thinking: Option<f64>,
    /// Cached prompt tokens; the input price when absent.
    #[serde(default)]
    pub cached: Option<f64>,
    /// The higher tier, for prompts over `long_context_threshold` tokens.
    #[serde(default)]
    pub long_context: Option<LongContextPrice>,
}

/// The prices above a prompt size (Gemini's "> 200k tokens" tier).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongContextPrice {
    #[serde(default = "default_threshold")]
    pub threshold: u64,
    pub input: f64,
    pub output: f64,
    #[serde(default)]
    pub thinking: Option<f64>,
    #[serde(default)]
    pub cached: Option<f64>,
}

fn default_threshold() -> u64 {
    200_000
}

/// The tokens an answer reported (Gemini's `usageMetadata`, or OpenAI's usage).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// Includes the cached tokens, as Gemini reports it.
    pub prompt: u64,
    pub candidates: u64,
    pub thoughts: u64,
    pub cached: u64,
}

const NANOS_PER_USD: f64 = 1e9;

impl ModelPrice {
    /// The cost of `usage` in nano-dollars.
    pub fn cost_nanos(&self, usage: &TokenUsage) -> u64 {
        let (input, output, thinking, cached) = match &self.long_context {
            Some(long) if usage.prompt > long.threshold => {
                (long.input, long.output, long.thinking, long.cached)
            }
            _ => (self.input, self.output, self.thinking, self.cached),
        };
        let thinking = thinking.unwrap_or(output);
        let cached_price = cached.unwrap_or(input);
        let cached_tokens = usage.cached.min(usage.prompt);
        let fresh_prompt = usage.prompt - cached_tokens;
        // USD per million tokens = nano-dollars per 1000 tokens... per token: price * 1000.
        let nanos = fresh_prompt as f64 * input
            + cached_tokens as f64 * cached_price
            + usage.candidates as f64 * output
            + usage.thoughts as f64 * thinking;
        (nanos * (NANOS_PER_USD / 1e6)).round().max(0.0) as u64
    }
}

/// Nano-dollars as dollars, for the log and the CLI.
pub fn nanos_to_usd(nanos: u64) -> f64 {
    nanos as f64 / NANOS_PER_USD
}

/// `$1.50`, `$0.005`: cents always, more digits only where the amount has them.
pub fn format_usd(nanos: u64) -> String {
    let cents = format!("{:.2}", nanos_to_usd(nanos));
    let exact = format!("{:.9}", nanos_to_usd(nanos));
    let exact = exact.trim_end_matches('0');
    match exact.len() > cents.len() {
        true => format!("${exact}"),
        false => format!("${cents}"),
    }
}

/// Dollars as nano-dollars (budgets); negative and non-finite values are 0.
pub fn usd_to_nanos(usd: f64) -> u64 {
    if usd.is_finite() && usd > 0.0 {
        (usd * NANOS_PER_USD).round() as u64
    } else {
        0
    }
}

/// Prices for every model the proxy knows. A name is found exactly first, then by the
/// longest matching pattern ending in `*` (`gemini-2.5-flash*` covers its dated
/// previews); `models/` in front is ignored.
#[derive(Clone, Debug, PartialEq)]
pub struct PriceTable {
    exact: BTreeMap<String, ModelPrice>,
    /// (prefix, price), longest prefix first.
    prefixes: Vec<(String, ModelPrice)>,
}

/// The file format of `--prices`: `[models."name"]` tables.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    #[serde(default)]
    replace_defaults: bool,
    #[serde(default)]
    models: BTreeMap<String, ModelPrice>,
}

impl Default for PriceTable {
    fn default() -> Self {
        Self::builtin()
    }
}

impl PriceTable {
    fn from_entries(entries: impl IntoIterator<Item = (String, ModelPrice)>) -> Self {
        let mut table = Self {
            exact: BTreeMap::new(),
            prefixes: Vec::new(),
        };
        for (name, price) in entries {
            table.insert(name, price);
        }
        table
    }

    fn insert(&mut self, name: String, price: ModelPrice) {
        let name = name.trim_start_matches("models/").to_string();
        match name.strip_suffix('*') {
            Some(prefix) => {
                self.prefixes.retain(|(p, _)| p != prefix);
                self.prefixes.push((prefix.to_string(), price));
                self.prefixes
                    .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
            }
            None => {
                self.exact.insert(name, price);
            }
        }
    }

    /// The built-in prices (Gemini API paid tier, as published in late 2026), which a
    /// `--prices` file overrides model by model.
    pub fn builtin() -> Self {
        let p = |input, output, cached| ModelPrice {
            input,
            output,
            thinking: None,
            cached: Some(cached),
            long_context: None,
        };
        let tiered = |input, output, cached, long_input, long_output, long_cached| ModelPrice {
            long_context: Some(LongContextPrice {
                threshold: default_threshold(),
                input: long_input,
                output: long_output,
                thinking: None,
                cached: Some(long_cached),
            }),
            ..p(input, output, cached)
        };
        Self::from_entries([
            ("gemini-3-pro*".into(), tiered(2.0, 12.0, 0.2, 4.0, 18.0, 0.4)),
            ("gemini-3-flash*".into(), p(0.5, 3.0, 0.05)),
            (
                "gemini-2.5-pro*".into(),
                tiered(1.25, 10.0, 0.125, 2.5, 15.0, 0.25),
            ),
            ("gemini-2.5-flash*".into(), p(0.3, 2.5, 0.03)),
            ("gemini-2.5-flash-lite*".into(), p(0.1, 0.4, 0.01)),
            ("gemini-2.5-flash-image*".into(), p(0.3, 30.0, 0.03)),
            ("gemini-2.0-flash*".into(), p(0.1, 0.4, 0.025)),
            ("gemini-2.0-flash-lite*".into(), p(0.075, 0.3, 0.075)),
            ("gemini-flash-latest".into(), p(0.3, 2.5, 0.03)),
            ("gemini-flash-lite-latest".into(), p(0.1, 0.4, 0.01)),
            (
                "gemini-pro-latest".into(),
                tiered(1.25, 10.0, 0.125, 2.5, 15.0, 0.25),
            ),
            ("gemini-embedding-001".into(), p(0.15, 0.0, 0.15)),
            ("gemini-embedding*".into(), p(0.15, 0.0, 0.15)),
            ("text-embedding-004".into(), p(0.0, 0.0, 0.0)),
            ("embedding-001".into(), p(0.0, 0.0, 0.0)),
        ])
    }

    /// The built-in table with a TOML file's models laid over it (or in its place, with
    /// `replace_defaults = true`). The error names what is wrong, line included.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let file: PriceFile = toml::from_str(text).map_err(|e| format!("price table: {e}"))?;
        for (name, price) in &file.models {
            let all = [
                Some(price.input),
                Some(price.output),
                price.thinking,
                price.cached,
            ];
            let long = price.long_context.as_ref();
            let long_all = long.map(|l| [Some(l.input), Some(l.output), l.thinking, l.cached]);
            let valid = |v: &Option<f64>| v.is_none_or(|v| v.is_finite() && v >= 0.0);
            if !all.iter().all(valid) || !long_all.iter().flatten().all(valid) {
                return Err(format!("price table: model {name}: prices must be numbers ≥ 0"));
            }
        }
        let mut table = if file.replace_defaults {
            Self::from_entries([])
        } else {
            Self::builtin()
        };
        for (name, price) in file.models {
            table.insert(name, price);
        }
        Ok(table)
    }

    /// The price of `model`, if the table knows it.
    pub fn price(&self, model: &str) -> Option<&ModelPrice> {
        let model = model.trim_start_matches("models/");
        self.exact.get(model).or_else(|| {
            self.prefixes
                .iter()
                .find(|(prefix, _)| model.starts_with(prefix.as_str()))
                .map(|(_, price)| price)
        })
    }

    /// The cost of `usage` on `model` in nano-dollars; `None` when the model is unknown.
    pub fn cost_nanos(&self, model: &str, usage: &TokenUsage) -> Option<u64> {
        self.price(model).map(|price| price.cost_nanos(usage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(prompt: u64, candidates: u64, thoughts: u64, cached: u64) -> TokenUsage {
        TokenUsage {
            prompt,
            candidates,
            thoughts,
            cached,
        }
    }

    #[test]
    fn a_cost_adds_each_kind_of_token_at_its_price() {
        let table = PriceTable::builtin();
        // 2.5 Flash: 1M fresh prompt tokens $0.30, 1M output $2.50, thinking as output.
        let cost = table.cost_nanos("gemini-2.5-flash", &usage(1_000_000, 1_000_000, 1_000_000, 0));
        assert_eq!(cost, Some(5_300_000_000));
        // Cached tokens are part of the prompt count and billed at the cached price.
        let cost = table.cost_nanos("gemini-2.5-flash", &usage(1_000_000, 0, 0, 400_000));
        assert_eq!(cost, Some(600_000 * 300 + 400_000 * 30));
        // One token: 300 nano-dollars; exact in integers, however many add up.
        assert_eq!(
            table.cost_nanos("gemini-2.5-flash", &usage(1, 0, 0, 0)),
            Some(300)
        );
    }

    #[test]
    fn the_long_context_tier_prices_the_whole_request() {
        let table = PriceTable::builtin();
        let short = table.cost_nanos("gemini-2.5-pro", &usage(200_000, 1_000, 0, 0));
        assert_eq!(short, Some(200_000 * 1_250 + 1_000 * 10_000));
        let long = table.cost_nanos("gemini-2.5-pro", &usage(200_001, 1_000, 0, 0));
        assert_eq!(long, Some(200_001 * 2_500 + 1_000 * 15_000));
    }

    #[test]
    fn names_match_exactly_then_by_the_longest_pattern() {
        let table = PriceTable::builtin();
        let input = |m: &str| table.price(m).map(|p| p.input);
        assert_eq!(input("gemini-2.5-flash"), Some(0.3));
        assert_eq!(input("models/gemini-2.5-flash-preview-09-2025"), Some(0.3));
        assert_eq!(input("gemini-2.5-flash-lite"), Some(0.1));
        assert_eq!(input("gemini-2.5-flash-lite-preview-06-17"), Some(0.1));
        assert_eq!(input("gemini-3-pro-preview"), Some(2.0));
        assert_eq!(input("text-embedding-004"), Some(0.0));
        assert_eq!(input("my-tuned-model"), None);
        assert_eq!(table.cost_nanos("my-tuned-model", &usage(10, 10, 0, 0)), None);
    }

    #[test]
    fn a_file_overrides_model_by_model_or_replaces_the_table() {
        let text = r#"
            [models."gemini-2.5-flash"]
            input = 1.0
            output = 2.0
            thinking = 4.0

            [models."my-tuned-*"]
            input = 0.5
            output = 0.5
        "#;
        let table = PriceTable::from_toml(text).unwrap_or_else(|e| panic!("{e}"));
        let cost = table.cost_nanos("gemini-2.5-flash", &usage(1, 1, 1, 0));
        assert_eq!(cost, Some(1_000 + 2_000 + 4_000));
        assert_eq!(table.price("my-tuned-model").map(|p| p.output), Some(0.5));
        assert_eq!(
            table.price("gemini-2.5-pro").map(|p| p.input),
            Some(1.25),
            "the rest stays"
        );

        let replaced = PriceTable::from_toml("replace_defaults = true\n[models.a]\ninput = 1\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(replaced.price("gemini-2.5-pro").is_none());
        assert_eq!(replaced.price("a").map(|p| p.output), Some(0.0));
    }

    #[test]
    fn a_bad_file_says_what_is_wrong() {
        for (text, says) in [
            ("[models.a]\ninput = -1\n", "≥ 0"),
            ("[models.a]\ninput = 1\nouptut = 2\n", "ouptut"),
            ("[models.a]\noutput = 2\n", "input"),
            ("models = 3", "models"),
        ] {
            let error = PriceTable::from_toml(text).err().unwrap_or_default();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn dollars_and_nanos_convert_both_ways() {
        assert_eq!(usd_to_nanos(1.5), 1_500_000_000);
        assert_eq!(usd_to_nanos(-1.0), 0);
        assert_eq!(usd_to_nanos(f64::NAN), 0);
        assert!((nanos_to_usd(1_500_000_000) - 1.5).abs() < 1e-12);
        assert_eq!(format_usd(1_500_000_000), "$1.50");
        assert_eq!(format_usd(5_000_000), "$0.005");
        assert_eq!(format_usd(0), "$0.00");
        assert_eq!(format_usd(2_800_001), "$0.002800001");
    }
}
