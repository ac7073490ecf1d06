//! What an upstream answer says about the key that got it.
//!
//! Gemini reports a broken key as 400 `API_KEY_INVALID` (not 401), a suspended one as
//! 403, a spent quota as 429 with `QuotaFailure` and `RetryInfo` details, and model-wide
//! trouble as 500/503/504. Each maps to a different action on the pool, so the body's
//! details matter, not just the status.
//!
//! A key is judged from structure only: the `reason` of an `ErrorInfo` detail and the
//! error's `status`. Never from the message: Google echoes client-chosen text into it
//! (unknown JSON field names, resource names in the path), so any proxy-key holder
//! could otherwise write "API key not valid" there and mark the whole pool invalid.

use serde_json::Value;

use crate::pacific::next_midnight_pacific_ms;

/// Cooldown when a 429 carries no `RetryInfo`.
pub const DEFAULT_COOLDOWN_MS: u64 = 60_000;

/// Reasons in `ErrorInfo` that mean the key itself is unusable.
const KEY_BROKEN_REASONS: [&str; 5] = [
    "API_KEY_INVALID",
    "CONSUMER_SUSPENDED",
    "API_KEY_SERVICE_BLOCKED",
    "SERVICE_DISABLED",
    "API_KEY_EXPIRED",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Quota spent for this model: cool the key down for the model, try another key.
    RateLimited {
        until_ms: u64,
        per_day: bool,
        /// The quota's limit is 0: the model is off for this key's project (a free
        /// tier without it), so it cools down until midnight Pacific whatever the
        /// window.
        model_off: bool,
    },
    /// The key is broken: stop using it, try another key.
    KeyInvalid {
        reason: String,
    },
    /// Model-wide trouble (500/502/503/504): back off and try another key.
    ServerError {
        status: u16,
    },
    /// The caller's own mistake (or a 4xx we cannot fix by switching keys): pass it on.
    ClientError {
        status: u16,
    },
    /// Timeout or connection error: says nothing about the key.
    Transport {
        timeout: bool,
    },
}

impl Outcome {
    /// The outcome's name in metrics (`upstream_attempts_total{outcome}`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Outcome::Success => "ok",
            Outcome::RateLimited { .. } => "rate_limited",
            Outcome::KeyInvalid { .. } => "invalid_key",
            Outcome::ServerError { .. } => "server_error",
            Outcome::ClientError { .. } => "client_error",
            Outcome::Transport { timeout: true } => "timeout",
            Outcome::Transport { timeout: false } => "connect_error",
        }
    }
}

impl Outcome {
    /// The error kind recorded in the log, `None` for success.
    pub fn error_kind(&self) -> Option<&'static str> {
        match self {
            Self::Success => None,
            Self::RateLimited { .. } => Some("rate_limited"),
            Self::KeyInvalid { .. } => Some("key_invalid"),
            Self::ServerError { .. } => Some("upstream_unavailable"),
            Self::ClientError { .. } => Some("client_error"),
            Self::Transport { timeout: true } => Some("upstream_timeout"),
            Self::Transport { timeout: false } => Some("upstream_connect"),
        }
    }
}

/// Classifies an upstream status and (for errors) its body.
pub fn classify(status: u16, body: &[u8], now_ms: u64) -> Outcome {
    if (200..300).contains(&status) {
        return Outcome::Success;
    }
    let error = parse_error(body);
    match status {
        429 => rate_limited(&error, now_ms),
        400 | 401 | 403 => match broken_key_reason(status, &error) {
            Some(reason) => Outcome::KeyInvalid { reason },
            None => Outcome::ClientError { status },
        },
        500..=599 => Outcome::ServerError { status },
        _ => Outcome::ClientError { status },
    }
}

/// The `error` object of a Gemini error body; OpenAI-compatible routes wrap it in an
/// array (`[{"error":{…}}]`).
fn parse_error(body: &[u8]) -> Value {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let value = match value {
        Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
        other => other,
    };
    value.get("error").cloned().unwrap_or(Value::Null)
}

