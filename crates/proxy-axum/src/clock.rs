//! Wall-clock time and sleeping on tokio.

use std::sync::LazyLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use proxy_core::platform::Clock;

#[derive(Clone, Copy, Debug, Default)]
pub struct TokioClock;

/// Unix milliseconds now; a clock set before 1970 reads as 0 rather than panicking.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Microseconds on a monotonic clock (since the first call), for durations.
pub fn monotonic_us() -> u64 {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    START.elapsed().as_micros() as u64
}

#[async_trait]
impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        unix_ms()
    }

    fn monotonic_us(&self) -> u64 {
        monotonic_us()
    }

    async fn sleep_ms(&self, ms: u64) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// 16 hex digits no other call returns (in this process or, but for a 2^-64 chance,
/// another): std's per-process random hash keys, salted with a counter.
pub fn unique_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}
