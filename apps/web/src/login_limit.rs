//! Slows password guessing: each client address gets a few failed logins per window,
//! then is refused until the window ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

pub const MAX_FAILURES: u32 = 5;
pub const WINDOW_MS: u64 = 5 * 60 * 1000;

#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<IpAddr, (u32, u64)>>,
}

impl LoginLimiter {
    /// `Err(ms to wait)` when this address used up its attempts.
    pub fn check(&self, ip: IpAddr, now_ms: u64) -> Result<(), u64> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&ip) {
            Some((count, start)) if *count >= MAX_FAILURES && now_ms < start + WINDOW_MS => {
                Err(start + WINDOW_MS - now_ms)
            }
            _ => Ok(()),
        }
    }

    pub fn failed(&self, ip: IpAddr, now_ms: u64) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (_, start)| now_ms < *start + WINDOW_MS);
        let entry = map.entry(ip).or_insert((0, now_ms));
        entry.0 += 1;
    }

    pub fn succeeded(&self, ip: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_too_many_failures_until_the_window_ends() {
        let limiter = LoginLimiter::default();
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        for _ in 0..MAX_FAILURES {
            assert!(limiter.check(ip, 10).is_ok());
            limiter.failed(ip, 10);
        }
        assert_eq!(limiter.check(ip, 10), Err(WINDOW_MS));
        assert!(limiter.check(ip, 10 + WINDOW_MS).is_ok());
        limiter.succeeded(ip);
        assert!(limiter.check(ip, 20).is_ok());
    }
}
