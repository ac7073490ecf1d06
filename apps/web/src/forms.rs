//! What the governance forms post, and how it is read: a proxy key's policy (create and
//! edit) and an upstream key's limits. Every field is text, so any input deserializes and
//! a bad one becomes a [`FieldError`] naming the field (a 400 page), never a rejection.
//! The rules are the CLI's: empty, `0` or `none` clears a limit; dates and RFC 3339
//! times by [`proxy_core::civil::parse_instant`]; periods by [`BudgetPeriod::parse`].

use proxy_core::admin::ProxyKeyUpdate;
use proxy_core::civil::{format_utc, parse_instant};
use proxy_core::keys::Limits;
use proxy_core::policy::{BudgetPeriod, ProxyKeyPolicy};
use serde::Deserialize;

/// A field the operator must correct: its label as the form shows it, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub problem: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

fn bad(field: &'static str, problem: impl Into<String>) -> FieldError {
    FieldError {
        field,
        problem: problem.into(),
    }
}

fn clears(text: &str) -> bool {
    let text = text.trim();
    text.is_empty() || text.eq_ignore_ascii_case("none")
}

/// A count limit: empty, `0` or `none` is no limit.
fn limit(field: &'static str, text: &str) -> Result<Option<u64>, FieldError> {
    if clears(text) {
        return Ok(None);
    }
    let n = text.trim().parse::<u64>().map_err(|_| {
        bad(
            field,
            format!(
                "{:?} is not a whole number ≥ 0 (empty or 0: no limit)",
                text.trim()
            ),
        )
    })?;
    Ok((n > 0).then_some(n))
}

/// A budget in USD (`2.50`, `$2.50`): empty, `0` or `none` is no budget.
fn budget(text: &str) -> Result<Option<f64>, FieldError> {
    if clears(text) {
        return Ok(None);
    }
    let problem = || {
        bad(
            "budget (USD)",
            format!(
                "{:?} is not an amount of USD ≥ 0 (e.g. 25 or 2.50; empty or 0: no budget)",
                text.trim()
            ),
        )
    };
    let usd = text
        .trim()
        .trim_start_matches('$')
        .parse::<f64>()
        .map_err(|_| problem())?;
    if !usd.is_finite() || usd < 0.0 {
        return Err(problem());
    }
    Ok((usd > 0.0).then_some(usd))
}

/// One model name as the limits and policies keep it (no `models/` prefix).
fn model(field: &'static str, text: &str) -> Result<String, FieldError> {
    let name = text.trim().trim_start_matches("models/");
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(field, format!("{:?} is not a model name", text.trim())));
    }
    Ok(name.to_string())
}

/// A comma list of model names or globs; empty (or `none`) allows every model.
fn models(text: &str) -> Result<Vec<String>, FieldError> {
    let mut out = Vec::new();
    if clears(text) {
        return Ok(out);
    }
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let name = model("models", part)?;
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// A proxy key's create or edit form: every policy field, the name, and pass-through.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct PolicyForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub models: String,
    #[serde(default)]
    pub rpm: String,
    #[serde(default)]
    pub tpm: String,
    #[serde(default)]
    pub tokens_per_day: String,
    #[serde(default)]
    pub budget_usd: String,
    #[serde(default)]
    pub budget_period: String,
    #[serde(default)]
    pub expires: String,
    /// `allow` (also when absent) or `deny`.
    #[serde(default)]
    pub passthrough: String,
}