fn details(error: &Value) -> impl Iterator<Item = &Value> {
    error
        .get("details")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn rate_limited(error: &Value, now_ms: u64) -> Outcome {
    let violations = || {
        details(error)
            .filter_map(|d| d.get("violations").and_then(Value::as_array))
            .flatten()
    };
    let per_day = violations()
        .filter_map(|v| v.get("quotaId").and_then(Value::as_str))
        .any(|id| id.contains("PerDay"));
    // `quotaValue` is the quota's limit, a string ("0") or a number; read from the
    // structure, never from the message (which echoes the client's model name).
    let model_off = violations()
        .filter_map(|v| v.get("quotaValue"))
        .any(|value| match value {
            Value::String(text) => text.trim() == "0",
            Value::Number(number) => number.as_f64() == Some(0.0),
            _ => false,
        });
    let delay = details(error)
        .filter_map(|d| d.get("retryDelay").and_then(Value::as_str))
        .find_map(parse_duration_ms);
    let until_ms = if per_day || model_off {
        next_midnight_pacific_ms(now_ms)
    } else {
        now_ms + delay.unwrap_or(DEFAULT_COOLDOWN_MS)
    };
    Outcome::RateLimited {
        until_ms,
        per_day,
        model_off,
    }
}

/// The key-broken reason of an ErrorInfo detail, if the error's status fits it. A 401
/// without one (e.g. `CREDENTIALS_MISSING` on an OAuth-only method) is the request's
/// fault: the key was sent and Google wants another kind of credential.
fn broken_key_reason(status: u16, error: &Value) -> Option<String> {
    let expected = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        _ => "PERMISSION_DENIED",
    };
    let grpc = error.get("status").and_then(Value::as_str);
    if grpc.is_some_and(|g| g != expected) {
        return None;
    }
    details(error)
        .filter(|d| is_error_info(d))
        .filter_map(|d| d.get("reason").and_then(Value::as_str))
        .find(|r| KEY_BROKEN_REASONS.contains(r))
        .map(str::to_string)
}

/// An `ErrorInfo` detail (`@type` may be absent in hand-written bodies, never another
/// type: `BadRequest` and friends carry client-influenced descriptions).
fn is_error_info(detail: &Value) -> bool {
    match detail.get("@type").and_then(Value::as_str) {
        Some(kind) => kind.ends_with("google.rpc.ErrorInfo"),
        None => true,
    }
}

