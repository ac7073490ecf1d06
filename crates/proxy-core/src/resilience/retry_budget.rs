//! The retry budget (Envoy's): retries after a model-wide failure (5xx, timeout,
//! broken connection) in flight at once are bounded by a share of the requests in
//! flight, with a small floor, so an outage of Google is not multiplied by
//! `--max-attempts`. A retry holds its place through its backoff and its attempt.
//! Moving on after a key's own failure (429, invalid key) is not a retry here: that
//! key is out of the pick for good, so rotation cannot multiply anything, and it is
//! the proxy's first job.

use std::sync::{Mutex, MutexGuard};

use crate::defaults;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryBudgetConfig {
    /// Retries in flight as a percentage of requests in flight; 100 or more is no bound.
    pub percent: u32,
    /// Retries always allowed in flight, however few requests there are.
    pub floor: u32,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        Self {
            percent: defaults::RETRY_BUDGET_PERCENT,
            floor: defaults::RETRY_BUDGET_FLOOR,
        }
    }
}

#[derive(Debug, Default)]
struct InFlight {
    requests: u64,
    retries: u64,
}

/// The process's requests and retries in flight.
#[derive(Debug, Default)]
pub struct RetryBudget {
    config: RetryBudgetConfig,
    in_flight: Mutex<InFlight>,
}

/// A request in flight; counted until dropped.
#[must_use]
pub struct RequestTicket<'a>(&'a RetryBudget);

/// A retry in flight; counted until dropped.
#[must_use]
pub struct RetryTicket<'a>(&'a RetryBudget);

impl RetryBudget {
    pub fn new(config: RetryBudgetConfig) -> Self {
        Self {
            config,
            in_flight: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, InFlight> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a request from when it starts its attempts until it is answered.
    pub fn request(&self) -> RequestTicket<'_> {
        self.lock().requests += 1;
        RequestTicket(self)
    }

    /// A retry's place, if the budget has one.
    pub fn retry(&self) -> Option<RetryTicket<'_>> {
        let mut in_flight = self.lock();
        let share = in_flight.requests.saturating_mul(u64::from(self.config.percent)) / 100;
        let allowed = share.max(u64::from(self.config.floor));
        if self.config.percent < 100 && in_flight.retries >= allowed {
            return None;
        }
        in_flight.retries += 1;
        Some(RetryTicket(self))
    }

    /// Requests and retries in flight now.
    pub fn in_flight(&self) -> (u64, u64) {
        let in_flight = self.lock();
        (in_flight.requests, in_flight.retries)
    }
}

impl Drop for RequestTicket<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.0.lock();
        in_flight.requests = in_flight.requests.saturating_sub(1);
    }
}

impl Drop for RetryTicket<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.0.lock();
        in_flight.retries = in_flight.retries.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_of_requests_in_flight_with_a_floor() {
        let budget = RetryBudget::new(RetryBudgetConfig {
            percent: 20,
            floor: 3,
        });
        let requests: Vec<_> = (0..20).map(|_| budget.request()).collect();
        let retries: Vec<_> = (0..10).filter_map(|_| budget.retry()).collect();
        assert_eq!(retries.len(), 4, "20% of 20");
        assert_eq!(budget.in_flight(), (20, 4));
        drop(retries);
        drop(requests);
        let _one = budget.request();
        let few: Vec<_> = (0..10).filter_map(|_| budget.retry()).collect();
        assert_eq!(few.len(), 3, "the floor");
        drop(few);
        assert_eq!(budget.in_flight(), (1, 0), "tickets give their place back");
    }

    #[test]
    fn a_hundred_percent_is_no_bound() {
        let budget = RetryBudget::new(RetryBudgetConfig {
            percent: 100,
            floor: 0,
        });
        let retries: Vec<_> = (0..50).filter_map(|_| budget.retry()).collect();
        assert_eq!(retries.len(), 50);
    }
}
