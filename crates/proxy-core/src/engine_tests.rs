//! The attempt loop against a scripted upstream and a manual clock.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use async_trait::async_trait;
use bytes::Bytes;

use crate::engine::{Engine, EngineConfig, Served};
use crate::error::ProxyError;
use crate::keys::{Secret, UpstreamKey};
use crate::platform::{Clock, ModelIn, Peek, PreparedRequest, TransportError, Upstream, UpstreamResponse};
use crate::pool::{KeyPool, KeyState, StateChange};

/// Every future here completes without waiting, so polling once is enough.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("scripted futures never wait"),
    }
}

#[derive(Default)]
pub(crate) struct ManualClock {
    pub(crate) now: Mutex<u64>,
    pub(crate) slept: Mutex<Vec<u64>>,
}

#[async_trait]
impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
    async fn sleep_ms(&self, ms: u64) {
        self.slept.lock().unwrap_or_else(|p| p.into_inner()).push(ms);
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) += ms;
    }
}

pub(crate) type Answer = Result<(u16, &'static str), TransportError>;

/// Answers by model (when scripted for the path's model), else by key:
/// `Ok((status, body))` or a transport error. Records keys and paths used.
pub(crate) struct Scripted {
    pub(crate) answers: HashMap<String, Answer>,
    pub(crate) by_model: Mutex<HashMap<String, Answer>>,
    pub(crate) used: Mutex<Vec<String>>,
    pub(crate) paths: Mutex<Vec<String>>,
    /// The time left passed to each error body read.
    body_timeouts: Mutex<Vec<u64>>,
}

/// The model a Gemini path names (`…/models/M:op`).
fn path_model(path: &str) -> Option<&str> {
    let rest = &path[path.find("/models/")? + "/models/".len()..];
    rest.split(':').next()
}

#[async_trait]
impl Upstream for Scripted {
    type Response = Bytes;

    async fn send(
        &self,
        request: &PreparedRequest,
        key: &Secret,
        _: u64,
    ) -> Result<UpstreamResponse<Bytes>, TransportError> {
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(key.expose().to_string());
        let path = &request.path_and_query;
        self.paths
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(path.clone());
        let by_model = path_model(path).and_then(|m| {
            self.by_model
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(m)
                .cloned()
        });
        let answer = by_model
            .or_else(|| self.answers.get(key.expose()).cloned())
            .unwrap_or(Ok((200, "{}")));
        answer.map(|(status, body)| UpstreamResponse {
            status,
            // Like Google: JSON errors say so, a bare 404 page is plain text.
            content_type: Some(match body.starts_with(['{', '[']) {
                true => "application/json; charset=UTF-8".into(),
                false => "text/plain".into(),
            }),
            inner: Bytes::from_static(body.as_bytes()),
        })
    }

    async fn peek_body(&self, response: &mut Bytes, peek: Peek) -> Result<(Bytes, bool), TransportError> {
        let start = response.slice(..response.len().min(peek.limit));
        let whole = start.len() == response.len();
        Ok((start, whole))
    }

    async fn read_body(&self, response: Bytes, _: usize, timeout_ms: u64) -> Result<Bytes, TransportError> {
        self.body_timeouts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(timeout_ms);
        match &response[..] {
            b if b == STALLS.as_bytes() => Err(TransportError::Timeout),
            _ => Ok(response),
        }
    }
}

/// A body [`Scripted`] never finishes reading: its read hits the attempt's deadline.
const STALLS: &str = "<the body stalls>";

pub(crate) const INVALID: &str = r#"{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}"#;
pub(crate) const QUOTA: &str = r#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"30s"}]}}"#;
pub(crate) const BUSY: &str =
    r#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#;
const ECHO: &str = r#"{"error":{"code":400,"message":"bad request for key-c-000000000000000000000","status":"INVALID_ARGUMENT"}}"#;

pub(crate) fn key_name(i: i64) -> String {
    format!("key-{}-000000000000000000000", (b'a' + i as u8) as char)
}

/// Keys 0..keys, each named by [`key_name`] and with `limits`.
fn pool_keys(keys: i64, limits: &crate::keys::KeyLimits) -> Vec<(UpstreamKey, KeyState)> {
    (0..keys)
        .map(|i| {
            let key = UpstreamKey {
                id: i,
                name: format!("k{i}"),
                secret: Secret::new(key_name(i)),
                enabled: true,
                limits: limits.clone(),
            };
            (key, KeyState::default())
        })
        .collect()
}

fn engine(answers: Vec<(i64, Answer)>, keys: i64) -> Engine<Scripted, ManualClock> {
    engine_with(answers, keys, EngineConfig::default())
}

pub(crate) fn engine_with(
    answers: Vec<(i64, Answer)>,
    keys: i64,
    config: EngineConfig,
) -> Engine<Scripted, ManualClock> {
    let pool_keys = pool_keys(keys, &Default::default());
    let answers = answers.into_iter().map(|(i, a)| (key_name(i), a)).collect();
    let upstream = Scripted {
        answers,
        by_model: Mutex::default(),
        used: Mutex::new(Vec::new()),
        paths: Mutex::default(),
        body_timeouts: Mutex::new(Vec::new()),
    };
    let pool = Arc::new(Mutex::new(KeyPool::new(pool_keys)));
    Engine::new(pool, upstream, ManualClock::default(), config)
}

/// A `generateContent` request for `model`.
pub(crate) fn request_for(model: &str) -> PreparedRequest {
    PreparedRequest {
        method: "POST".into(),
        path_and_query: format!("/v1beta/models/{model}:generateContent"),
        headers: vec![],
        body: Bytes::new(),
        model_in: ModelIn::Path,
        empty_check: Default::default(),
        empty_hold_ms: 0,
        stream: false,
    }
}

fn request() -> PreparedRequest {
    PreparedRequest {
        method: "POST".into(),
        path_and_query: "/v1beta/models/m:generateContent".into(),
        headers: vec![],
        body: Bytes::new(),
        model_in: ModelIn::Path,
        empty_check: Default::default(),
        empty_hold_ms: 0,
        stream: false,
    }
}

#[test]
fn fails_over_rate_limited_and_invalid_keys_then_succeeds() {
    let engine = engine(vec![(0, Ok((429, QUOTA))), (1, Ok((400, INVALID)))], 3);
    let run = block_on(engine.execute(&request(), "m", 1));
    assert!(matches!(run.served, Served::Upstream(ref r) if r.status == 200));
    assert_eq!(run.attempts.tried, vec![0, 1, 2]);
    assert_eq!(run.attempts.answered, Some(2));
    assert_eq!(
        run.attempts.state_changes,
        vec![
            StateChange::Cooldown {
                key_id: 0,
                model: "m".into(),
                until_ms: 30_000
            },
            StateChange::Invalid {
                key_id: 1,
                reason: "API_KEY_INVALID".into()
            },
        ]
    );
    assert!(
        engine.clock().slept.lock().map(|s| s.is_empty()).unwrap_or(false),
        "key failures retry at once"
    );
    // The next request goes straight to the only healthy key.
    let run = block_on(engine.execute(&request(), "m", 2));
    assert_eq!(run.attempts.tried, vec![2]);
}

#[test]
fn all_keys_cooling_answers_429_with_soonest_recovery() {
    let engine = engine(vec![(0, Ok((429, QUOTA))), (1, Ok((429, QUOTA)))], 2);
    let run = block_on(engine.execute(&request(), "m", 1));
    match run.served {
        Served::Failed(ProxyError::AllKeysCooling { retry_after_secs, .. }) => {
            assert_eq!(retry_after_secs, 30)
        }
        other => panic!("expected all keys cooling, got {other:?}"),
    }
    // A second request does not touch upstream at all.
    let before = engine.upstream().used.lock().map(|u| u.len()).unwrap_or(0);
    let run = block_on(engine.execute(&request(), "m", 2));
    assert!(matches!(
        run.served,
        Served::Failed(ProxyError::AllKeysCooling { .. })
    ));
    assert_eq!(
        engine.upstream().used.lock().map(|u| u.len()).unwrap_or(0),
        before
    );
    // Another model's cooldowns are its own: both keys are tried again for it.
    let run = block_on(engine.execute(&request(), "other", 3));
    assert_eq!(run.attempts.tried.len(), 2);
}

#[test]
fn overload_backs_off_and_passes_the_last_error_on() {
    let engine = engine((0..5).map(|i| (i, Ok((503, BUSY)))).collect(), 5);
    let run = block_on(engine.execute(&request(), "m", 9));
    match run.served {
        Served::UpstreamError { status, .. } => assert_eq!(status, 503),
        other => panic!("expected the upstream 503, got {other:?}"),
    }
    assert_eq!(run.attempts.tried.len(), 5);
    assert_eq!(engine.clock().slept.lock().map(|s| s.len()).unwrap_or(0), 4);
    assert!(
        run.attempts.state_changes.is_empty(),
        "overload says nothing about a key"
    );
}

#[test]
fn transport_errors_retry_without_marking_keys() {
    let engine = engine(
        vec![
            (0, Err(TransportError::Timeout)),
            (1, Err(TransportError::Connect("refused".into()))),
        ],
        2,
    );
    let run = block_on(engine.execute(&request(), "m", 1));
    assert!(matches!(
        run.served,
        Served::Failed(ProxyError::UpstreamUnreachable)
    ));
    assert!(run.attempts.state_changes.is_empty());
    let pool = engine.pool().lock().map(|p| p.available("m", 0)).unwrap_or(0);
    assert_eq!(pool, 2);
}

#[test]
fn client_errors_pass_through_scrubbed_without_retry() {
    let engine = engine(vec![(0, Ok((400, ECHO)))], 3);
    let run = block_on(engine.execute(&request(), "m", 1));
    assert_eq!(run.attempts.tried, vec![0]);
    match run.served {
        Served::UpstreamError {
            status,
            body,
            content_type,
        } => {
            assert_eq!(status, 400);
            assert_eq!(content_type.as_deref(), Some("application/json; charset=UTF-8"));
            let text = String::from_utf8_lossy(&body);
            assert!(!text.contains(&key_name(2)), "{text}");
            assert!(text.contains("bad request for"), "{text}");
        }
        other => panic!("expected pass-through, got {other:?}"),
    }
}

#[test]
fn no_keys_is_a_clear_503() {
    let engine = engine(vec![], 0);
    let run = block_on(engine.execute(&request(), "m", 1));
    match run.served {
        Served::Failed(error @ ProxyError::NoKeys(_)) => assert_eq!(error.status_code(), 503),
        other => panic!("expected no keys, got {other:?}"),
    }
    let calls = Cell::new(engine.upstream().used.lock().map(|u| u.len()).unwrap_or(1));
    assert_eq!(calls.get(), 0);
}

#[test]
fn key_check_marks_only_a_broken_key() {
    let engine = engine(
        vec![
            (1, Ok((400, INVALID))),
            (2, Ok((429, QUOTA))),
            (3, Err(TransportError::Timeout)),
        ],
        4,
    );
    let valid = block_on(engine.check_key(0)).expect("key 0 is pooled");
    assert_eq!((valid.verdict(), valid.change.clone()), ("valid", None));

    let broken = block_on(engine.check_key(1)).expect("key 1 is pooled");
    assert_eq!(broken.verdict(), "invalid");
    assert!(matches!(
        broken.change,
        Some(StateChange::Invalid { key_id: 1, ref reason }) if reason.contains("API_KEY_INVALID")
    ));
    let limited = block_on(engine.check_key(2)).expect("key 2 is pooled");
    assert_eq!(
        (limited.verdict(), limited.change.clone()),
        ("rate_limited", None)
    );
    let silent = block_on(engine.check_key(3)).expect("key 3 is pooled");
    assert_eq!((silent.verdict(), silent.change.clone()), ("unreachable", None));
    assert_eq!(
        block_on(engine.check_key(9)),
        None,
        "an unknown key is not checked"
    );

    // The broken key carries its mark; the rate-limited one is not cooled down.
    let run = block_on(engine.execute(&request(), "m", 1));
    assert_eq!(run.attempts.tried, vec![0]);
    let statuses = engine.pool().lock().map(|p| p.statuses()).unwrap_or_default();
    assert!(
        statuses.iter().all(|s| s.state.cooldowns.is_empty()),
        "{statuses:?}"
    );
    let marked: Vec<i64> = statuses
        .iter()
        .filter(|s| s.state.invalid_reason.is_some())
        .map(|s| s.id)
        .collect();
    assert_eq!(marked, vec![1]);
    let sent = engine.upstream().used.lock().map(|u| u.len()).unwrap_or(0);
    assert_eq!(sent, 5, "one call per check of a pooled key, one for the request");
}

#[test]
fn a_plain_text_error_keeps_its_content_type() {
    let engine = engine(vec![(0, Ok((404, "Not Found")))], 3);
    let run = block_on(engine.execute(&request(), "m", 1));
    match run.served {
        Served::UpstreamError {
            status,
            body,
            content_type,
        } => {
            assert_eq!((status, body.as_ref()), (404, b"Not Found".as_ref()));
            assert_eq!(content_type.as_deref(), Some("text/plain"));
        }
        other => panic!("expected pass-through, got {other:?}"),
    }
}

#[test]
fn attempt_cap_on_rate_limits_answers_429_with_the_soonest_recovery() {
    const QUOTA_10S: &str = r#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"10s"}]}}"#;
    // Six keys, five attempts: the five tried all say 429 (one sooner than the others).
    let mut answers: Vec<(i64, Answer)> = (0..5).map(|i| (i, Ok((429, QUOTA)))).collect();
    answers[3] = (3, Ok((429, QUOTA_10S)));
    let five = engine(answers.clone(), 5);
    let run = block_on(five.execute(&request(), "m", 1));
    assert_eq!(run.attempts.tried.len(), 5);
    match run.served {
        Served::Failed(error) => {
            assert_eq!(error.status_code(), 429, "{error}");
            assert_eq!(error.retry_after_secs(), Some(10), "{error}");
        }
        other => panic!("expected a 429, got {other:?}"),
    }
    assert_eq!(run.attempts.last_error_kind, Some("rate_limited"));

    // With a sixth, untried key free, a retry can be served at once: the shortest wait.
    let six = engine(answers, 6);
    let run = block_on(six.execute(&request(), "m", 1));
    match run.served {
        Served::Failed(error) => {
            assert_eq!(error.status_code(), 429, "{error}");
            assert_eq!(error.retry_after_secs(), Some(1), "{error}");
        }
        other => panic!("expected a 429, got {other:?}"),
    }
}

#[test]
fn a_burst_of_invalid_marks_past_half_the_pool_stops_marking() {
    use crate::mark_guard::MARKING_HOLD_MS;
    let engine = engine((0..4).map(|i| (i, Ok((400, INVALID)))).collect(), 4);
    let run = block_on(engine.execute(&request(), "m", 1));
    assert_eq!(run.attempts.tried.len(), 4);
    assert_eq!(run.attempts.state_changes.len(), 2, "half the pool, no more");
    let now = engine.clock().now_ms();
    let pool = engine
        .pool()
        .lock()
        .map(|p| (p.available("m", now), p.marking_suspended(now)));
    let (available, suspended) = pool.unwrap_or_default();
    assert_eq!(available, 2, "the other keys keep serving");
    let suspended = suspended.expect("marking is suspended");
    assert_eq!(suspended.refused, 2);
    // The next request uses the unmarked keys and marks nothing.
    let run = block_on(engine.execute(&request(), "m", 2));
    assert_eq!(
        (run.attempts.tried.len(), run.attempts.state_changes.len()),
        (2, 0)
    );
    // After a quiet hold, marking resumes.
    *engine.clock().now.lock().unwrap_or_else(|p| p.into_inner()) += MARKING_HOLD_MS;
    let run = block_on(engine.execute(&request(), "m", 3));
    assert_eq!(run.attempts.state_changes.len(), 2);
    let later = engine.clock().now_ms();
    let suspended = engine
        .pool()
        .lock()
        .map(|p| p.marking_suspended(later))
        .ok()
        .flatten();
    assert_eq!(suspended, None);
}

#[test]
fn an_operator_check_marks_even_while_marking_is_suspended() {
    let engine = engine((0..3).map(|i| (i, Ok((400, INVALID)))).collect(), 3);
    block_on(engine.execute(&request(), "m", 1));
    let now = engine.clock().now_ms();
    assert!(
        engine
            .pool()
            .lock()
            .map(|p| p.marking_suspended(now).is_some())
            .unwrap_or(false)
    );
    let check = block_on(engine.check_key(2)).expect("pooled");
    assert!(check.change.is_some(), "{check:?}");
}

#[test]
fn a_stalled_error_body_is_a_timeout_of_that_attempt_only() {
    let engine = engine(vec![(0, Ok((429, STALLS)))], 2);
    let run = block_on(engine.execute(&request(), "m", 1));
    assert!(matches!(run.served, Served::Upstream(ref r) if r.status == 200));
    assert_eq!(run.attempts.tried, vec![0, 1]);
    assert!(run.attempts.state_changes.is_empty(), "the key is not marked");
    let timeouts = engine
        .upstream()
        .body_timeouts
        .lock()
        .map(|t| t.clone())
        .unwrap_or_default();
    assert_eq!(
        timeouts,
        vec![EngineConfig::default().attempt_timeout_ms],
        "the body read gets the attempt's time (the manual clock did not move)"
    );
}

#[test]
fn a_redirect_is_a_502_and_no_other_key_is_tried() {
    let engine = engine(vec![(0, Ok((302, "<A HREF=\"https://elsewhere/\">here</A>")))], 3);
    let run = block_on(engine.execute(&request(), "m", 1));
    match &run.served {
        Served::Failed(error @ ProxyError::UpstreamRedirect { status: 302 }) => {
            assert_eq!(error.status_code(), 502)
        }
        other => panic!("expected a redirect error, got {other:?}"),
    }
    assert_eq!(run.attempts.tried, vec![0]);
    assert!(run.attempts.state_changes.is_empty());
    assert_eq!(run.attempts.last_error_kind, Some("upstream_redirect"));
    let message = run.attempts.last_error_message.clone().unwrap_or_default();
    assert!(
        message.contains("302") && !message.contains("elsewhere"),
        "{message}"
    );
}

/// The keys of [`engine`], with `limits` on each.
fn limit_keys(engine: &Engine<Scripted, ManualClock>, keys: i64, limits: crate::keys::KeyLimits) {
    engine.lock_pool().sync(pool_keys(keys, &limits));
}

pub(crate) fn set_clock(engine: &Engine<Scripted, ManualClock>, now: u64) {
    *engine.clock().now.lock().unwrap_or_else(|p| p.into_inner()) = now;
}

#[test]
fn keys_rotate_before_their_rpm_and_none_is_called_past_it() {
    let engine = engine(vec![], 2);
    let mut limits = crate::keys::KeyLimits::default();
    limits.update(None, Some(2), None, None);
    limit_keys(&engine, 2, limits);
    set_clock(&engine, 45_000);
    let mut answered = Vec::new();
    for seed in 0..4 {
        let run = block_on(engine.execute(&request(), "m", seed));
        assert!(matches!(run.served, Served::Upstream(_)), "request {seed}");
        answered.extend(run.attempts.answered);
    }
    assert_eq!(answered, vec![0, 1, 0, 1]);
    // The fifth finds both keys at their limit: 429 until the minute ends, no call.
    let run = block_on(engine.execute(&request(), "m", 9));
    match run.served {
        Served::Failed(error) => {
            assert_eq!(
                error,
                ProxyError::KeysAtLimit {
                    model: "m".into(),
                    retry_after_secs: 15
                }
            );
            assert_eq!(error.status_code(), 429);
        }
        other => panic!("served {other:?}"),
    }
    assert_eq!(run.attempts.tried, Vec::<i64>::new());
    assert_eq!(run.attempts.last_error_kind, Some("upstream_key_limits"));
    assert_eq!(engine.upstream().used.lock().map(|u| u.len()).unwrap_or(0), 4);
    // Another model counts apart; the next minute starts afresh.
    let other = block_on(engine.execute(&request(), "other", 10));
    assert!(matches!(other.served, Served::Upstream(_)));
    set_clock(&engine, 60_000);
    let run = block_on(engine.execute(&request(), "m", 11));
    assert!(matches!(run.served, Served::Upstream(_)));
}

#[test]
fn a_model_limit_and_the_daily_one_reset_at_midnight_pacific() {
    let engine = engine(vec![], 1);
    let mut limits = crate::keys::KeyLimits::default();
    limits.update(Some("m"), None, None, Some(1));
    limit_keys(&engine, 1, limits);
    let now = 1_775_001_570_000; // 2026-03-31T23:59:30Z, 16:59:30 in Los Angeles
    set_clock(&engine, now);
    assert!(matches!(
        block_on(engine.execute(&request(), "m", 1)).served,
        Served::Upstream(_)
    ));
    let refused = block_on(engine.execute(&request(), "m", 2)).served;
    let midnight_pacific = 1_775_026_800_000;
    let wait = (midnight_pacific - now) / 1000;
    assert!(
        matches!(&refused, Served::Failed(ProxyError::KeysAtLimit { retry_after_secs, .. }) if *retry_after_secs == wait),
        "{refused:?}"
    );
    assert!(
        matches!(
            block_on(engine.execute(&request(), "n", 3)).served,
            Served::Upstream(_)
        ),
        "only m is limited"
    );
    set_clock(&engine, midnight_pacific);
    assert!(matches!(
        block_on(engine.execute(&request(), "m", 4)).served,
        Served::Upstream(_)
    ));
}
