//! What an operator is told (`--alert-webhook`), decided once for every platform: the
//! events, their message (Slack's `text` plus structured fields, never a secret: keys
//! by id and masked form only), and the debounce that keeps a flapping key or a model
//! cooling all afternoon from flooding a channel. Platforms only deliver them.

use std::collections::HashMap;

use serde_json::json;

use crate::keys::KeyId;
use crate::policy::BudgetPeriod;

/// Something an operator wants to hear about.
#[derive(Clone, Debug, PartialEq)]
pub enum AlertEvent {
    /// An upstream key was marked invalid (Google refused it as a key).
    KeyInvalid { key_id: KeyId, reason: String },
    /// A key marked invalid is usable again (re-checked or cleared in the store).
    KeyBack { key_id: KeyId },
    /// A request found every key cooling down for a model.
    AllCooling { model: String, retry_after_secs: u64 },
    /// A proxy key's spend crossed `percent` (80 or 100) of its budget.
    Budget {
        proxy_key_id: i64,
        percent: u8,
        budget_usd: f64,
        period: BudgetPeriod,
    },
    /// Log records were dropped (the store could not keep up): `dropped` since the
    /// last alert, `total` since start.
    LogsDropped { dropped: u64, total: u64 },
}

/// The shares of a budget that raise an alert, in percent.
pub const BUDGET_THRESHOLDS: [u8; 2] = [80, 100];

/// An alert's delivery: the JSON body a webhook gets.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub kind: &'static str,
    pub body: serde_json::Value,
}

impl AlertEvent {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::KeyInvalid { .. } => "key_invalid",
            Self::KeyBack { .. } => "key_back",
            Self::AllCooling { .. } => "all_keys_cooling",
            Self::Budget { .. } => "budget",
            Self::LogsDropped { .. } => "log_records_dropped",
        }
    }

    /// What the debounce tells apart: the same event for the same subject is sent
    /// once per window.
    fn subject(&self) -> String {
        match self {
            Self::KeyInvalid { key_id, .. } | Self::KeyBack { key_id } => format!("{}:{key_id}", self.kind()),
            Self::AllCooling { model, .. } => format!("all_keys_cooling:{model}"),
            Self::Budget {
                proxy_key_id,
                percent,
                ..
            } => format!("budget:{proxy_key_id}:{percent}"),
            Self::LogsDropped { .. } => "log_records_dropped".into(),
        }
    }

    /// The webhook body: Slack's `text` and the event's fields. `masked` names a key
    /// by its masked form (`AIza…Bc6`) when the platform knows it; `at` is UTC.
    pub fn to_alert(&self, masked: Option<&str>, at: &str) -> Alert {
        let key = |key_id: KeyId| match masked {
            Some(masked) => format!("upstream key #{key_id} ({masked})"),
            None => format!("upstream key #{key_id}"),
        };
        let (text, mut fields) = match self {
            Self::KeyInvalid { key_id, reason } => (
                format!(
                    "{} was marked invalid: {reason}. It is no longer used.",
                    key(*key_id)
                ),
                json!({"key_id": key_id, "reason": reason}),
            ),
            Self::KeyBack { key_id } => (
                format!("{} is usable again.", key(*key_id)),
                json!({"key_id": key_id}),
            ),
            Self::AllCooling {
                model,
                retry_after_secs,
            } => (
                format!(
                    "Every upstream key is cooling down for model {model}: requests get 429 for about {retry_after_secs} s."
                ),
                json!({"model": model, "retry_after_secs": retry_after_secs}),
            ),
            Self::Budget {
                proxy_key_id,
                percent,
                budget_usd,
                period,
            } => (
                match percent {
                    100.. => format!(
                        "Proxy key #{proxy_key_id} has spent its budget of ${budget_usd:.2} per {}: its requests are refused until the {} ends (UTC).",
                        period.as_str(),
                        period.as_str()
                    ),
                    _ => format!(
                        "Proxy key #{proxy_key_id} has spent {percent}% of its budget of ${budget_usd:.2} per {} (UTC).",
                        period.as_str()
                    ),
                },
                json!({"proxy_key_id": proxy_key_id, "percent": percent, "budget_usd": budget_usd, "period": period.as_str()}),
            ),
            Self::LogsDropped { dropped, total } => (
                format!(
                    "{dropped} request log record(s) were dropped ({total} since start): the log store cannot keep up."
                ),
                json!({"dropped": dropped, "total": total}),
            ),
        };
        if let (Some(masked), serde_json::Value::Object(map)) = (masked, &mut fields) {
            map.insert("key".into(), json!(masked));
        }
        let mut body = json!({"text": text, "event": self.kind(), "at": at});
        if let (serde_json::Value::Object(body), serde_json::Value::Object(fields)) = (&mut body, fields) {
            body.extend(fields);
        }
        Alert {
            kind: self.kind(),
            body,
        }
    }
}

