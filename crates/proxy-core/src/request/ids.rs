//! Request ids: sortable by time, unique per process (or isolate), and a seed for the
//! request's retry jitter.

use std::sync::atomic::{AtomicU64, Ordering};

/// Hands out request ids: `<ms:13 hex>-<instance:8 hex>-<counter:8 hex>`.
#[derive(Debug)]
pub struct RequestIds {
    counter: AtomicU64,
    instance: u32,
}

impl RequestIds {
    /// `instance` tells processes (or isolates) sharing one log apart: any random-ish
    /// number the platform has (pid and start time, `Math.random`).
    pub fn new(instance: u32) -> Self {
        Self {
            counter: AtomicU64::new(0),
            instance,
        }
    }

    /// A fresh id for a request arriving at `now_ms`, and a seed for its jitter.
    pub fn next(&self, now_ms: u64) -> (String, u64) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = request_id(now_ms, n, self.instance);
        (id, now_ms ^ n.rotate_left(32) ^ u64::from(self.instance))
    }
}

/// A request id that sorts by time: milliseconds, then the instance, then a counter.
pub fn request_id(now_ms: u64, counter: u64, instance: u32) -> String {
    format!("{now_ms:013x}-{instance:08x}-{counter:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_never_repeat() {
        assert!(request_id(1_000, 5, 1) < request_id(1_001, 0, 0));
        assert!(request_id(1_000, 5, 1) < request_id(1_000, 6, 1));
        let ids = RequestIds::new(7);
        let (a, seed_a) = ids.next(1_000);
        let (b, seed_b) = ids.next(1_000);
        assert_ne!(a, b);
        assert_ne!(seed_a, seed_b);
        assert!(a.contains("-00000007-"), "{a}");
    }
}
