//! The shared admission table (`tests/admission/cases.json`) against the pipeline
//! itself. The binary (`tests/sdk/test_admission.py`) and the Worker
//! (`tests/worker/test_admission.py`) run the same table over HTTP; here each case goes
//! through `Admission::begin` → `authorize` → `Authorized::with_body` with no platform
//! around it, so a rule the platforms show is seen to be the core's. What only
//! upstream decides (an answer's body) is left to the platform runs: a case that
//! reaches upstream must come out as a `Prepared` for the expected method, path and
//! query, with no client credential in it.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::{Admission, AdmissionRules, JSON_CONTENT_TYPE, Prepared, Refusal, RequestHead};
use crate::auth::{ProxyKeyTable, hash_proxy_key};
use crate::defaults;
use crate::error::ProxyError;
use crate::keys::ProxyKey;

const TABLE: &str = include_str!("../../../../tests/admission/cases.json");
const VALID_KEY: &str = "gp-admission-table-valid-key";
/// Well-formed but issued by no one (as in `tests/sdk/admission_table.py`).
const UNKNOWN_KEY: &str = "gp-000000000000000000000000000000000000000000000000";
const REQUEST_ID: &str = "admission-table-request";

#[derive(Deserialize)]
struct Table {
    max_body_mb: u64,
    cases: Vec<Case>,
}

/// One case; fields only the HTTP runners check (content type, JSON keys) are skipped.
#[derive(Deserialize)]
struct Case {
    name: String,
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: Option<Value>,
    raw_body: Option<String>,
    body_bytes: Option<usize>,
    #[serde(default)]
    chunked: bool,
    expect: Expect,
}

#[derive(Deserialize)]
struct Expect {
    status: u16,
    error: Option<ErrorExpect>,
    upstream: Option<Upstream>,
}

#[derive(Deserialize)]
struct ErrorExpect {
    shape: String,
    status: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
}

#[derive(Deserialize)]
struct Upstream {
    method: String,
    path: String,
    query: Option<String>,
    body_len: Option<usize>,
}

fn fill(text: &str) -> String {
    text.replace("$VALID_KEY", VALID_KEY)
        .replace("$UNKNOWN_KEY", UNKNOWN_KEY)
}

/// The body the HTTP runners send for the case, byte for byte.
fn case_body(case: &Case) -> Option<Vec<u8>> {
    if let Some(value) = &case.body {
        return Some(value.to_string().into_bytes());
    }
    if let Some(raw) = &case.raw_body {
        return Some(raw.clone().into_bytes());
    }
    case.body_bytes.map(|size| {
        let (head, tail) = (r#"{"contents":[{"parts":[{"text":""#, r#""}]}]}"#);
        let filler = "x".repeat(size.saturating_sub(head.len() + tail.len()));
        format!("{head}{filler}{tail}").into_bytes()
    })
}

/// Runs the pipeline as a platform does. Reading the body is the platform's IO: it
/// stops at the core's [`super::Authorized::body_limit`] and refuses with the core's
/// error, which is what a body sent without a declared length meets.
fn admit(case: &Case, rules: AdmissionRules, keys: &ProxyKeyTable) -> Result<Prepared, Refusal> {
    let path = fill(&case.path);
    let (path, query) = path.split_once('?').unwrap_or((&path, ""));
    let headers: Vec<(String, String)> = case
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), fill(value)))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let body = case_body(case).unwrap_or_default();
    let declared = !case.chunked && !body.is_empty();
    let head = RequestHead {
        method: &case.method,
        path,
        query,
        api_key: header("x-goog-api-key"),
        authorization: header("authorization"),
        content_length: declared.then_some(body.len() as u64),
        client_ip: None,
        user_agent: None,
        ..RequestHead::default()
    };
    let authorized = Admission::begin(REQUEST_ID.into(), 0, &head, rules)?.authorize(keys)?;
    let limit_bytes = authorized.body_limit();
    if body.len() > limit_bytes {
        return Err(authorized.refuse(ProxyError::BodyTooLarge { limit_bytes }));
    }
    let client_headers = headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
    authorized.with_body(Bytes::from(body), client_headers, &Default::default())
}

fn check_refusal(refusal: &Refusal, expect: &Expect) -> Result<(), String> {
    let reply = &refusal.reply;
    let fields =
        serde_json::from_slice::<Value>(&reply.body).map_err(|e| format!("body is not JSON: {e}"))?;
    let seen = format!("{} {}", reply.status, String::from_utf8_lossy(&reply.body));
    let ok = reply.status == expect.status
        && refusal.record.status == expect.status
        && reply.request_id == REQUEST_ID
        && reply.content_type == JSON_CONTENT_TYPE;
    let error = &fields["error"];
    let message = error["message"].as_str().is_some_and(|m| !m.is_empty());
    let keys = |names: &[&str]| {
        error
            .as_object()
            .is_some_and(|o| o.len() == names.len() && names.iter().all(|n| o.contains_key(*n)))
    };
    let shaped = match expect.error.as_ref() {
        None => false,
        Some(e) if e.shape == "gemini" => {
            keys(&["code", "message", "status"])
                && error["code"] == expect.status
                && error["status"].as_str() == e.status.as_deref()
        }
        Some(e) => {
            keys(&["message", "type", "code", "param"])
                && error["type"].as_str() == e.kind.as_deref()
                && error["code"].as_str() == e.code.as_deref()
        }
    };
    match ok && message && shaped {
        true => Ok(()),
        false => Err(format!("refused with {seen}")),
    }
}

fn check_prepared(prepared: &Prepared, upstream: &Upstream) -> Result<(), String> {
    let request = &prepared.request;
    let target = match &upstream.query {
        Some(query) => format!("{}?{query}", upstream.path),
        None => upstream.path.clone(),
    };
    let credential_sent = request
        .headers
        .iter()
        .any(|(name, _)| name == "x-goog-api-key" || name == "authorization");
    let body_ok = upstream.body_len.is_none_or(|len| request.body.len() == len);
    match request.method == upstream.method && request.path_and_query == target && !credential_sent && body_ok
    {
        true => Ok(()),
        false => Err(format!(
            "prepared {} {} with headers {:?} and {} body bytes",
            request.method,
            request.path_and_query,
            request.headers,
            request.body.len()
        )),
    }
}

#[test]
fn the_shared_admission_table_holds_in_the_core() {
    let table: Table = serde_json::from_str(TABLE).unwrap_or_else(|e| panic!("cases.json: {e}"));
    assert!(!table.cases.is_empty());
    let rules = AdmissionRules {
        max_body_bytes: defaults::mib_to_bytes(table.max_body_mb),
        log_bodies: false,
        ..AdmissionRules::default()
    };
    let keys = ProxyKeyTable::new(vec![ProxyKey {
        id: 1,
        name: "admission".into(),
        secret_hash: hash_proxy_key(VALID_KEY),
        revoked: false,
        policy: Default::default(),
    }]);
    let failures: Vec<String> = table
        .cases
        .iter()
        .filter_map(|case| {
            let checked = match (admit(case, rules, &keys), &case.expect.upstream) {
                (Ok(prepared), Some(upstream)) => check_prepared(&prepared, upstream),
                (Err(refusal), None) => check_refusal(&refusal, &case.expect),
                (Ok(prepared), None) => Err(format!("admitted for {}", prepared.request.path_and_query)),
                (Err(refusal), Some(_)) => Err(format!(
                    "refused with {} {}",
                    refusal.reply.status,
                    String::from_utf8_lossy(&refusal.reply.body)
                )),
            };
            checked.err().map(|problem| format!("{}: {problem}", case.name))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
