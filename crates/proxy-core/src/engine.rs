//! One client request's attempts: pick a key, call upstream, learn from the answer,
//! retry or stop. The only async code in the core; all IO goes through the platform's
//! [`Upstream`] and [`Clock`], all decisions through the pure modules.

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

use bytes::Bytes;
use serde_json::Value;

pub use crate::attempts::Attempts;
use crate::classify::{Outcome, classify};
use crate::defaults;
use crate::error::ProxyError;
use crate::governance::Governor;
use crate::keys::{KeyId, Secret};
use crate::platform::{Clock, Peek, PreparedRequest, TransportError, Upstream, UpstreamResponse};
use crate::policy::ProxyKeyPolicy;
use crate::pool::{KeyPool, Pick};
use crate::redact::scrub;
use crate::resilience::empty::{Empty, EmptyCheck, empty_answer};
use crate::resilience::retry_budget::RetryTicket;
use crate::resilience::{Admit, BreakerEvent, Place, Resilience, ResilienceConfig, fallback};
use crate::retry::{Decision, Jitter, RetryPolicy};
use crate::trace::AttemptSpan;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    pub retry: RetryPolicy,
    /// Longest wait for one attempt's response headers. Thinking models can be silent
    /// for minutes before a non-streamed answer, so this is generous by default.
    pub attempt_timeout_ms: u64,
    /// Largest error body read to classify it.
    pub error_body_limit: usize,
    /// Fallbacks, the breakers' and the retry budget's settings.
    pub resilience: ResilienceConfig,
}

impl EngineConfig {
    /// The engine's settings as an operator gives them (flags, Worker vars), with a
    /// floor of one attempt; everything else keeps its default.
    pub fn from_limits(max_attempts: u32, deadline_secs: u64, attempt_timeout_secs: u64) -> Self {
        Self {
            retry: RetryPolicy {
                max_attempts: max_attempts.max(1),
                deadline_ms: deadline_secs.saturating_mul(1000),
                ..RetryPolicy::default()
            },
            attempt_timeout_ms: attempt_timeout_secs.saturating_mul(1000),
            ..Self::default()
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            attempt_timeout_ms: defaults::ATTEMPT_TIMEOUT_SECS * 1000,
            error_body_limit: defaults::ERROR_BODY_LIMIT,
            resilience: ResilienceConfig::default(),
        }
    }
}

/// How the request ends.
#[derive(Debug)]
pub enum Served<R> {
    /// A 2xx from upstream: stream it to the client.
    Upstream(UpstreamResponse<R>),
    /// Upstream's final error, passed on with its keys scrubbed out.
    UpstreamError {
        status: u16,
        body: Bytes,
        content_type: Option<String>,
    },
    /// The proxy's own verdict.
    Failed(ProxyError),
}

#[derive(Debug)]
pub struct Execution<R> {
    pub served: Served<R>,
    pub attempts: Attempts,
}

pub struct Engine<U, C> {
    pool: Arc<Mutex<KeyPool>>,
    upstream: U,
    clock: C,
    config: EngineConfig,
    /// Limits and prices; admission and the end of each answer share it.
    governor: Arc<Governor>,
    /// Fallbacks, breakers and the retry budget.
    resilience: Resilience,
}

/// The most of a 2xx body read to tell whether it is empty: an empty answer is a few
/// hundred bytes; anything longer has content.
const EMPTY_PEEK_LIMIT: usize = 16 * 1024;

/// What a request asks of the engine.
#[derive(Clone, Copy, Debug)]
pub struct Job<'a> {
    pub request: &'a PreparedRequest,
    /// The model requested (`*` when none applies).
    pub model: &'a str,
    /// The proxy key's policy: a fallback model must be one it allows.
    pub policy: Option<&'a ProxyKeyPolicy>,
}

/// One request's run across its models: one deadline, one jitter sequence.
struct Run {
    started: u64,
    jitter: Jitter,
}

/// Why the attempt loop stopped short of a 2xx.
enum LastFailure {
    None,
    Upstream {
        status: u16,
        body: Bytes,
        content_type: Option<String>,
        outcome: Outcome,
    },
    Transport(TransportError),
}

