//! The governance rules as the pipeline applies them: where each is checked, the
//! refusal in both dialects, the record it leaves, and an answer's usage charged when
//! its body ends.

use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use serde_json::Value;

use super::*;
use crate::auth::{ProxyKeyTable, hash_proxy_key};
use crate::engine::Served;
use crate::governance::Governor;
use crate::keys::ProxyKey;
use crate::platform::UpstreamResponse;
use crate::policy::ProxyKeyPolicy;

const SECRET: &str = "gp-governed";
/// 2026-04-01T00:00:10Z.
const NOW: u64 = 1_775_001_610_000;

fn table(policy: ProxyKeyPolicy) -> ProxyKeyTable {
    ProxyKeyTable::new(vec![ProxyKey {
        id: 5,
        name: "governed".into(),
        secret_hash: hash_proxy_key(SECRET),
        revoked: false,
        policy: Arc::new(policy),
    }])
}

/// Runs a request to the point it would go upstream.
fn admit(
    keys: &ProxyKeyTable,
    governor: &Arc<Governor>,
    path: &str,
    body: &str,
    openai: bool,
    now: u64,
) -> Result<Prepared, Refusal> {
    let bearer = format!("Bearer {SECRET}");
    let head = RequestHead {
        method: "POST",
        path,
        api_key: (!openai).then_some(SECRET),
        authorization: openai.then_some(bearer.as_str()),
        content_length: Some(body.len() as u64),
        client_ip: None,
        user_agent: None,
        ..RequestHead::default()
    };
    let authorized = Admission::begin("r".into(), now, &head, AdmissionRules::default())?.authorize(keys)?;
    authorized.with_body(Bytes::from(body.to_string()), [], governor)
}

const GENERATE: &str = "/v1beta/models/gemini-2.5-flash:generateContent";
const CHAT: &str = "/v1beta/openai/chat/completions";

fn chat(model: &str) -> String {
    format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#)
}

fn refused(result: Result<Prepared, Refusal>) -> (Refusal, Value) {
    let refusal = result.err().unwrap_or_else(|| panic!("admitted"));
    let body = serde_json::from_slice(&refusal.reply.body).unwrap_or(Value::Null);
    (refusal, body)
}

#[test]
fn an_expired_key_is_refused_before_its_body_in_both_dialects() {
    let keys = table(ProxyKeyPolicy {
        expires_at_ms: Some(NOW),
        ..ProxyKeyPolicy::default()
    });
    let governor = Arc::default();
    assert!(admit(&keys, &governor, GENERATE, "{}", false, NOW - 1).is_ok());
    let (refusal, body) = refused(admit(&keys, &governor, GENERATE, "{}", false, NOW));
    assert_eq!(refusal.reply.status, 403);
    assert_eq!(body["error"]["status"], "PERMISSION_DENIED");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("(expired at 2026-04-01T00:00:10Z)"))
    );
    assert_eq!(refusal.record.error_kind.as_deref(), Some("limit_expired"));
    assert_eq!(refusal.record.proxy_key_id, Some(5));
    let (_, body) = refused(admit(
        &keys,
        &governor,
        CHAT,
        &chat("gemini-2.5-flash"),
        true,
        NOW,
    ));
    assert_eq!(body["error"]["type"], "permission_error");
    assert_eq!(body["error"]["code"], "limit_expired");
}

#[test]
fn a_model_outside_the_list_is_refused_whether_the_path_or_the_body_names_it() {
    let keys = table(ProxyKeyPolicy {
        models: vec!["gemini-2.5-flash*".into()],
        ..ProxyKeyPolicy::default()
    });
    let governor = Arc::default();
    assert!(admit(&keys, &governor, GENERATE, "{}", false, NOW).is_ok());
    assert!(admit(&keys, &governor, CHAT, &chat("gemini-2.5-flash-lite"), true, NOW).is_ok());
    let pro = "/v1beta/models/gemini-2.5-pro:generateContent";
    let (refusal, body) = refused(admit(&keys, &governor, pro, "{}", false, NOW));
    assert_eq!(
        (refusal.reply.status, body["error"]["code"].as_u64()),
        (403, Some(403))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("(model"))
    );
    assert_eq!(refusal.record.error_kind.as_deref(), Some("limit_model"));
    assert_eq!(refusal.record.model.as_deref(), Some("gemini-2.5-pro"));
    let (_, body) = refused(admit(
        &keys,
        &governor,
        CHAT,
        &chat("models/gemini-2.5-pro"),
        true,
        NOW,
    ));
    assert_eq!(body["error"]["code"], "limit_model");
}