/// The highest budget threshold a charge crossed: spend went from `before` to
/// `after` nano-dollars of a budget of `budget` nano-dollars.
pub fn budget_crossed(before: u64, after: u64, budget: u64) -> Option<u8> {
    if budget == 0 {
        return None;
    }
    let share = |spent: u64| u128::from(spent) * 100;
    BUDGET_THRESHOLDS.into_iter().rev().find(|t| {
        share(before) < u128::from(*t) * u128::from(budget)
            && share(after) >= u128::from(*t) * u128::from(budget)
    })
}

/// Sends an event for a subject at most once per window.
#[derive(Debug)]
pub struct Debounce {
    window_ms: u64,
    last_sent: HashMap<String, u64>,
}

/// How long the same event for the same subject stays quiet after it was sent.
pub const DEBOUNCE_MS: u64 = 5 * 60 * 1000;

impl Default for Debounce {
    fn default() -> Self {
        Self::new(DEBOUNCE_MS)
    }
}

impl Debounce {
    pub fn new(window_ms: u64) -> Self {
        Self {
            window_ms,
            last_sent: HashMap::new(),
        }
    }

    /// Whether `event` goes out at `now_ms` (and, if so, the window starts again).
    pub fn admit(&mut self, event: &AlertEvent, now_ms: u64) -> bool {
        let subject = event.subject();
        let due = self
            .last_sent
            .get(&subject)
            .is_none_or(|sent| now_ms.saturating_sub(*sent) >= self.window_ms);
        if due {
            self.last_sent.insert(subject, now_ms);
            // Old subjects are forgotten once their window passed.
            if self.last_sent.len() > 1_024 {
                let window = self.window_ms;
                self.last_sent
                    .retain(|_, sent| now_ms.saturating_sub(*sent) < window);
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_event_is_sent_once_per_window() {
        let mut debounce = Debounce::new(1_000);
        let invalid = |key_id| AlertEvent::KeyInvalid {
            key_id,
            reason: "API_KEY_INVALID".into(),
        };
        assert!(debounce.admit(&invalid(1), 0));
        assert!(!debounce.admit(&invalid(1), 999), "within the window");
        assert!(debounce.admit(&invalid(2), 999), "another key");
        assert!(
            debounce.admit(&AlertEvent::KeyBack { key_id: 1 }, 999),
            "another event"
        );
        assert!(debounce.admit(&invalid(1), 1_000), "the window passed");
    }

    #[test]
    fn budget_thresholds_are_crossed_once() {
        assert_eq!(budget_crossed(0, 79, 100), None);
        assert_eq!(budget_crossed(79, 80, 100), Some(80));
        assert_eq!(budget_crossed(80, 99, 100), None, "80 was crossed before");
        assert_eq!(budget_crossed(99, 100, 100), Some(100));
        assert_eq!(budget_crossed(10, 150, 100), Some(100), "the highest crossed");
        assert_eq!(budget_crossed(100, 200, 100), None);
        assert_eq!(budget_crossed(0, 5, 0), None, "no budget");
    }

    #[test]
    fn alerts_name_keys_by_id_and_masked_form_only() {
        let alert = AlertEvent::KeyInvalid {
            key_id: 3,
            reason: "API_KEY_INVALID".into(),
        }
        .to_alert(Some("AIza…Bc6"), "2026-12-03T07:00:00Z");
        assert_eq!(alert.kind, "key_invalid");
        assert_eq!(alert.body["event"], "key_invalid");
        assert_eq!(alert.body["key_id"], 3);
        assert_eq!(alert.body["key"], "AIza…Bc6");
        assert_eq!(alert.body["at"], "2026-12-03T07:00:00Z");
        assert_eq!(
            alert.body["text"],
            "upstream key #3 (AIza…Bc6) was marked invalid: API_KEY_INVALID. It is no longer used."
        );
        let spent = AlertEvent::Budget {
            proxy_key_id: 7,
            percent: 100,
            budget_usd: 5.0,
            period: BudgetPeriod::Day,
        }
        .to_alert(None, "t");
        assert!(
            spent.body["text"]
                .as_str()
                .is_some_and(|t| t.contains("has spent its budget of $5.00 per day"))
        );
        assert_eq!(spent.body["percent"], 100);
    }
}
