//! What an isolate keeps between requests: the engine with its key pool, the key
//! cache, the log and key-state queues. Built on the isolate's first request from the
//! Worker's vars and secrets, then shared by every request the isolate serves.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use proxy_core::Engine;
use proxy_core::log::{LogRecord, request_id};
use proxy_core::pool::{KeyPool, StateChange};
use serde_json::{Value, json};
use wasm_bindgen::JsValue;
use worker::Env;

use crate::batch::BatchQueue;
use crate::clock::{WorkerClock, unix_ms};
use crate::config::WorkerConfig;
use crate::pool_cache::KeyCache;
use crate::stores::stores;
use crate::upstream::WorkerUpstream;

/// Log records that may wait for the store; beyond it they are dropped and counted.
const LOG_QUEUE: usize = 10_000;
const LOG_BATCH: usize = 200;
const STATE_QUEUE: usize = 10_000;
const STATE_BATCH: usize = 100;

pub struct WorkerState {
    pub engine: Engine<WorkerUpstream, WorkerClock>,
    pub keys: Rc<KeyCache>,
    pub logs: Rc<BatchQueue<LogRecord, WorkerClock>>,
    pub state_changes: Rc<BatchQueue<StateChange, WorkerClock>>,
    pub config: WorkerConfig,
    counter: Cell<u64>,
    instance: u32,
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
        let engine = Engine::new(pool.clone(), upstream, WorkerClock, config.engine.clone());
        let keys = Rc::new(KeyCache::new(stores.keys.clone(), pool, stores.refresh_ms));
        let sink = stores.logs;
        let logs = BatchQueue::new(
            "request-log",
            LOG_QUEUE,
            LOG_BATCH,
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
            STATE_QUEUE,
            STATE_BATCH,
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
            counter: Cell::new(0),
            instance: (js_sys::Math::random() * f64::from(u32::MAX)) as u32,
        })
    }

    /// A fresh request id and a seed for its retry jitter.
    pub fn next_request_id(&self, now_ms: u64) -> (String, u64) {
        let n = self.counter.get();
        self.counter.set(n + 1);
        let id = request_id(now_ms, n, self.instance);
        (id, now_ms ^ n.rotate_left(32) ^ u64::from(self.instance))
    }

    /// `GET /healthz`, in the native binary's shape (counts are this isolate's).
    pub fn health(&self) -> Value {
        let (keys, available) = {
            let pool = self.engine.pool().lock().unwrap_or_else(|p| p.into_inner());
            (pool.len(), pool.available("*", unix_ms()))
        };
        json!({
            "status": "ok",
            "upstream_keys": keys,
            "upstream_keys_available": available,
            "proxy_keys": self.keys.proxy_keys().len(),
            "dropped_log_records": self.logs.dropped(),
        })
    }
}