impl<U: Upstream, C: Clock> Engine<U, C> {
    pub fn new(pool: Arc<Mutex<KeyPool>>, upstream: U, clock: C, config: EngineConfig) -> Self {
        Self {
            pool,
            upstream,
            clock,
            resilience: Resilience::new(&config.resilience),
            config,
            governor: Arc::default(),
        }
    }

    /// The engine with `governor`'s limits and prices (the default has the built-in
    /// prices and counts nothing shared).
    pub fn with_governor(mut self, governor: Arc<Governor>) -> Self {
        self.governor = governor;
        self
    }

    pub fn pool(&self) -> &Arc<Mutex<KeyPool>> {
        &self.pool
    }

    pub fn governor(&self) -> &Arc<Governor> {
        &self.governor
    }

    pub fn resilience(&self) -> &Resilience {
        &self.resilience
    }

    pub fn clock(&self) -> &C {
        &self.clock
    }

    pub fn upstream(&self) -> &U {
        &self.upstream
    }

    /// A poisoned lock only means another request panicked mid-update; the pool's
    /// data is still consistent (every update is a single assignment), so keep going.
    pub(crate) fn lock_pool(&self) -> MutexGuard<'_, KeyPool> {
        self.pool.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Serves `request` for `model` over as many keys as the retry policy allows.
    pub async fn execute(&self, request: &PreparedRequest, model: &str, seed: u64) -> Execution<U::Response> {
        let mut attempts = Attempts::default();
        let job = Job {
            request,
            model,
            policy: None,
        };
        let served = self.serve(job, seed, &mut attempts).await;
        Execution { served, attempts }
    }

    /// [`Engine::execute`], recording into `attempts` as it goes: a caller whose
    /// request is dropped mid-way (the client left) still knows which keys were called.
    /// When the model is overloaded or out of keys and the operator named a fallback
    /// the proxy key may use, the fallback serves it, on the same deadline.
    pub async fn serve(&self, job: Job<'_>, seed: u64, attempts: &mut Attempts) -> Served<U::Response> {
        let _in_flight = self.resilience.budget().request();
        let mut run = Run {
            started: self.clock.now_ms(),
            jitter: Jitter::new(seed),
        };
        // Borrowed, not copied: a request without a fallback costs no allocation here.
        let mut model: &str = job.model;
        let mut retargeted: Option<PreparedRequest> = None;
        loop {
            let request = retargeted.as_ref().unwrap_or(job.request);
            let served = self.serve_model(request, model, &mut run, attempts).await;
            let Some(next) = self.fallback(model, &served, job.policy) else {
                return served;
            };
            let Some(next_request) = fallback::retarget(request, model, next) else {
                return served;
            };
            attempts
                .notes
                .push(format!("fallback {model} → {next} ({})", served_reason(&served)));
            attempts.served_model = Some(next.to_string());
            model = next;
            retargeted = Some(next_request);
        }
    }

    /// The model that serves a request `model` could not, if the answer calls for
    /// one and the proxy key may use it.
    fn fallback(
        &self,
        model: &str,
        served: &Served<U::Response>,
        policy: Option<&ProxyKeyPolicy>,
    ) -> Option<&str> {
        if !falls_back(served) {
            return None;
        }
        let next = self.config.resilience.fallbacks.next(model)?;
        policy
            .is_none_or(|p| p.check_model(Some(next)).is_ok())
            .then_some(next)
    }