/// A number as its form field shows it: empty for no limit.
fn shown(value: Option<u64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

impl PolicyForm {
    /// The form filled with what a key has now (its edit form).
    pub fn of(name: &str, policy: &ProxyKeyPolicy) -> Self {
        Self {
            csrf: String::new(),
            name: name.to_string(),
            models: policy.models.join(", "),
            rpm: shown(policy.rpm),
            tpm: shown(policy.tpm),
            tokens_per_day: shown(policy.tokens_per_day),
            budget_usd: policy.budget_usd.map(|b| b.to_string()).unwrap_or_default(),
            budget_period: policy.budget_period.as_str().to_string(),
            expires: policy.expires_at_ms.map(format_utc).unwrap_or_default(),
            passthrough: if policy.passthrough { "allow" } else { "deny" }.to_string(),
        }
    }

    /// The name, trimmed; never empty.
    pub fn name(&self) -> Result<String, FieldError> {
        let name = self.name.trim();
        if name.is_empty() {
            return Err(bad("name", "must not be empty"));
        }
        Ok(name.to_string())
    }

    /// The whole policy the form describes, or the first field that is wrong (in the
    /// form's order).
    pub fn policy(&self) -> Result<ProxyKeyPolicy, FieldError> {
        let models = models(&self.models)?;
        let rpm = limit("rpm", &self.rpm)?;
        let tpm = limit("tpm", &self.tpm)?;
        let tokens_per_day = limit("tokens per day", &self.tokens_per_day)?;
        let budget_usd = budget(&self.budget_usd)?;
        let budget_period = if self.budget_period.trim().is_empty() {
            BudgetPeriod::default()
        } else {
            BudgetPeriod::parse(&self.budget_period).ok_or_else(|| {
                bad(
                    "budget period",
                    format!("{:?} is not day or month", self.budget_period.trim()),
                )
            })?
        };
        let expires_at_ms = if clears(&self.expires) || self.expires.trim().eq_ignore_ascii_case("never") {
            None
        } else {
            Some(parse_instant(&self.expires).map_err(|problem| bad("expires", problem))?)
        };
        let passthrough = match self.passthrough.trim() {
            "" | "allow" => true,
            "deny" => false,
            other => {
                return Err(bad("pass-through", format!("{other:?} is not allow or deny")));
            }
        };
        Ok(ProxyKeyPolicy {
            passthrough,
            models,
            rpm,
            tpm,
            tokens_per_day,
            budget_usd,
            budget_period,
            expires_at_ms,
        })
    }
}

/// The update that makes a key's policy `policy`, field by field (an edit form holds
/// every field, so every one is set; the limits left empty are cleared).
pub fn whole_update(policy: &ProxyKeyPolicy) -> ProxyKeyUpdate {
    ProxyKeyUpdate {
        passthrough: Some(policy.passthrough),
        models: Some(policy.models.clone()),
        rpm: Some(policy.rpm),
        tpm: Some(policy.tpm),
        tokens_per_day: Some(policy.tokens_per_day),
        budget_usd: Some(policy.budget_usd),
        budget_period: Some(policy.budget_period),
        expires_at_ms: Some(policy.expires_at_ms),
    }
}

/// An upstream key's limits form: for every model (no model) or one, each of rpm, tpm
/// and rpd is set; empty or 0 clears it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct KeyLimitsForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub rpm: String,
    #[serde(default)]
    pub tpm: String,
    #[serde(default)]
    pub rpd: String,
}

impl KeyLimitsForm {
    /// The form filled with `limits` (for `model`, or every model when `None`).
    pub fn of(model: Option<&str>, limits: &Limits) -> Self {
        Self {
            csrf: String::new(),
            model: model.unwrap_or_default().to_string(),
            rpm: shown(limits.rpm),
            tpm: shown(limits.tpm),
            rpd: shown(limits.rpd),
        }
    }

