//! Settlement: what the engine's verdict becomes for the client and the log.

use std::sync::Arc;

use bytes::Bytes;

use crate::engine::Served;
use crate::key_state::StateChange;
use crate::log::LogRecord;
use crate::resilience::cache::{CacheKey, CachedAnswer, ResponseCache};

use crate::error::ErrorShape;

use super::admission::Prepared;
use super::keep_alive::{KEEP_ALIVE_BLANK_LINE, KEEP_ALIVE_COMMENT};
use super::observe::BodyObserver;
use super::reply::{Refusal, Reply};

/// The engine's verdict, settled.
#[derive(Debug)]
pub struct Settlement<R> {
    /// Key-state changes the attempts taught; queue them for the store.
    pub state_changes: Vec<StateChange>,
    /// Headers the proxy adds to the answer, whichever it is
    /// ([`SERVED_MODEL_HEADER`]).
    pub headers: Vec<(&'static str, String)>,
    /// What the resilience rules did, for the platform's own log.
    pub notes: Vec<String>,
    pub answer: Answer<R>,
}

impl<R> Settlement<R> {
    /// Records the proxy's own time until its answer goes out: `elapsed_us` since the
    /// request's head arrived, not counting the body's upload (the client's time),
    /// less what the attempts waited on (upstream, backoff, the queue).
    pub fn set_overhead(&mut self, elapsed_us: u64) {
        let record = match &mut self.answer {
            Answer::Stream { observer, .. } => observer.record_mut(),
            Answer::Reply { record, .. } => Some(&mut **record),
        };
        if let Some(record) = record {
            record.overhead_us = Some(elapsed_us.saturating_sub(record.waiting_us));
        }
    }
}

/// The model that served the request (the requested one, or its fallback).
pub const SERVED_MODEL_HEADER: &str = "x-gemini-proxy-model";
/// Whether the response cache answered: `hit` or `miss` (on cached operations, with the
/// cache on).
pub const CACHE_HEADER: &str = "x-gemini-proxy-cache";

/// Where a cacheable answer goes once its body ends whole.
#[derive(Debug)]
pub struct CacheFill {
    pub cache: Arc<ResponseCache>,
    pub key: CacheKey,
    /// The client sent `Cache-Control: no-cache`: not read, but refreshed.
    pub bypassed: bool,
}

#[derive(Debug)]
pub enum Answer<R> {
    /// A 2xx from upstream: stream `response`'s body through `observer`, which hands
    /// back the record to log when the body ends.
    Stream {
        status: u16,
        response: R,
        observer: Box<BodyObserver>,
    },
    /// A complete answer; log `record` once it is sent.
    Reply { reply: Reply, record: Box<LogRecord> },
}

impl Prepared {
    /// Records what the attempts did and turns the engine's verdict into the answer.
    pub fn settle<R>(self, served: Served<R>) -> Settlement<R> {
        self.settle_into(served, None)
    }

    /// An answer from the cache: nothing went upstream, no tokens, no cost.
    pub fn settle_cached<R>(self, hit: CachedAnswer) -> Settlement<R> {
        let mut record = self.record;
        record.status = 200;
        record.cache = Some("hit".into());
        record.total_tokens = Some(0);
        record.cost_usd = Some(0.0);
        let mut headers = served_model_header(&record);
        headers.push((CACHE_HEADER, "hit".into()));
        let mut reply = Reply::json(200, hit.body, &record.id);
        reply.content_type = hit.content_type;
        Settlement {
            state_changes: Vec::new(),
            headers,
            notes: Vec::new(),
            answer: Answer::Reply {
                reply,
                record: Box::new(record),
            },
        }
    }

    /// [`Prepared::settle`], keeping a whole 200 answer in the cache (`caching`).
    pub fn settle_into<R>(self, served: Served<R>, caching: Option<CacheFill>) -> Settlement<R> {
        let Prepared {
            mut record,
            shape,
            format,
            strip_usage,
            keep_alive_ms,
            attempts,
            governor,
            metered,
            policy,
            ..
        } = self;
        let budget = policy
            .budget_usd
            .map(|usd| (crate::governance::prices::usd_to_nanos(usd), policy.budget_period));
        let state_changes = record.apply_attempts(attempts);
        let mut headers = served_model_header(&record);
        if let Some(fill) = &caching {
            headers.push((CACHE_HEADER, "miss".into()));
            record.cache = Some(if fill.bypassed { "bypass" } else { "miss" }.into());
        }
        let notes = record.notes.clone();
        let answer = match served {
            Served::Upstream(response) => {
                record.answered(response.status);
                let mut observer = BodyObserver::for_stream(record, format, response.content_type.as_deref());
                observer.charge_to(governor, metered, budget);
                if strip_usage {
                    observer.strip_usage_chunk();
                }
                let keep_alive = match shape {
                    ErrorShape::OpenAi => KEEP_ALIVE_COMMENT,
                    ErrorShape::Gemini => KEEP_ALIVE_BLANK_LINE,
                };
                observer.keep_alive_every(keep_alive_ms, keep_alive);
                if let Some(fill) = caching {
                    observer.fill_cache(fill, response.content_type.as_deref());
                }
                Answer::Stream {
                    status: response.status,
                    response: response.inner,
                    observer: Box::new(observer),
                }
            }
            Served::UpstreamError {
                status,
                body,
                content_type,
            } => {
                record.status = status;
                let reply = upstream_error(status, body, content_type, &record.id);
                Answer::Reply {
                    reply,
                    record: Box::new(record),
                }
            }
            Served::Failed(error) => {
                let Refusal { reply, record } = Refusal::new(record, shape, &error);
                Answer::Reply { reply, record }
            }
        };
        Settlement {
            state_changes,
            headers,
            notes,
            answer,
        }
    }
}

fn served_model_header(record: &LogRecord) -> Vec<(&'static str, String)> {
    record
        .serving_model()
        .filter(|model| *model != "*")
        .map(|model| (SERVED_MODEL_HEADER, model.to_string()))
        .into_iter()
        .collect()
}

/// Upstream's final error as the client gets it: its own status, body (already
/// scrubbed of keys) and content type.
fn upstream_error(status: u16, body: Bytes, content_type: Option<String>, request_id: &str) -> Reply {
    let mut reply = Reply::json(status, body, request_id);
    if let Some(content_type) = content_type {
        reply.content_type = content_type;
    }
    reply
}
