//! What an isolate keeps between requests: the engine with its key pool, the key
//! cache, the log and key-state queues. Built on the isolate's first request from the
//! Worker's vars and secrets, then shared by every request the isolate serves.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use proxy_core::Engine;
use proxy_core::defaults;
use proxy_core::governance::Governor;
use proxy_core::health::{Health, HealthInput, LimitSharing, PlatformCounts};
use proxy_core::log::LogRecord;
use proxy_core::pool::{KeyPool, StateChange};
use proxy_core::request::{RefusalSampler, RequestIds};
use wasm_bindgen::JsValue;
use worker::Env;

use crate::batch::BatchQueue;
use crate::clock::{WorkerClock, unix_ms};
use crate::config::WorkerConfig;
use crate::pool_cache::KeyCache;
use crate::stores::stores;
use crate::upstream::WorkerUpstream;

pub struct WorkerState {
    pub engine: Engine<WorkerUpstream, WorkerClock>,
    pub keys: Rc<KeyCache>,
    pub logs: Rc<BatchQueue<LogRecord, WorkerClock>>,
    pub state_changes: Rc<BatchQueue<StateChange, WorkerClock>>,
    pub config: WorkerConfig,
    pub ids: RequestIds,
    pub refusals: RefusalSampler,
}

thread_local! {
    static STATE: RefCell<Option<Rc<WorkerState>>> = const { RefCell::new(None) };
}

/// The isolate's state, built on first use. A configuration mistake is returned (and
/// retried on the next request, so fixing a secret needs no redeploy of the code).
pub fn isolate_state(env: &Env) -> Result<Rc<WorkerState>, String> {
    if let Some(state) = STATE.with(|s| s.borrow().clone()) {
        return Ok(state);
    }
    let config = WorkerConfig::from_lookup(|name| lookup(env, name)).map_err(|e| e.to_string())?;
    let state = Rc::new(WorkerState::new(config)?);
    STATE.with(|s| *s.borrow_mut() = Some(state.clone()));
    Ok(state)
}

/// A var or secret as text; vars written as numbers or booleans in wrangler.toml too.
fn lookup(env: &Env, name: &str) -> Option<String> {
    let value = js_sys::Reflect::get(env, &JsValue::from_str(name)).ok()?;
    if let Some(text) = value.as_string() {
        return Some(text);
    }
    if let Some(number) = value.as_f64() {
        return Some(format!("{number}"));
    }
    value.as_bool().map(|b| b.to_string())
}

impl WorkerState {
    fn new(config: WorkerConfig) -> Result<Self, String> {
        let stores = stores(&config).map_err(|e| e.to_string())?;
        let pool = Arc::new(Mutex::new(KeyPool::default()));
        let upstream = WorkerUpstream::new(&config.upstream_base_url);
        // Limits count per isolate: nothing is shared between isolates (README).
        let governor = Arc::new(Governor::new(config.prices.clone()));
        let engine =
            Engine::new(pool.clone(), upstream, WorkerClock, config.engine.clone()).with_governor(governor);
        let keys = Rc::new(KeyCache::new(stores.keys.clone(), pool, stores.refresh_ms));
        let sink = stores.logs;
        let logs = BatchQueue::new(
            "request-log",
            defaults::LOG_QUEUE,
            defaults::LOG_BATCH,
            WorkerClock,
            Box::new(move |batch: Vec<LogRecord>| {
                let sink = sink.clone();
                Box::pin(async move {
                    let result = sink.write_logs(&batch).await;
                    (batch, result)
                })
            }),
        );
        let store = stores.keys;
        let state_changes = BatchQueue::new(
            "key-state",
            defaults::STATE_QUEUE,
            defaults::STATE_BATCH,
            WorkerClock,
            Box::new(move |batch: Vec<StateChange>| {
                let store = store.clone();
                Box::pin(async move {
                    let result = store.save_state(&batch).await;
                    (batch, result)
                })
            }),
        );
        Ok(Self {
            engine,
            keys,
            logs,
            state_changes,
            config,
            ids: RequestIds::new((js_sys::Math::random() * f64::from(u32::MAX)) as u32),
            refusals: RefusalSampler::default(),
        })
    }

    /// `GET /healthz`: the core's answer, with this isolate's counts.
    pub fn health(&self) -> Health {
        let now = unix_ms();
        let counts = PlatformCounts {
            proxy_keys: self.keys.proxy_keys().len(),
            dropped_log_records: self.logs.dropped(),
            store_unreachable: self.keys.is_failing(),
            refusals: self.refusals.counts(),
            limits: LimitSharing::Local,
            unpriced_models: self.engine.governor().unpriced_models(),
        };
        Health::of(HealthInput::gather(&self.engine, counts, now), now)
    }
}
