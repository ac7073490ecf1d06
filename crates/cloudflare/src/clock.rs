//! Time in a Worker: `Date.now()` (std's `Instant` and `SystemTime` panic on wasm32)
//! and `setTimeout` through `worker::Delay`, which wakes the task that polled it last
//! ([`LatestWaker`]).

use std::time::Duration;

use async_trait::async_trait;
use proxy_core::platform::Clock;

use crate::latest_waker::LatestWaker;

#[derive(Clone, Copy, Debug, Default)]
pub struct WorkerClock;

/// Unix milliseconds now. Workers advance this clock only across IO, which is all a
/// proxy's latency is made of.
pub fn unix_ms() -> u64 {
    js_sys::Date::now() as u64
}

#[async_trait(?Send)]
impl Clock for WorkerClock {
    fn now_ms(&self) -> u64 {
        unix_ms()
    }

    async fn sleep_ms(&self, ms: u64) {
        LatestWaker::new(worker::Delay::from(Duration::from_millis(ms))).await;
    }
}
