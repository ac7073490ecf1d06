//! Governance: the limits an operator sets on proxy keys (rates, tokens, budgets) and
//! on upstream keys (Google's quotas, kept under instead of discovered by 429), and
//! what each request cost. One [`Governor`] per process (per isolate on the Worker),
//! shared by admission, the key pick and the end of each answer, so every platform
//! enforces the same numbers.
//!
//! Checks happen where their input is known: a key's expiry and route when it is
//! authorized, its model, rates and budget once the body named the model
//! ([`crate::request::Authorized::with_body`]), an upstream key's room when the engine
//! picks a key, and what an answer used when its body ends.

pub mod counters;
pub mod prices;
pub mod windows;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use crate::error::{ClientLimit, ProxyError};
use crate::keys::{KeyId, Limits, UpstreamKey};
use crate::log::LogRecord;
use crate::policy::{BudgetPeriod, ProxyKeyPolicy};
use crate::pool::{KeyPool, Pick};

use crate::alerts::{AlertEvent, budget_crossed};
use counters::{CounterKey, Counters, Full, Measure, Subject, SyncOp};
use prices::{PriceTable, TokenUsage, nanos_to_usd, usd_to_nanos};
use windows::{Window, retry_after_secs};

/// The process's counts and price table.
#[derive(Default)]
pub struct Governor {
    counters: Mutex<Counters>,
    prices: PriceTable,
    /// Models answers came back for that the price table does not know (cost 0).
    unpriced: Mutex<BTreeSet<String>>,
    /// Wakes the platform's sync task when shared counts changed.
    on_change: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// Some upstream key has limits: answers' tokens are counted per key and model.
    upstream_limits: AtomicBool,
}

impl std::fmt::Debug for Governor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governor").finish_non_exhaustive()
    }
}

fn key(subject: Subject, measure: Measure, window: Window) -> CounterKey {
    CounterKey {
        subject,
        measure,
        window,
    }
}