/// Parses protobuf-JSON durations such as `"30s"` or `"1.5s"`.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let seconds: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1000.0).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_780_000_000_000;

    fn quota_body(quota_id: &str, delay: &str) -> String {
        format!(
            r#"{{"error":{{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED","details":[
            {{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{{"quotaId":"{quota_id}","quotaDimensions":{{"model":"gemini-2.5-flash"}}}}]}},
            {{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"{delay}"}}]}}}}"#
        )
    }

    #[test]
    fn a_quota_of_zero_means_the_model_is_off_until_midnight_pacific() {
        let midnight = next_midnight_pacific_ms(NOW);
        for value in [r#""0""#, "0"] {
            let body = quota_body("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "17s").replace(
                r#""quotaDimensions""#,
                &format!(r#""quotaValue":{value},"quotaDimensions""#),
            );
            check(
                429,
                &body,
                Outcome::RateLimited {
                    until_ms: midnight,
                    per_day: false,
                    model_off: true,
                },
            );
        }
        // A limit of 50 is a spent quota, and "limit: 0" in the message (which echoes
        // the model the client named) is not evidence.
        let spent = quota_body("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "17s")
            .replace(r#""quotaDimensions""#, r#""quotaValue":"50","quotaDimensions""#)
            .replace(r#""message":"quota""#, r#""message":"limit: 0, model: x""#);
        check(
            429,
            &spent,
            Outcome::RateLimited {
                until_ms: NOW + 17_000,
                per_day: false,
                model_off: false,
            },
        );
    }

    fn check(status: u16, body: &str, expected: Outcome) {
        assert_eq!(
            classify(status, body.as_bytes(), NOW),
            expected,
            "{status} {body}"
        );
    }

    #[test]
    fn classifies_each_error_class() {
        let per_minute = quota_body("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "17s");
        check(
            429,
            &per_minute,
            Outcome::RateLimited {
                until_ms: NOW + 17_000,
                per_day: false,
                model_off: false,
            },
        );
        let per_day = quota_body("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "43s");
        let midnight = next_midnight_pacific_ms(NOW);
        check(
            429,
            &per_day,
            Outcome::RateLimited {
                until_ms: midnight,
                per_day: true,
                model_off: false,
            },
        );
        check(
            429,
            "not json",
            Outcome::RateLimited {
                until_ms: NOW + DEFAULT_COOLDOWN_MS,
                per_day: false,
                model_off: false,
            },
        );

        let invalid = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}"#;
        check(
            400,
            invalid,
            Outcome::KeyInvalid {
                reason: "API_KEY_INVALID".into(),
            },
        );
        let wrapped = format!("[{invalid}]");
        check(
            400,
            &wrapped,
            Outcome::KeyInvalid {
                reason: "API_KEY_INVALID".into(),
            },
        );
        let suspended = r#"{"error":{"code":403,"message":"Permission denied: Consumer 'api_key:x' has been suspended.","status":"PERMISSION_DENIED","details":[{"reason":"CONSUMER_SUSPENDED"}]}}"#;
        check(
            403,
            suspended,
            Outcome::KeyInvalid {
                reason: "CONSUMER_SUSPENDED".into(),
            },
        );
        let other_project = r#"{"error":{"code":403,"message":"You do not have permission to access the File abc or it may not exist.","status":"PERMISSION_DENIED"}}"#;
        check(403, other_project, Outcome::ClientError { status: 403 });
        let bad_request = r#"{"error":{"code":400,"message":"Invalid JSON payload received.","status":"INVALID_ARGUMENT"}}"#;
        check(400, bad_request, Outcome::ClientError { status: 400 });
        check(404, "{}", Outcome::ClientError { status: 404 });

        for status in [500, 503, 504] {
            check(status, "", Outcome::ServerError { status });
        }
        check(200, "", Outcome::Success);
    }

    /// Text a client chose, echoed by Google inside an error's message, with the
    /// status a real echo comes with and no ErrorInfo.
    #[test]
    fn echoed_text_never_marks_a_key() {
        let echoes = [
            (
                400,
                r#"{"error":{"code":400,"message":"Invalid JSON payload received. Unknown name \"API key not valid\": Cannot find field.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"description":"Invalid JSON payload received. Unknown name \"API key not valid\": Cannot find field."}]}]}}"#,
            ),
            (
                403,
                r#"{"error":{"code":403,"message":"You do not have permission to access the File API key not valid or it may not exist.","status":"PERMISSION_DENIED"}}"#,
            ),
            (
                403,
                r#"{"error":{"code":403,"message":"You do not have permission to access the File x has been suspended or it may not exist.","status":"PERMISSION_DENIED"}}"#,
            ),
            // A reason a client wrote into a message, not into ErrorInfo.
            (
                400,
                r#"{"error":{"code":400,"message":"Unknown name \"API_KEY_INVALID\"","status":"INVALID_ARGUMENT"}}"#,
            ),
        ];
        for (status, body) in echoes {
            check(status, body, Outcome::ClientError { status });
        }
    }

    #[test]
    fn a_401_without_a_key_reason_is_the_requests_fault() {
        let oauth_only = r#"{"error":{"code":401,"message":"Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.","status":"UNAUTHENTICATED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"CREDENTIALS_MISSING","domain":"googleapis.com"}]}}"#;
        check(401, oauth_only, Outcome::ClientError { status: 401 });
        check(401, "", Outcome::ClientError { status: 401 });
    }

    #[test]
    fn every_key_reason_in_error_info_marks_the_key() {
        for (status, grpc, reason) in [
            (400, "INVALID_ARGUMENT", "API_KEY_INVALID"),
            (400, "INVALID_ARGUMENT", "API_KEY_EXPIRED"),
            (403, "PERMISSION_DENIED", "CONSUMER_SUSPENDED"),
            (403, "PERMISSION_DENIED", "API_KEY_SERVICE_BLOCKED"),
            (403, "PERMISSION_DENIED", "SERVICE_DISABLED"),
            (401, "UNAUTHENTICATED", "API_KEY_INVALID"),
        ] {
            let body = format!(
                r#"{{"error":{{"code":{status},"message":"m","status":"{grpc}","details":[{{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"{reason}","domain":"googleapis.com"}}]}}}}"#
            );
            check(
                status,
                &body,
                Outcome::KeyInvalid {
                    reason: reason.into(),
                },
            );
        }
        // The reason only counts inside an ErrorInfo detail with a matching status.
        let wrong_type = r#"{"error":{"code":400,"status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","reason":"API_KEY_INVALID"}]}}"#;
        check(400, wrong_type, Outcome::ClientError { status: 400 });
        let wrong_status = r#"{"error":{"code":400,"status":"FAILED_PRECONDITION","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}"#;
        check(400, wrong_status, Outcome::ClientError { status: 400 });
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("30s"), Some(30_000));
        assert_eq!(parse_duration_ms("1.5s"), Some(1_500));
        assert_eq!(parse_duration_ms("0.0001s"), Some(1));
        assert_eq!(parse_duration_ms("-1s"), None);
        assert_eq!(parse_duration_ms("30"), None);
        assert_eq!(parse_duration_ms("NaNs"), None);
    }
}
