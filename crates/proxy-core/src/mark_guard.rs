//! The burst guard on invalid marks. A key marked invalid stays out of the pool until
//! an operator re-enables it, so marks are costly; many of them across the pool within
//! seconds are more likely a bug or an attack (a client finding some way to make
//! upstream answer "key invalid") than keys breaking together. Past more than half the
//! pool in a burst, marking stops for a while and the keys keep serving; the platform
//! shows the suspension (`/healthz`, its log). Envoy caps outlier ejection at a share
//! of the pool for the same reason.

use std::collections::VecDeque;

/// Marks within this window count as one burst.
pub const MARK_BURST_WINDOW_MS: u64 = 10_000;
/// Once tripped, marking stays suspended this long after the last refused mark.
pub const MARKING_HOLD_MS: u64 = 600_000;

/// Why invalid marks are not being taken, for status endpoints and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkingSuspended {
    pub since_ms: u64,
    /// Marking resumes then, unless more marks are refused before.
    pub until_ms: u64,
    /// Marks refused since `since_ms`.
    pub refused: u64,
    pub reason: String,
}

#[derive(Clone, Debug, Default)]
pub struct MarkGuard {
    /// When each mark of the current window was taken, oldest first.
    recent: VecDeque<u64>,
    suspended: Option<MarkingSuspended>,
}

impl MarkGuard {
    /// Whether one more key of a pool of `pool_size` enabled keys may be marked
    /// invalid at `now_ms`; records the mark if so, the refusal if not. One mark per
    /// window is always allowed, so a pool of one key can still lose its broken key.
    pub fn allow(&mut self, now_ms: u64, pool_size: usize) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|at| at.saturating_add(MARK_BURST_WINDOW_MS) <= now_ms)
        {
            self.recent.pop_front();
        }
        if let Some(suspended) = self.suspended.as_mut().filter(|s| now_ms < s.until_ms) {
            suspended.refused += 1;
            suspended.until_ms = now_ms + MARKING_HOLD_MS;
            return false;
        }
        let marks = self.recent.len() + 1;
        if marks > 1 && marks * 2 > pool_size {
            self.suspended = Some(MarkingSuspended {
                since_ms: now_ms,
                until_ms: now_ms + MARKING_HOLD_MS,
                refused: 1,
                reason: format!(
                    "{marks} of {pool_size} upstream keys would be marked invalid within {} s; \
                     marking suspended, the keys keep serving",
                    MARK_BURST_WINDOW_MS / 1000
                ),
            });
            return false;
        }
        self.recent.push_back(now_ms);
        true
    }

    /// The suspension in force at `now_ms`, if any.
    pub fn suspended(&self, now_ms: u64) -> Option<&MarkingSuspended> {
        self.suspended.as_ref().filter(|s| now_ms < s.until_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_up_to_half_the_pool_per_burst_then_holds() {
        let mut guard = MarkGuard::default();
        assert!(guard.allow(0, 4));
        assert!(guard.allow(1_000, 4), "two of four is half, not more");
        assert!(!guard.allow(2_000, 4), "a third within the window is refused");
        let suspended = guard.suspended(2_000).cloned().expect("suspended");
        assert_eq!((suspended.since_ms, suspended.refused), (2_000, 1));
        assert!(suspended.reason.contains("3 of 4"), "{}", suspended.reason);
        // Still refused after the window, while the hold lasts; each refusal extends it.
        assert!(!guard.allow(60_000, 4));
        let until = guard.suspended(60_000).map(|s| (s.until_ms, s.refused));
        assert_eq!(until, Some((60_000 + MARKING_HOLD_MS, 2)));
        // After a quiet hold, marking resumes.
        let later = 60_000 + MARKING_HOLD_MS;
        assert_eq!(guard.suspended(later), None);
        assert!(guard.allow(later, 4));
    }

    #[test]
    fn marks_spread_over_windows_are_not_a_burst() {
        let mut guard = MarkGuard::default();
        for i in 0..4 {
            assert!(guard.allow(i * MARK_BURST_WINDOW_MS, 4), "mark {i}");
        }
        assert_eq!(guard.suspended(4 * MARK_BURST_WINDOW_MS), None);
    }

    #[test]
    fn small_pools_keep_one_mark_per_window() {
        let mut one = MarkGuard::default();
        assert!(one.allow(0, 1), "a single broken key is still marked");
        let mut two = MarkGuard::default();
        assert!(two.allow(0, 2));
        assert!(!two.allow(1, 2));
    }
}
