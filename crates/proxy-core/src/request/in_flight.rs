//! A prepared request while the engine serves it. A platform drops the request's
//! future when its client leaves (or its shutdown cuts it); this guard's drop then
//! hands the platform the record of what the attempts did (`Prepared::abandon`), so
//! no upstream call goes unlogged on any platform.

use crate::engine::Engine;
use crate::key_state::StateChange;
use crate::log::LogRecord;
use crate::platform::{Clock, Upstream};

use std::sync::Arc;

use super::admission::{Abandoned, Prepared};
use super::settle::{CacheFill, Settlement};

/// Where an abandoned request's record and learned key state go: the platform's
/// queues.
pub trait AbandonSink {
    /// Why a drop happened: the client left, unless the platform is shutting down.
    fn why(&self) -> Abandoned {
        Abandoned::ClientLeft
    }
    fn abandoned(&self, changes: Vec<StateChange>, record: LogRecord);
}

/// A [`Prepared`] request with the engine until it settles.
pub struct InFlight<S: AbandonSink> {
    prepared: Option<Prepared>,
    sink: S,
}

impl<S: AbandonSink> InFlight<S> {
    pub fn new(prepared: Prepared, sink: S) -> Self {
        Self {
            prepared: Some(prepared),
            sink,
        }
    }

    /// Runs the engine on the request and settles its verdict. Dropped before it
    /// returns, the guard logs the abandoned request instead.
    pub async fn serve<U: Upstream, C: Clock>(
        mut self,
        engine: &Engine<U, C>,
        seed: u64,
    ) -> Option<Settlement<U::Response>> {
        let cache = engine.resilience().cache();
        let prepared = self.prepared.as_mut()?;
        let key = prepared.cache_key(cache);
        let bypass = prepared.bypasses_cache();
        if let Some(key) = key.as_ref().filter(|_| !bypass)
            && let Some(hit) = cache.get(key, engine.clock().now_ms())
        {
            return Some(self.prepared.take()?.settle_cached(hit));
        }
        let (job, attempts) = prepared.engine_input();
        let served = engine.serve(job, seed, attempts).await;
        let caching = key.map(|key| CacheFill {
            cache: Arc::clone(cache),
            key,
            bypassed: bypass,
        });
        Some(self.prepared.take()?.settle_into(served, caching))
    }
}

impl<S: AbandonSink> Drop for InFlight<S> {
    fn drop(&mut self) {
        if let Some(prepared) = self.prepared.take() {
            let (changes, record) = prepared.abandon(self.sink.why());
            self.sink.abandoned(changes, record);
        }
    }
}