    /// (model, rpm, tpm, rpd) for [`proxy_core::keys::KeyLimits::update`]: the model
    /// `None` for every model, each count given (0 clears it).
    pub fn parsed(&self) -> Result<(Option<String>, u64, u64, u64), FieldError> {
        let model = if self.model.trim().is_empty() {
            None
        } else {
            Some(model("model", &self.model)?)
        };
        let count = |field, text: &str| limit(field, text).map(|n| n.unwrap_or(0));
        Ok((
            model,
            count("rpm", &self.rpm)?,
            count("tpm", &self.tpm)?,
            count("rpd", &self.rpd)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)]) -> PolicyForm {
        let mut form = PolicyForm {
            name: "app".into(),
            ..PolicyForm::default()
        };
        for (field, value) in fields {
            let value = value.to_string();
            match *field {
                "models" => form.models = value,
                "rpm" => form.rpm = value,
                "tpm" => form.tpm = value,
                "tokens_per_day" => form.tokens_per_day = value,
                "budget_usd" => form.budget_usd = value,
                "budget_period" => form.budget_period = value,
                "expires" => form.expires = value,
                "passthrough" => form.passthrough = value,
                other => panic!("no field {other}"),
            }
        }
        form
    }

    #[test]
    fn a_full_form_is_a_policy_and_the_edit_form_reads_back_the_same() {
        let filled = form(&[
            ("models", " gemini-2.5-*, models/gemini-2.0-flash,gemini-2.5-*, "),
            ("rpm", "60"),
            ("tpm", " 1000 "),
            ("tokens_per_day", "0"),
            ("budget_usd", "$2.50"),
            ("budget_period", "day"),
            ("expires", "2026-12-31"),
            ("passthrough", "deny"),
        ]);
        let policy = filled.policy().expect("valid");
        assert_eq!(
            policy,
            ProxyKeyPolicy {
                passthrough: false,
                models: vec!["gemini-2.5-*".into(), "gemini-2.0-flash".into()],
                rpm: Some(60),
                tpm: Some(1000),
                tokens_per_day: None,
                budget_usd: Some(2.5),
                budget_period: BudgetPeriod::Day,
                expires_at_ms: Some(1_798_675_200_000),
            }
        );
        let again = PolicyForm::of("app", &policy);
        assert_eq!(again.expires, "2026-12-31T00:00:00Z");
        assert_eq!(again.policy(), Ok(policy));
        assert_eq!(
            form(&[]).policy(),
            Ok(ProxyKeyPolicy::default()),
            "an empty form is no limit"
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            ("rpm", "-1", "rpm"),
            ("tpm", "ten", "tpm"),
            ("tokens_per_day", "1.5", "tokens per day"),
            ("budget_usd", "-2", "budget (USD)"),
            ("budget_usd", "NaN", "budget (USD)"),
            ("budget_usd", "inf", "budget (USD)"),
            ("budget_period", "weekly", "budget period"),
            ("expires", "2026-02-30", "expires"),
            ("expires", "tomorrow", "expires"),
            ("models", "gemini pro", "models"),
            ("passthrough", "maybe", "pass-through"),
        ];
        for (field, value, label) in cases {
            let error = form(&[(field, value)]).policy().expect_err(value);
            assert_eq!(error.field, label, "{field}={value}");
            assert!(error.to_string().starts_with(&format!("{label}: ")), "{error}");
        }
        let nameless = PolicyForm::default();
        assert_eq!(nameless.name().expect_err("empty").field, "name");
    }

    #[test]
    fn key_limits_forms_set_every_count_and_empty_clears() {
        let filled = KeyLimitsForm {
            model: " models/gemini-2.5-pro ".into(),
            rpm: "5".into(),
            tpm: String::new(),
            rpd: "0".into(),
            ..KeyLimitsForm::default()
        };
        assert_eq!(filled.parsed(), Ok((Some("gemini-2.5-pro".into()), 5, 0, 0)));
        let all = KeyLimitsForm::of(
            None,
            &Limits {
                rpm: Some(10),
                tpm: None,
                rpd: Some(500),
            },
        );
        assert_eq!(all.parsed(), Ok((None, 10, 0, 500)));
        let bad = KeyLimitsForm {
            rpd: "-3".into(),
            ..KeyLimitsForm::default()
        };
        assert_eq!(bad.parsed().expect_err("negative").field, "rpd");
        let bad = KeyLimitsForm {
            model: "a model".into(),
            ..KeyLimitsForm::default()
        };
        assert_eq!(bad.parsed().expect_err("space").field, "model");
    }
}