    /// One model's attempts: keys in turn, each outcome taught to the pool and the
    /// model's breaker, retries within the policy and the retry budget.
    async fn serve_model(
        &self,
        request: &PreparedRequest,
        model: &str,
        run: &mut Run,
        attempts: &mut Attempts,
    ) -> Served<U::Response> {
        let mut last = LastFailure::None;
        // Keys are per model: a fallback model may use a key the first one tried.
        let mut tried: Vec<KeyId> = Vec::new();
        let mut _retry: Option<RetryTicket<'_>> = None;
        let gated = model != "*";
        // An empty answer retried on another key, served if no key does better.
        let mut held: Option<(KeyId, UpstreamResponse<U::Response>)> = None;
        // Waiting for a key: until then, from the request's arrival.
        let queue = self.resilience.queue();
        let wait_ms = self.config.resilience.queue.wait_ms;
        let wait_until = run.started.saturating_add(wait_ms);
        let mut place: Option<(Place<'_>, u64)> = None;
        let served = loop {
            let now = self.clock.now_ms();
            if gated && let Admit::Open { retry_after_ms } = self.resilience.breakers().admit(model, now) {
                let error = ProxyError::ModelUnavailable {
                    model: model.to_string(),
                    retry_after_secs: retry_after_secs(retry_after_ms),
                };
                break self.finish(model, attempts, last, Some(error));
            }
            let waiting = wait_ms > 0 && gated && now < wait_until;
            // Fair: a newcomer lines up behind those already waiting for the model.
            if waiting && place.is_none() && tried.is_empty() && queue.has_waiters(model) {
                match queue.join(model) {
                    Some(joined) => place = Some((joined, now)),
                    None => break self.queue_full(model, attempts, last, now),
                }
            }
            if waiting && let Some((joined, _)) = place.as_ref().filter(|(p, _)| !p.is_first()) {
                let ((), us) = self.waited(self.wait_first(joined, wait_until - now)).await;
                attempts.waiting_us += us;
                continue;
            }
            let mut pick = self.governor.pick(&mut self.lock_pool(), model, now, &tried);
            if waiting && matches!(pick, Pick::Exhausted) {
                // The keys tried went cold: waiting for one to free is worth a second
                // call to it, after its cooldown.
                if let Some(retry_after_ms) = self.lock_pool().all_cooling_for(model, now) {
                    tried.clear();
                    pick = Pick::AllCooling { retry_after_ms };
                }
            }
            let pick = match pick {
                Pick::AllCooling { retry_after_ms } | Pick::AllAtLimit { retry_after_ms } if waiting => {
                    if place.is_none() {
                        match queue.join(model) {
                            Some(joined) => place = Some((joined, now)),
                            None => break self.queue_full(model, attempts, last, now),
                        }
                    }
                    // First in line: sleep until a key frees (or the wait ends).
                    if place.as_ref().is_some_and(|(p, _)| p.is_first()) {
                        let sleep = self.clock.sleep_ms(retry_after_ms.min(wait_until - now).max(1));
                        let ((), us) = self.waited(sleep).await;
                        attempts.waiting_us += us;
                    }
                    continue;
                }
                pick => pick,
            };
            if let Some((left, since)) = place.take() {
                drop(left);
                let waited = now.saturating_sub(since);
                let outcome = match pick {
                    Pick::Key { .. } => "then a key was free",
                    _ => "no key freed in time",
                };
                attempts
                    .notes
                    .push(format!("waited {waited} ms in the queue for a key, {outcome}"));
            }
            let (key_id, secret) = match pick {
                Pick::Key { id, secret } => (id, secret),
                Pick::AllCooling { retry_after_ms } => {
                    break self.finish(model, attempts, last, Some(all_cooling(model, retry_after_ms)));
                }
                Pick::AllAtLimit { retry_after_ms } => {
                    let error = ProxyError::KeysAtLimit {
                        model: model.to_string(),
                        retry_after_secs: retry_after_secs(retry_after_ms),
                    };
                    break self.finish(model, attempts, last, Some(error));
                }
                Pick::Exhausted => {
                    // Tried keys are out of the pick; if they all went cold, say when
                    // the first comes back rather than "no key".
                    let cooling = self.lock_pool().all_cooling_for(model, now);
                    let verdict = cooling.map(|ms| all_cooling(model, ms));
                    break self.finish(model, attempts, last, verdict);
                }
            };
            tried.push(key_id);
            attempts.tried.push(key_id);
            let elapsed = now.saturating_sub(run.started);
            let budget = self.config.retry.deadline_ms.saturating_sub(elapsed);
            let timeout = self.config.attempt_timeout_ms.min(budget).max(1);
            let started_at = now;
            let began_us = self.clock.monotonic_us();
            let sending = self.send_hedged(request, model, (key_id, &secret), timeout, &mut tried, attempts);
            let ((key_id, sent), us) = self.waited(sending).await;
            attempts.waiting_us += us;
            let outcome = match sent {
                Ok(mut response) if (200..300).contains(&response.status) => {
                    let now = self.clock.now_ms();
                    self.lock_pool().apply(key_id, model, &Outcome::Success, now);
                    if gated {
                        self.learn(model, &Outcome::Success, now, attempts);
                    }
                    let check = if held.is_none() {
                        request.empty_check
                    } else {
                        EmptyCheck::Off
                    };
                    let left = timeout.saturating_sub(now.saturating_sub(started_at));
                    let left = match (check.is_stream(), request.empty_hold_ms) {
                        (true, hold) if hold > 0 => left.min(hold),
                        _ => left,
                    };
                    let peeking = self.empty_answer(check, &mut response.inner, left.max(1));
                    let (empty, us) = self.waited(peeking).await;
                    attempts.waiting_us += us;
                    // A failed read is counted with the failures (`record_failure`).
                    if let Ok(found) = &empty {
                        let label = if found.is_some() { "empty" } else { "ok" };
                        let status = Some(response.status);
                        attempts
                            .spans
                            .push(self.span(model, key_id, label, status, began_us));
                    }
                    match empty {
                        Ok(None) => {
                            attempts.answered = Some(key_id);
                            break Served::Upstream(response);
                        }
                        Ok(Some(empty)) => {
                            // Once, on another key; the empty answer waits in case
                            // none does better.
                            let used = empty
                                .total_tokens
                                .map(|t| format!(", {t} tokens"))
                                .unwrap_or_default();
                            attempts.notes.push(format!(
                                "empty answer from key {key_id} ({}{used}): retried on another key",
                                empty.why
                            ));
                            held = Some((key_id, response));
                            continue;
                        }
                        Err(error) => transport_failure(error, &mut last),
                    }
                }
                Ok(response) if is_redirect(response.status) => {
                    // Never followed (the key would go along), and no key's fault: any
                    // key would get the same answer. The Location stays out of the log.
                    let error = ProxyError::UpstreamRedirect {
                        status: response.status,
                    };
                    attempts.last_error_kind = Some(error.kind());
                    attempts.last_error_message = Some(error.to_string());
                    break self.finish(model, attempts, last, Some(error));
                }
                Ok(response) => {
                    let status = response.status;
                    let content_type = response.content_type;
                    // The error body is part of the attempt: it gets what is left.
                    let left = timeout.saturating_sub(self.clock.now_ms().saturating_sub(now));
                    let limit = self.config.error_body_limit;
                    let reading = self.upstream.read_body(response.inner, limit, left.max(1));
                    let (body, us) = self.waited(reading).await;
                    attempts.waiting_us += us;
                    match body {
                        Ok(body) => {
                            let outcome = classify(status, &body, self.clock.now_ms());
                            last = LastFailure::Upstream {
                                status,
                                body,
                                content_type,
                                outcome: outcome.clone(),
                            };
                            outcome
                        }
                        Err(error) => transport_failure(error, &mut last),
                    }
                }
                Err(error) => transport_failure(error, &mut last),
            };
            self.record_failure(attempts, key_id, model, &outcome, &last);
            let status = match &last {
                LastFailure::Upstream { status, .. } => Some(*status),
                _ => None,
            };
            let label = outcome.metric_label();
            attempts
                .spans
                .push(self.span(model, key_id, label, status, began_us));
            if gated {
                self.learn(model, &outcome, self.clock.now_ms(), attempts);
            }
            let elapsed = self.clock.now_ms().saturating_sub(run.started);
            let attempt_count = tried.len() as u32;
            match self
                .config
                .retry
                .decide(&outcome, attempt_count, elapsed, run.jitter.next_u64())
            {
                Decision::Stop => break self.finish(model, attempts, last, None),
                Decision::RetryNow => {}
                Decision::RetryAfter { .. }
                    if gated && self.resilience.breakers().is_open(model, self.clock.now_ms()) =>
                {
                    // This attempt opened the breaker: no backoff, the loop's check
                    // answers (or falls back) at once.
                }
                Decision::RetryAfter { delay_ms } => {
                    // A model-wide failure: retrying it needs a place in the budget.
                    _retry = None;
                    let Some(ticket) = self.resilience.budget().retry() else {
                        attempts.notes.push("retry budget spent: not retried".into());
                        break self.finish(model, attempts, last, None);
                    };
                    _retry = Some(ticket);
                    let ((), us) = self.waited(self.clock.sleep_ms(delay_ms)).await;
                    attempts.waiting_us += us;
                }
            }
        };
        match (served, held) {
            (Served::Upstream(response), _) => Served::Upstream(response),
            (_, Some((key_id, response))) => {
                attempts.answered = Some(key_id);
                attempts
                    .notes
                    .push("no other key answered better: the empty answer was served".into());
                Served::Upstream(response)
            }
            (served, None) => served,
        }
    }

    /// Sends `request` with `first`; a non-streamed request still without headers
    /// after `--hedge-after-ms` goes to a second key too. The first 2xx wins and the
    /// other call is dropped (cancelled); when both fail, the first key's failure is
    /// the attempt's. Returns the key whose answer it is.
    async fn send_hedged(
        &self,
        request: &PreparedRequest,
        model: &str,
        first: (KeyId, &Secret),
        timeout: u64,
        tried: &mut Vec<KeyId>,
        attempts: &mut Attempts,
    ) -> (KeyId, Result<UpstreamResponse<U::Response>, TransportError>) {
        let hedge_ms = self.config.resilience.hedge_after_ms;
        let mut a = self.upstream.send(request, first.1, timeout);
        if hedge_ms == 0 || hedge_ms >= timeout || request.stream || model == "*" {
            return (first.0, a.await);
        }
        let mut delay = self.clock.sleep_ms(hedge_ms);
        let early = std::future::poll_fn(|cx| match a.as_mut().poll(cx) {
            Poll::Ready(sent) => Poll::Ready(Some(sent)),
            Poll::Pending => delay.as_mut().poll(cx).map(|()| None),
        })
        .await;
        if let Some(sent) = early {
            return (first.0, sent);
        }
        let now = self.clock.now_ms();
        let Pick::Key { id, secret } = self.governor.pick(&mut self.lock_pool(), model, now, tried) else {
            return (first.0, a.await);
        };
        tried.push(id);
        attempts.tried.push(id);
        let mut b = self
            .upstream
            .send(request, &secret, timeout.saturating_sub(hedge_ms).max(1));
        let (mut a_sent, mut b_sent) = (None, None);
        let ok = |sent: &Option<Result<UpstreamResponse<U::Response>, TransportError>>| matches!(sent, Some(Ok(r)) if (200..300).contains(&r.status));
        let b_won = std::future::poll_fn(|cx| {
            if a_sent.is_none()
                && let Poll::Ready(sent) = a.as_mut().poll(cx)
            {
                a_sent = Some(sent);
            }
            if b_sent.is_none()
                && let Poll::Ready(sent) = b.as_mut().poll(cx)
            {
                b_sent = Some(sent);
            }
            match (ok(&a_sent), ok(&b_sent), a_sent.is_some() && b_sent.is_some()) {
                (true, _, _) => Poll::Ready(false),
                (false, true, _) => Poll::Ready(true),
                (false, false, true) => Poll::Ready(false),
                _ => Poll::Pending,
            }
        })
        .await;
        let (winner, loser) = if b_won { (id, first.0) } else { (first.0, id) };
        let outcome = match ok(&a_sent) || ok(&b_sent) {
            true => format!("key {winner} answered first, the call to key {loser} was cancelled"),
            false => format!("both failed, key {}'s answer counts", first.0),
        };
        attempts.notes.push(format!(
            "hedged: key {id} called after {hedge_ms} ms without headers from key {}; {outcome}",
            first.0
        ));
        let sent = match b_won {
            true => b_sent,
            false => a_sent,
        };
        (winner, sent.unwrap_or(Err(TransportError::Timeout)))
    }

    /// Waits until `place` is first in its line, or `within_ms` passed.
    async fn wait_first(&self, place: &Place<'_>, within_ms: u64) {
        let mut sleep = self.clock.sleep_ms(within_ms.max(1));
        std::future::poll_fn(|cx| match place.poll_first(cx) {
            Poll::Ready(()) => Poll::Ready(()),
            Poll::Pending => sleep.as_mut().poll(cx),
        })
        .await;
    }

    /// The queue for a key is full: 429, with when the first key frees.
    fn queue_full(
        &self,
        model: &str,
        attempts: &mut Attempts,
        last: LastFailure,
        now: u64,
    ) -> Served<U::Response> {
        let wait_ms = self.lock_pool().soonest_free_in(model, now).unwrap_or(1_000);
        let error = ProxyError::QueueFull {
            model: model.to_string(),
            retry_after_secs: retry_after_secs(wait_ms),
        };
        self.finish(model, attempts, last, Some(error))
    }

    /// Awaits `work` that is not the proxy's own time (upstream's answer, a deliberate
    /// wait): its output and the microseconds it took ([`Attempts::waiting_us`]).
    async fn waited<T>(&self, work: impl Future<Output = T>) -> (T, u64) {
        let started = self.clock.monotonic_us();
        let output = work.await;
        (output, self.clock.monotonic_us().saturating_sub(started))
    }

    /// Whether a 2xx is an empty answer (when `check` asks), read without taking it
    /// from `response`; a body larger than any empty answer is not one. A stream is
    /// read only until it decides, and one still undecided after `timeout_ms` goes on
    /// unchecked.
    async fn empty_answer(
        &self,
        check: EmptyCheck,
        response: &mut U::Response,
        timeout_ms: u64,
    ) -> Result<Option<Empty>, TransportError> {
        let decided: fn(&[u8]) -> bool = match check {
            EmptyCheck::Off => return Ok(None),
            EmptyCheck::Gemini | EmptyCheck::OpenAi => |_| false,
            EmptyCheck::GeminiStream => |start| EmptyCheck::GeminiStream.decided(start),
            EmptyCheck::OpenAiStream => |start| EmptyCheck::OpenAiStream.decided(start),
        };
        let peek = Peek {
            limit: EMPTY_PEEK_LIMIT,
            timeout_ms,
            decided,
            timeout_ends: check.is_stream(),
        };
        let (start, whole) = self.upstream.peek_body(response, peek).await?;
        Ok(whole.then(|| empty_answer(check, &start)).flatten())
    }

    /// An attempt that began at `began_us` (monotonic) and ends now.
    fn span(
        &self,
        model: &str,
        key_id: KeyId,
        outcome: &'static str,
        status: Option<u16>,
        began_us: u64,
    ) -> AttemptSpan {
        AttemptSpan {
            model: model.to_string(),
            key_id,
            outcome,
            status,
            began_us,
            ended_us: self.clock.monotonic_us(),
        }
    }

    /// Teaches the model's breaker an attempt's outcome; an opened or closed breaker
    /// goes in the attempts' notes.
    fn learn(&self, model: &str, outcome: &Outcome, now_ms: u64, attempts: &mut Attempts) {
        let event = self.resilience.breakers().record(model, outcome, now_ms);
        match event {
            Some(BreakerEvent::Opened { model, pause_ms }) => attempts.notes.push(format!(
                "breaker opened for {model} ({} s)",
                pause_ms.div_ceil(1000)
            )),
            Some(BreakerEvent::Closed { model }) => {
                attempts.notes.push(format!("breaker closed for {model}"))
            }
            None => {}
        }
    }

    fn record_failure(
        &self,
        attempts: &mut Attempts,
        key_id: KeyId,
        model: &str,
        outcome: &Outcome,
        last: &LastFailure,
    ) {
        let change = self
            .lock_pool()
            .apply(key_id, model, outcome, self.clock.now_ms());
        attempts.state_changes.extend(change);
        attempts.last_error_kind = outcome.error_kind();
        attempts.last_error_message = match last {
            LastFailure::Upstream { body, .. } => Some(self.scrubbed(&error_message(body))),
            LastFailure::Transport(TransportError::Connect(detail)) => Some(self.scrubbed(detail)),
            LastFailure::Transport(TransportError::Timeout) => Some("upstream timed out".into()),
            LastFailure::None => None,
        };
    }

    /// Turns the last failure into the answer the client gets.
    fn finish(
        &self,
        model: &str,
        attempts: &mut Attempts,
        last: LastFailure,
        verdict: Option<ProxyError>,
    ) -> Served<U::Response> {
        let served = match (verdict, last) {
            (Some(error), _) => Served::Failed(error),
            // Upstream judged the request itself (or the model is down): show its words.
            (
                None,
                LastFailure::Upstream {
                    status,
                    body,
                    content_type,
                    outcome,
                },
            ) if passes_through(&outcome) => Served::UpstreamError {
                status,
                body: Bytes::from(self.scrubbed(&String::from_utf8_lossy(&body))),
                content_type,
            },
            // Out of attempts on quota errors: waiting is the remedy, so say how long.
            (
                None,
                LastFailure::Upstream {
                    outcome: Outcome::RateLimited { .. },
                    ..
                },
            ) => {
                let now = self.clock.now_ms();
                let wait_ms = self.lock_pool().soonest_free_in(model, now).unwrap_or(0);
                Served::Failed(ProxyError::RateLimited {
                    model: model.to_string(),
                    retry_after_secs: retry_after_secs(wait_ms),
                })
            }
            (None, LastFailure::Upstream { .. }) => {
                let reason = attempts.last_error_message.clone().unwrap_or_default();
                Served::Failed(ProxyError::NoKeys(format!(
                    "every key tried was rejected (last: {reason})"
                )))
            }
            (None, LastFailure::Transport(TransportError::Timeout)) => {
                Served::Failed(ProxyError::UpstreamTimeout)
            }
            (None, LastFailure::Transport(TransportError::Connect(_))) => {
                Served::Failed(ProxyError::UpstreamUnreachable)
            }
            (None, LastFailure::None) => {
                Served::Failed(ProxyError::NoKeys("no upstream key is enabled and valid".into()))
            }
        };
        if let Served::Failed(error) = &served
            && (attempts.last_error_kind.is_none()
                || matches!(
                    error,
                    ProxyError::AllKeysCooling { .. }
                        | ProxyError::KeysAtLimit { .. }
                        | ProxyError::ModelUnavailable { .. }
                        | ProxyError::QueueFull { .. }
                ))
        {
            attempts.last_error_kind = Some(error.kind());
            attempts.last_error_message = Some(error.to_string());
        }
        served
    }

    fn scrubbed(&self, text: &str) -> String {
        let secrets = self.lock_pool().secrets();
        let known: Vec<&str> = secrets.iter().map(String::as_str).collect();
        scrub(text, &known)
    }
}

/// A 3xx other than 304 Not Modified (an answer to the client's own conditional
/// headers, passed on like any other).
fn is_redirect(status: u16) -> bool {
    (300..400).contains(&status) && status != 304
}

/// A timeout or broken connection: says nothing about the key.
fn transport_failure(error: TransportError, last: &mut LastFailure) -> Outcome {
    let outcome = Outcome::Transport {
        timeout: error == TransportError::Timeout,
    };
    *last = LastFailure::Transport(error);
    outcome
}

fn all_cooling(model: &str, retry_after_ms: u64) -> ProxyError {
    ProxyError::AllKeysCooling {
        model: model.to_string(),
        retry_after_secs: retry_after_secs(retry_after_ms),
    }
}

/// Whole seconds for `Retry-After`, rounded up and at least 1.
fn retry_after_secs(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}

/// Whether an answer means the model cannot serve now (overloaded, its breaker open,
/// or no key with room for it), so its fallback should.
fn falls_back<R>(served: &Served<R>) -> bool {
    match served {
        Served::UpstreamError { status, .. } => *status >= 500,
        Served::Failed(error) => matches!(
            error,
            ProxyError::ModelUnavailable { .. }
                | ProxyError::AllKeysCooling { .. }
                | ProxyError::RateLimited { .. }
                | ProxyError::KeysAtLimit { .. }
                | ProxyError::QueueFull { .. }
        ),
        Served::Upstream(_) => false,
    }
}

/// Why a model fell back, for the log.
fn served_reason<R>(served: &Served<R>) -> String {
    match served {
        Served::UpstreamError { status, .. } => format!("upstream {status}"),
        Served::Failed(error) => error.kind().to_string(),
        Served::Upstream(response) => format!("upstream {}", response.status),
    }
}

fn passes_through(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::ClientError { .. } | Outcome::ServerError { .. })
}

/// The `error.message` of a Gemini error body (object or one-element array form).
fn error_message(body: &[u8]) -> String {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let error = match &value {
        Value::Array(items) => items.first().and_then(|v| v.get("error")),
        other => other.get("error"),
    };
    match error.and_then(|e| e.get("message")).and_then(Value::as_str) {
        Some(message) => message.to_string(),
        None => String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
    }
}