#[test]
fn rpm_refuses_at_its_number_with_retry_after_and_the_limit_named() {
    let keys = table(ProxyKeyPolicy {
        rpm: Some(2),
        ..ProxyKeyPolicy::default()
    });
    let governor = Arc::default();
    for _ in 0..2 {
        assert!(admit(&keys, &governor, GENERATE, "{}", false, NOW).is_ok());
    }
    let (refusal, body) = refused(admit(&keys, &governor, GENERATE, "{}", false, NOW));
    assert_eq!(refusal.reply.status, 429);
    assert_eq!(refusal.reply.retry_after_secs, Some(50));
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("rpm limit"))
    );
    assert_eq!(refusal.record.error_kind.as_deref(), Some("limit_rpm"));
    let (refusal, body) = refused(admit(
        &keys,
        &governor,
        CHAT,
        &chat("gemini-2.5-flash"),
        true,
        NOW,
    ));
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(body["error"]["code"], "limit_rpm");
    assert_eq!(refusal.reply.retry_after_secs, Some(50));
    // A refusal does not count: the next minute has both requests again.
    for _ in 0..2 {
        assert!(admit(&keys, &governor, GENERATE, "{}", false, NOW + 50_000).is_ok());
    }
}

/// Settles `prepared` as a 200 whose JSON body reports `prompt` and `output` tokens,
/// and runs the body to its end: the record as the platform would log it.
fn answer(prepared: Prepared, prompt: u64, output: u64, now: u64) -> crate::log::LogRecord {
    let body = format!(
        r#"{{"candidates":[{{"content":{{"parts":[{{"text":"hi"}}]}},"finishReason":"STOP"}}],"usageMetadata":{{"promptTokenCount":{prompt},"candidatesTokenCount":{output},"totalTokenCount":{}}}}}"#,
        prompt + output
    );
    let served = Served::Upstream(UpstreamResponse {
        status: 200,
        content_type: Some("application/json".into()),
        inner: (),
    });
    let Answer::Stream { mut observer, .. } = prepared.settle(served).answer else {
        panic!("a 200 streams");
    };
    let mut chunks = vec![Bytes::from(body)].into_iter();
    while let Poll::Ready(Some(_)) =
        observer.poll_through(|| Poll::Ready(chunks.next().map(Ok::<_, ()>)), || now)
    {}
    observer.take_ended(now).unwrap_or_default()
}

#[test]
fn an_answers_usage_is_priced_and_spends_the_budget() {
    let keys = table(ProxyKeyPolicy {
        budget_usd: Some(0.005),
        ..ProxyKeyPolicy::default()
    });
    let governor = Arc::default();
    let prepared =
        admit(&keys, &governor, GENERATE, "{}", false, NOW).unwrap_or_else(|r| panic!("{:?}", r.reply));
    // 1,000 prompt tokens at $0.30/M + 1,000 output at $2.50/M: $0.0028.
    let record = answer(prepared, 1_000, 1_000, NOW);
    assert_eq!(record.cost_usd, Some(0.0028));
    assert_eq!(record.total_tokens, Some(2_000));
    let second =
        admit(&keys, &governor, GENERATE, "{}", false, NOW).unwrap_or_else(|r| panic!("{:?}", r.reply));
    // Started under budget ($0.0028 of $0.005), ends over it ($0.0056)...
    answer(second, 1_000, 1_000, NOW);
    // ...and the next is refused.
    let (refusal, body) = refused(admit(&keys, &governor, GENERATE, "{}", false, NOW));
    assert_eq!(refusal.reply.status, 403);
    assert_eq!(refusal.reply.retry_after_secs, None);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("(budget: $0.005 per month"))
    );
    assert_eq!(refusal.record.error_kind.as_deref(), Some("limit_budget"));
}
