//! Fallback, breaker and retry budget in the attempt loop, against the scripted
//! upstream and the manual clock of `engine_tests`.

use crate::engine::{EngineConfig, Job, Served};
use crate::engine_tests::{
    Answer, BUSY, ManualClock, QUOTA, Scripted, block_on, engine_with, request_for, set_clock,
};
use crate::error::ProxyError;
use crate::policy::ProxyKeyPolicy;
use crate::resilience::{BreakerConfig, Fallbacks, ResilienceConfig, RetryBudgetConfig};

fn config(fallbacks: &[&str], breaker_failures: u32) -> EngineConfig {
    EngineConfig {
        resilience: ResilienceConfig {
            fallbacks: Fallbacks::parse(fallbacks.iter().copied()).unwrap_or_default(),
            breaker: BreakerConfig {
                failures: breaker_failures,
                pause_ms: 10_000,
                max_pause_ms: 60_000,
            },
            retry_budget: RetryBudgetConfig::default(),
            queue: Default::default(),
            cache: Default::default(),
            hedge_after_ms: 0,
        },
        ..EngineConfig::default()
    }
}

type TestEngine = crate::Engine<Scripted, ManualClock>;

fn script(engine: &TestEngine, model: &str, answer: Answer) {
    let mut by_model = engine
        .upstream()
        .by_model
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    by_model.insert(model.to_string(), answer);
}

fn paths(engine: &TestEngine) -> Vec<String> {
    engine
        .upstream()
        .paths
        .lock()
        .map(|p| p.clone())
        .unwrap_or_default()
}

#[test]
fn an_overloaded_model_is_served_by_its_fallback_and_both_are_recorded() {
    let engine = engine_with(vec![], 3, config(&["pro=flash"], 0));
    script(&engine, "pro", Ok((503, BUSY)));
    let run = block_on(engine.execute(&request_for("pro"), "pro", 1));
    assert!(matches!(run.served, Served::Upstream(ref r) if r.status == 200));
    assert_eq!(run.attempts.served_model.as_deref(), Some("flash"));
    let calls = paths(&engine);
    assert_eq!(
        calls.len(),
        4,
        "three keys for pro, then one for flash: {calls:?}"
    );
    assert!(calls[..3].iter().all(|p| p.contains("/models/pro:")), "{calls:?}");
    assert_eq!(calls[3], "/v1beta/models/flash:generateContent");
    assert_eq!(run.attempts.tried, vec![0, 1, 2, 0], "keys are per model");
    assert_eq!(run.attempts.notes, vec!["fallback pro → flash (upstream 503)"]);
}

#[test]
fn chains_follow_and_rate_limits_fall_back_too() {
    let engine = engine_with(vec![], 2, config(&["a=b", "b=c"], 0));
    script(&engine, "a", Ok((429, QUOTA)));
    script(&engine, "b", Ok((503, BUSY)));
    let run = block_on(engine.execute(&request_for("a"), "a", 1));
    assert!(matches!(run.served, Served::Upstream(_)));
    assert_eq!(run.attempts.served_model.as_deref(), Some("c"));
    assert_eq!(
        run.attempts.notes,
        vec![
            "fallback a → b (all_keys_cooling)",
            "fallback b → c (upstream 503)"
        ]
    );
    // The last in a chain has no fallback: its own answer stands.
    script(&engine, "c", Ok((503, BUSY)));
    let run = block_on(engine.execute(&request_for("a"), "a", 2));
    assert!(matches!(run.served, Served::UpstreamError { status: 503, .. }));
}

