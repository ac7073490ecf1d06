//! Reading a request body into memory: never more than the core's limit, never slower
//! than the minimum pace, and only while the process's budget for bodies held at once
//! has room (else 503 with `Retry-After`, not an out-of-memory death).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use proxy_core::ProxyError;
use proxy_core::defaults;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How fast a body must arrive: after `grace`, at least `min_bytes_per_sec` on
/// average (so a client trickling a few bytes cannot hold its connection and memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyPace {
    pub grace: Duration,
    pub min_bytes_per_sec: u64,
}

impl Default for BodyPace {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(defaults::BODY_TIMEOUT_SECS),
            min_bytes_per_sec: defaults::MIN_BODY_RATE_KIB * 1024,
        }
    }
}

impl BodyPace {
    /// When the next bytes are due, having received `received` since `started`.
    fn next_deadline(&self, started: Instant, received: usize) -> Instant {
        let rate = self.min_bytes_per_sec.max(1);
        let earned = Duration::from_secs_f64(received as f64 / rate as f64);
        started + self.grace + earned
    }

    fn too_slow(&self) -> ProxyError {
        ProxyError::BodyTooSlow {
            min_bytes_per_sec: self.min_bytes_per_sec,
            grace_secs: self.grace.as_secs(),
        }
    }
}

/// The process's memory for request bodies, shared by all requests, in KiB units
/// (a semaphore's permits).
#[derive(Debug)]
pub struct BodyBudget {
    kib: Arc<Semaphore>,
    total_bytes: usize,
}

/// A body's share of the budget, given back when dropped (with the body).
#[derive(Debug)]
pub struct BodyLease {
    permit: Option<OwnedSemaphorePermit>,
    reserved_bytes: usize,
}

impl BodyBudget {
    pub fn new(total_bytes: usize) -> Self {
        let kib = (total_bytes / 1024).clamp(1, Semaphore::MAX_PERMITS);
        Self {
            kib: Arc::new(Semaphore::new(kib)),
            total_bytes,
        }
    }

    /// Bytes of bodies in memory now (rounded to KiB).
    pub fn in_use_bytes(&self) -> usize {
        self.total_bytes
            .saturating_sub(self.kib.available_permits().saturating_mul(1024))
    }

    fn lease(&self) -> BodyLease {
        BodyLease {
            permit: None,
            reserved_bytes: 0,
        }
    }

    /// Grows `lease` to cover `bytes`, or refuses at once: waiting for room would
    /// hold the connection and the client's bytes anyway.
    fn reserve(&self, lease: &mut BodyLease, bytes: usize) -> Result<(), ProxyError> {
        if bytes <= lease.reserved_bytes {
            return Ok(());
        }
        if bytes > self.total_bytes {
            return Err(ProxyError::BodyTooLarge {
                limit_bytes: self.total_bytes,
            });
        }
        let more_kib = (bytes - lease.reserved_bytes).div_ceil(1024);
        let more = u32::try_from(more_kib)
            .ok()
            .and_then(|n| self.kib.clone().try_acquire_many_owned(n).ok())
            .ok_or(ProxyError::Busy {
                retry_after_secs: defaults::BODY_MEMORY_RETRY_SECS,
            })?;
        match lease.permit.as_mut() {
            Some(permit) => permit.merge(more),
            None => lease.permit = Some(more),
        }
        lease.reserved_bytes += more_kib * 1024;
        Ok(())
    }
}

/// The first reservation for a body of unknown length.
const CHUNKED_STEP: usize = 64 * 1024;

/// Reads `body` whole: at most `limit` bytes, at `pace`, inside `budget`. A declared
/// length is reserved and allocated once up front (no doubling copies, and memory
/// that goes back whole when the request ends).
pub async fn read_body(
    mut body: Body,
    limit: usize,
    declared: Option<u64>,
    pace: BodyPace,
    budget: &BodyBudget,
) -> Result<(Bytes, BodyLease), ProxyError> {
    let mut lease = budget.lease();
    let declared = declared
        .and_then(|n| usize::try_from(n).ok())
        .map(|n| n.min(limit));
    let mut buffer = match declared {
        Some(length) => {
            budget.reserve(&mut lease, length)?;
            BytesMut::with_capacity(length)
        }
        None => BytesMut::new(),
    };
    let started = Instant::now();
    loop {
        let deadline = pace.next_deadline(started, buffer.len());
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(pace.too_slow()),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(ProxyError::BadRequest("could not read the request body".into())),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else { continue };
        let length = buffer.len() + data.len();
        if length > limit {
            return Err(ProxyError::BodyTooLarge { limit_bytes: limit });
        }
        // Without a declared length, grow the lease ahead of the data in steps, so a
        // chunked body costs a few semaphore calls, not one per frame.
        if length > lease.reserved_bytes {
            let ahead = lease
                .reserved_bytes
                .saturating_mul(2)
                .max(CHUNKED_STEP)
                .min(limit)
                .min(budget.total_bytes);
            budget
                .reserve(&mut lease, length.max(ahead))
                .or_else(|_| budget.reserve(&mut lease, length))?;
        }
        buffer.extend_from_slice(&data);
    }
    Ok((buffer.freeze(), lease))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_returns_its_memory_when_dropped() {
        let budget = BodyBudget::new(1024 * 1024);
        let mut first = budget.lease();
        assert!(budget.reserve(&mut first, 700 * 1024).is_ok());
        let mut second = budget.lease();
        let refused = budget.reserve(&mut second, 400 * 1024);
        assert!(matches!(refused, Err(ProxyError::Busy { .. })), "{refused:?}");
        assert_eq!(budget.in_use_bytes(), 700 * 1024);
        drop(first);
        assert_eq!(budget.in_use_bytes(), 0);
        assert!(budget.reserve(&mut second, 400 * 1024).is_ok());
    }

    #[test]
    fn a_body_larger_than_the_whole_budget_is_too_large_not_busy() {
        let budget = BodyBudget::new(1024 * 1024);
        let mut lease = budget.lease();
        let refused = budget.reserve(&mut lease, 2 * 1024 * 1024);
        assert!(
            matches!(refused, Err(ProxyError::BodyTooLarge { .. })),
            "{refused:?}"
        );
    }

    #[test]
    fn the_pace_earns_time_per_byte_after_the_grace() {
        let pace = BodyPace {
            grace: Duration::from_secs(10),
            min_bytes_per_sec: 1000,
        };
        let start = Instant::now();
        assert_eq!(pace.next_deadline(start, 0), start + Duration::from_secs(10));
        assert_eq!(pace.next_deadline(start, 5000), start + Duration::from_secs(15));
    }
}