impl Governor {
    pub fn new(prices: PriceTable) -> Self {
        Self {
            prices,
            ..Self::default()
        }
    }

    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }

    /// A poisoned lock only means a panic elsewhere mid-update; counts stay usable.
    fn counters(&self) -> MutexGuard<'_, Counters> {
        self.counters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn changed(&self, counters: &Counters) {
        if counters.is_shared()
            && let Some(notify) = self.on_change.get()
        {
            notify();
        }
    }

    /// Checks a proxy key's budget and rates before its request goes upstream, and
    /// takes one request of its per-minute count. Budget first (403: waiting a minute
    /// will not help), then tokens per day, tokens per minute, requests per minute
    /// (429 with the time its window ends).
    pub fn admit(&self, proxy_key_id: i64, policy: &ProxyKeyPolicy, now_ms: u64) -> Result<(), ProxyError> {
        if !policy.has_limits() {
            return Ok(());
        }
        let subject = || Subject::Proxy(proxy_key_id);
        let over = |which, limit, full: Full| ProxyError::OverLimit {
            which,
            limit,
            retry_after_secs: retry_after_secs(now_ms, full.until_ms),
        };
        let mut counters = self.counters();
        if let Some(budget) = policy.budget_usd {
            let budget_nanos = usd_to_nanos(budget);
            let window = match policy.budget_period {
                BudgetPeriod::Day => Window::DayUtc,
                BudgetPeriod::Month => Window::MonthUtc,
            };
            let cost = key(subject(), Measure::Cost, window);
            counters
                .meter_room(&cost, budget_nanos, now_ms)
                .map_err(|_| ProxyError::BudgetSpent {
                    budget_nanos,
                    period: policy.budget_period,
                })?;
        }
        if let Some(limit) = policy.tokens_per_day {
            let tokens = key(subject(), Measure::Tokens, Window::DayUtc);
            (counters.meter_room(&tokens, limit, now_ms))
                .map_err(|f| over(ClientLimit::TokensPerDay, limit, f))?;
        }
        if let Some(limit) = policy.tpm {
            let tokens = key(subject(), Measure::Tokens, Window::Minute);
            (counters.meter_room(&tokens, limit, now_ms)).map_err(|f| over(ClientLimit::Tpm, limit, f))?;
        }
        if let Some(limit) = policy.rpm {
            let requests = key(subject(), Measure::Requests, Window::Minute);
            (counters.gate_room(&requests, limit, now_ms)).map_err(|f| over(ClientLimit::Rpm, limit, f))?;
            counters.take(&requests, now_ms);
            self.changed(&counters);
        }
        Ok(())
    }

    /// The engine's key pick: the pool's least recently used healthy key that also
    /// has room under its limits for `model`; its requests are counted as it is
    /// picked. When no key has room, says when the first one frees.
    pub fn pick(&self, pool: &mut KeyPool, model: &str, now_ms: u64, tried: &[KeyId]) -> Pick {
        // A request without a model (the model list) uses no model's quota.
        if model == "*" || !pool.has_limits() {
            return pool.pick(model, now_ms, tried, |_| None);
        }
        self.upstream_limits.store(true, Ordering::Relaxed);
        let mut counters = self.counters();
        let pick = pool.pick(model, now_ms, tried, |key| {
            full_until(&mut counters, key, model, now_ms)
        });
        if let Pick::Key { id, .. } = &pick
            && let Some(limits) = pool.limits_of(*id)
        {
            let limits = limits.for_model(model);
            for (limit, window) in [(limits.rpm, Window::Minute), (limits.rpd, Window::DayPacific)] {
                if limit.is_some() {
                    let requests = key(
                        Subject::Upstream(*id, model.to_string()),
                        Measure::Requests,
                        window,
                    );
                    counters.take(&requests, now_ms);
                }
            }
            self.changed(&counters);
        }
        pick
    }

    /// Prices what an answer used into its record (`cost_usd`; none for a model the
    /// table does not know, which is remembered for `/healthz`) and adds its tokens
    /// and cost to the counts of its proxy key (when `metered`: its policy counts
    /// tokens or cost) and of the upstream key that answered (when keys have limits).
    /// With the proxy key's `budget` (nano-dollars per period), a charge that takes its
    /// spend past 80% or 100% of it leaves an alert in the record.
    pub fn charge(
        &self,
        record: &mut LogRecord,
        metered: bool,
        budget: Option<(u64, BudgetPeriod)>,
        now_ms: u64,
    ) {
        let usage = TokenUsage {
            prompt: record.prompt_tokens.unwrap_or(0),
            candidates: record.candidates_tokens.unwrap_or(0),
            thoughts: record.thoughts_tokens.unwrap_or(0),
            cached: record.cached_tokens.unwrap_or(0),
        };
        let tokens = record
            .total_tokens
            .unwrap_or(usage.prompt + usage.candidates + usage.thoughts);
        if tokens == 0 {
            return;
        }
        fn served(record: &LogRecord) -> &str {
            record.serving_model().unwrap_or("").trim_start_matches("models/")
        }
        let cost = self.prices.cost_nanos(served(record), &usage);
        record.cost_usd = cost.map(nanos_to_usd);
        let model = served(record);
        if cost.is_none() {
            let mut unpriced = self.unpriced.lock().unwrap_or_else(|p| p.into_inner());
            if !unpriced.contains(model) {
                unpriced.insert(model.to_string());
            }
        }
        let upstream = self.upstream_limits.load(Ordering::Relaxed);
        if !metered && !upstream {
            return;
        }
        let mut counters = self.counters();
        let mut crossed = None;
        if let Some(id) = record.proxy_key_id.filter(|_| metered) {
            if let Some((budget_nanos, period)) = budget {
                let window = match period {
                    BudgetPeriod::Day => Window::DayUtc,
                    BudgetPeriod::Month => Window::MonthUtc,
                };
                let before = counters.total(&key(Subject::Proxy(id), Measure::Cost, window), now_ms);
                let after = before.saturating_add(cost.unwrap_or(0));
                if let Some(percent) = budget_crossed(before, after, budget_nanos) {
                    crossed = Some(AlertEvent::Budget {
                        proxy_key_id: id,
                        percent,
                        budget_usd: nanos_to_usd(budget_nanos),
                        period,
                    });
                }
            }
            for window in [Window::Minute, Window::DayUtc] {
                counters.add(&key(Subject::Proxy(id), Measure::Tokens, window), tokens, now_ms);
            }
            for window in [Window::DayUtc, Window::MonthUtc] {
                counters.add(
                    &key(Subject::Proxy(id), Measure::Cost, window),
                    cost.unwrap_or(0),
                    now_ms,
                );
            }
        }
        if let Some(id) = record.answered_key_id.filter(|_| upstream) {
            let subject = Subject::Upstream(id, model.to_string());
            counters.add(&key(subject, Measure::Tokens, Window::Minute), tokens, now_ms);
        }
        self.changed(&counters);
        drop(counters);
        record.alerts.extend(crossed);
    }

    /// Models answered that the price table has no price for.
    pub fn unpriced_models(&self) -> Vec<String> {
        let unpriced = self.unpriced.lock().unwrap_or_else(|p| p.into_inner());
        unpriced.iter().cloned().collect()
    }

    /// Shares counts through a store from now on (or stops: the store is gone);
    /// `on_change` (set once) wakes the task that syncs them.
    pub fn set_shared(&self, shared: bool) {
        self.counters().set_shared(shared);
    }

    pub fn is_shared(&self) -> bool {
        self.counters().is_shared()
    }

    /// Called when shared counts changed, to wake the sync task (set once).
    pub fn on_change(&self, notify: Box<dyn Fn() + Send + Sync>) {
        let _ = self.on_change.set(notify);
    }

    /// What to send the shared store now ([`Counters::sync_plan`]).
    pub fn sync_plan(&self, now_ms: u64) -> Vec<SyncOp> {
        self.counters().sync_plan(now_ms)
    }

    /// The store's totals for a plan's ops, in order. A plan whose answer was lost is
    /// not given back: the platform sends the same plan again, guarded so the store
    /// adds it once.
    pub fn sync_apply(&self, plan: &[SyncOp], totals: &[u64]) {
        let mut counters = self.counters();
        for (op, total) in plan.iter().zip(totals) {
            counters.sync_apply(op, *total);
        }
    }

    /// Forgets ended windows (the platform calls it now and then).
    pub fn prune(&self, now_ms: u64) {
        self.counters().prune(now_ms);
    }

    /// A count as this instance sees it (status and tests).
    pub fn total(&self, key: &CounterKey, now_ms: u64) -> u64 {
        self.counters().total(key, now_ms)
    }
}

/// When an upstream key's limits for `model` leave it no room: the moment the first
/// full window ends. `None`: it has room.
fn full_until(counters: &mut Counters, upstream: &UpstreamKey, model: &str, now_ms: u64) -> Option<u64> {
    let Limits { rpm, tpm, rpd } = upstream.limits.for_model(model);
    let subject = || Subject::Upstream(upstream.id, model.to_string());
    let mut until: Option<u64> = None;
    let mut full = |result: Result<(), Full>| {
        if let Err(full) = result {
            until = Some(until.map_or(full.until_ms, |u| u.max(full.until_ms)));
        }
    };
    if let Some(limit) = rpm {
        full(counters.gate_room(&key(subject(), Measure::Requests, Window::Minute), limit, now_ms));
    }
    if let Some(limit) = rpd {
        full(counters.gate_room(
            &key(subject(), Measure::Requests, Window::DayPacific),
            limit,
            now_ms,
        ));
    }
    if let Some(limit) = tpm {
        full(counters.meter_room(&key(subject(), Measure::Tokens, Window::Minute), limit, now_ms));
    }
    until
}

#[cfg(test)]
mod tests;