#[test]
fn a_fallback_the_proxy_key_may_not_use_is_not_taken() {
    let engine = engine_with(vec![], 2, config(&["pro=flash"], 0));
    script(&engine, "pro", Ok((503, BUSY)));
    let policy = ProxyKeyPolicy {
        models: vec!["pro".into()],
        ..ProxyKeyPolicy::default()
    };
    let request = request_for("pro");
    let job = Job {
        request: &request,
        model: "pro",
        policy: Some(&policy),
    };
    let mut attempts = Default::default();
    let served = block_on(engine.serve(job, 1, &mut attempts));
    assert!(matches!(served, Served::UpstreamError { status: 503, .. }));
    assert!(paths(&engine).iter().all(|p| p.contains("/models/pro:")));
    assert_eq!(attempts.served_model, None);
    // A client error is the request's fault, not the model's: no fallback either.
    script(
        &engine,
        "pro",
        Ok((400, r#"{"error":{"code":400,"status":"INVALID_ARGUMENT"}}"#)),
    );
    let run = block_on(engine.execute(&request, "pro", 2));
    assert!(matches!(run.served, Served::UpstreamError { status: 400, .. }));
}

#[test]
fn the_breaker_opens_fails_fast_half_opens_and_closes() {
    let engine = engine_with(vec![], 5, config(&[], 3));
    script(&engine, "m", Ok((503, BUSY)));
    let run = block_on(engine.execute(&request_for("m"), "m", 1));
    assert_eq!(paths(&engine).len(), 3, "opened after three 5xx");
    match run.served {
        Served::Failed(ProxyError::ModelUnavailable { retry_after_secs, .. }) => {
            assert_eq!(retry_after_secs, 10)
        }
        other => panic!("expected the breaker's 503, got {other:?}"),
    }
    assert!(
        run.attempts
            .notes
            .contains(&"breaker opened for m (10 s)".to_string())
    );
    let slept = engine.clock().slept.lock().map(|s| s.len()).unwrap_or(0);
    assert_eq!(slept, 2, "no backoff once the breaker is open");
    assert_eq!(run.attempts.last_error_kind, Some("breaker_open"));
    // While open, nothing goes upstream; another model is not affected.
    let now = engine.clock().now.lock().map(|n| *n).unwrap_or(0);
    let run = block_on(engine.execute(&request_for("m"), "m", 2));
    assert!(matches!(
        run.served,
        Served::Failed(ProxyError::ModelUnavailable { .. })
    ));
    assert_eq!(paths(&engine).len(), 3);
    let run = block_on(engine.execute(&request_for("other"), "other", 3));
    assert!(matches!(run.served, Served::Upstream(_)));
    // The pause over, one probe; it fails, so the pause doubles.
    set_clock(&engine, now + 10_000);
    let run = block_on(engine.execute(&request_for("m"), "m", 4));
    assert!(
        run.attempts
            .notes
            .contains(&"breaker opened for m (20 s)".to_string())
    );
    assert_eq!(paths(&engine).len(), 5, "the probe only: {:?}", paths(&engine));
    // The model is back: the next probe closes the breaker.
    script(&engine, "m", Ok((200, "{}")));
    set_clock(&engine, now + 40_000);
    let run = block_on(engine.execute(&request_for("m"), "m", 5));
    assert!(matches!(run.served, Served::Upstream(_)));
    assert_eq!(run.attempts.notes, vec!["breaker closed for m"]);
}

#[test]
fn an_open_breaker_sends_requests_to_the_fallback_at_once() {
    let engine = engine_with(vec![], 3, config(&["m=f"], 2));
    script(&engine, "m", Ok((503, BUSY)));
    block_on(engine.execute(&request_for("m"), "m", 1));
    let before = paths(&engine).len();
    let run = block_on(engine.execute(&request_for("m"), "m", 2));
    assert_eq!(run.attempts.served_model.as_deref(), Some("f"));
    assert_eq!(run.attempts.notes, vec!["fallback m → f (breaker_open)"]);
    let calls = paths(&engine);
    assert_eq!(calls.len(), before + 1, "straight to the fallback: {calls:?}");
}

#[test]
fn retries_after_5xx_wait_for_a_place_in_the_budget() {
    let engine = engine_with(vec![], 5, config(&[], 0));
    script(&engine, "m", Ok((503, BUSY)));
    let budget = engine.resilience().budget();
    // Nine other requests in flight, three of them retrying: the floor is taken.
    let others: Vec<_> = (0..9).map(|_| budget.request()).collect();
    let retrying: Vec<_> = (0..3).filter_map(|_| budget.retry()).collect();
    assert_eq!(retrying.len(), 3);
    let run = block_on(engine.execute(&request_for("m"), "m", 1));
    assert!(matches!(run.served, Served::UpstreamError { status: 503, .. }));
    assert_eq!(paths(&engine).len(), 1, "not retried");
    assert_eq!(run.attempts.notes, vec!["retry budget spent: not retried"]);
    // Places free again: the next request retries across its keys.
    drop(retrying);
    drop(others);
    let run = block_on(engine.execute(&request_for("m"), "m", 2));
    assert_eq!(run.attempts.tried.len(), 5);
    assert_eq!(budget.in_flight(), (0, 0));
}

#[test]
fn key_failures_rotate_without_the_budget() {
    let engine = engine_with(vec![], 4, config(&[], 0));
    script(&engine, "m", Ok((429, QUOTA)));
    let budget = engine.resilience().budget();
    let _others: Vec<_> = (0..9).map(|_| budget.request()).collect();
    let _retrying: Vec<_> = (0..3).filter_map(|_| budget.retry()).collect();
    let run = block_on(engine.execute(&request_for("m"), "m", 1));
    assert_eq!(run.attempts.tried.len(), 4, "every key tried");
}

const EMPTY: &str = r#"{"candidates":[{"content":{"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"totalTokenCount":12}}"#;
const TEXT: &str = r#"{"candidates":[{"content":{"parts":[{"text":"hi"}]},"finishReason":"STOP"}]}"#;

fn checked(model: &str) -> crate::platform::PreparedRequest {
    crate::platform::PreparedRequest {
        empty_check: crate::platform::EmptyCheck::Gemini,
        empty_hold_ms: 0,
        ..request_for(model)
    }
}

fn answered_body(served: &Served<bytes::Bytes>) -> String {
    match served {
        Served::Upstream(response) => String::from_utf8_lossy(&response.inner).into_owned(),
        other => panic!("expected an answer, got {other:?}"),
    }
}

#[test]
fn an_empty_answer_is_retried_once_on_another_key() {
    let engine = engine_with(
        vec![(0, Ok((200, EMPTY))), (1, Ok((200, TEXT)))],
        3,
        config(&[], 0),
    );
    let run = block_on(engine.execute(&checked("m"), "m", 1));
    assert_eq!(answered_body(&run.served), TEXT);
    assert_eq!(run.attempts.tried, vec![0, 1]);
    assert_eq!(run.attempts.answered, Some(1));
    assert_eq!(
        run.attempts.notes,
        vec!["empty answer from key 0 (finishReason STOP with no parts, 12 tokens): retried on another key"]
    );
    // Unchecked (a stream, --retry-empty off), the empty answer goes to the client.
    let run = block_on(engine.execute(&request_for("m"), "m", 2));
    assert_eq!(run.attempts.tried.len(), 1);
}

#[test]
fn only_once_and_the_empty_answer_is_served_when_no_key_does_better() {
    let engine = engine_with(
        vec![(0, Ok((200, EMPTY))), (1, Ok((200, EMPTY)))],
        3,
        config(&[], 0),
    );
    let run = block_on(engine.execute(&checked("m"), "m", 1));
    assert_eq!(
        run.attempts.tried,
        vec![0, 1],
        "retried once, not on the third key"
    );
    assert_eq!(
        (answered_body(&run.served), run.attempts.answered),
        (EMPTY.to_string(), Some(1))
    );

    let engine = engine_with(
        vec![(0, Ok((200, EMPTY))), (1, Ok((429, QUOTA)))],
        2,
        config(&[], 0),
    );
    let run = block_on(engine.execute(&checked("m"), "m", 1));
    assert_eq!(
        (answered_body(&run.served), run.attempts.answered),
        (EMPTY.to_string(), Some(0))
    );
    assert_eq!(
        run.attempts.notes.last().map(String::as_str),
        Some("no other key answered better: the empty answer was served")
    );
    assert_eq!(run.attempts.state_changes.len(), 1, "the 429 still cools its key");
}

fn queued(wait_ms: u64, max: usize) -> EngineConfig {
    let mut config = config(&[], 0);
    config.resilience.queue = crate::resilience::QueueConfig { wait_ms, max };
    config
}

/// Key 0 cooling for `model` until `until_ms`.
fn cool(engine: &TestEngine, model: &str, until_ms: u64) {
    let outcome = crate::classify::Outcome::RateLimited {
        until_ms,
        per_day: false,
        model_off: false,
    };
    let mut pool = engine.pool().lock().unwrap_or_else(|p| p.into_inner());
    pool.apply(0, model, &outcome, 0);
}

#[test]
fn a_waiting_request_gets_the_key_when_its_cooldown_ends() {
    let engine = engine_with(vec![], 1, queued(10_000, 10));
    cool(&engine, "m", 2_000);
    let run = block_on(engine.execute(&request_for("m"), "m", 1));
    assert!(matches!(run.served, Served::Upstream(_)), "{:?}", run.served);
    assert_eq!(
        engine.clock().now.lock().map(|n| *n).unwrap_or(0),
        2_000,
        "slept until it freed"
    );
    assert_eq!(
        run.attempts.notes,
        vec!["waited 2000 ms in the queue for a key, then a key was free"]
    );
    assert!(engine.resilience().queue().is_empty(), "and left the queue");
}

#[test]
fn the_wait_ends_with_429_when_no_key_frees_in_time() {
    let engine = engine_with(vec![], 1, queued(3_000, 10));
    cool(&engine, "m", 30_000);
    let run = block_on(engine.execute(&request_for("m"), "m", 1));
    match run.served {
        Served::Failed(ProxyError::AllKeysCooling { retry_after_secs, .. }) => {
            assert_eq!(retry_after_secs, 27)
        }
        other => panic!("expected 429, got {other:?}"),
    }
    assert_eq!(
        run.attempts.notes,
        vec!["waited 3000 ms in the queue for a key, no key freed in time"]
    );
    assert!(paths(&engine).is_empty());
}

#[test]
fn a_full_queue_refuses_at_once_and_newcomers_line_up_behind_waiters() {
    let engine = engine_with(vec![], 1, queued(10_000, 1));
    cool(&engine, "m", 5_000);
    let waiter = engine.resilience().queue().join("m");
    assert!(waiter.is_some());
    let run = block_on(engine.execute(&request_for("m"), "m", 1));
    match run.served {
        Served::Failed(ProxyError::QueueFull { retry_after_secs, .. }) => assert_eq!(retry_after_secs, 5),
        other => panic!("expected queue_full, got {other:?}"),
    }
    assert_eq!(engine.clock().now.lock().map(|n| *n).unwrap_or(1), 0, "no wait");
    // Another model's key is free: no queue for it.
    let run = block_on(engine.execute(&request_for("other"), "other", 2));
    assert!(matches!(run.served, Served::Upstream(_)));
    // With room in the queue, a newcomer waits behind the waiter even once the key is
    // free; here the waiter never leaves, so the newcomer's wait runs out.
    drop(waiter);
    let engine = engine_with(vec![], 1, queued(1_000, 5));
    let _waiter = engine.resilience().queue().join("m");
    let run = block_on(engine.execute(&request_for("m"), "m", 3));
    let now = engine.clock().now.lock().map(|n| *n).unwrap_or(0);
    assert_eq!(now, 1_000, "it never jumped the line");
    assert!(
        matches!(run.served, Served::Upstream(_)),
        "served once its wait was over: {:?}",
        run.served
    );
    assert_eq!(paths(&engine).len(), 1);
}
