//! Streaming time-to-first-byte: sequential `streamGenerateContent?alt=sse`
//! requests, timed from just before sending until the first non-empty body
//! chunk arrives (response headers alone do not count: a proxy that sends
//! headers early but buffers the SSE events would otherwise look fine).
//!
//! Each target is measured in blocks, in target order and then reversed (for
//! two: direct, proxy, proxy, direct), each block on one keep-alive connection
//! after its own warmup. Not request-by-request alternation: the proxy's
//! trailing work after each answer (request-log write) would then land on the
//! next target's request and inflate it, flattering the proxy.

use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::BodyExt;

use crate::client::{Call, Conn, Target, drain};

#[derive(Debug, Clone, Copy)]
pub struct TtfbSpec {
    pub warmup: usize,
    pub requests: usize,
    pub timeout: Duration,
}

#[derive(Debug, Default)]
pub struct TtfbResult {
    pub samples_us: Vec<u32>,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// Returns one result per target, in the order given.
pub async fn run(targets: &[&Target], spec: TtfbSpec) -> Vec<TtfbResult> {
    let mut results: Vec<TtfbResult> = targets.iter().map(|_| TtfbResult::default()).collect();
    // Two halves: forward order, then reversed (ABBA).
    let halves = [spec.requests.div_ceil(2), spec.requests / 2];
    for (round, &count) in halves.iter().enumerate() {
        let mut order: Vec<usize> = (0..targets.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            if let (Some(target), Some(result)) = (targets.get(i), results.get_mut(i)) {
                block(target, spec.warmup, count, spec.timeout, result).await;
            }
        }
    }
    results
}

/// `warmup` unrecorded then `count` recorded sequential requests.
async fn block(target: &Target, warmup: usize, count: usize, timeout: Duration, result: &mut TtfbResult) {
    let mut conn = None;
    for i in 0..warmup + count {
        let measured = i >= warmup;
        let error = match tokio::time::timeout(timeout, one_stream(&mut conn, target)).await {
            Ok(Ok(ttfb)) => {
                if measured {
                    let us = ttfb.as_micros();
                    result.samples_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                }
                None
            }
            Ok(Err(e)) => Some(format!("{e:#}")),
            Err(_) => Some(format!("timeout after {timeout:?}")),
        };
        if let Some(msg) = error {
            conn = None;
            if measured {
                result.errors += 1;
                result.first_error.get_or_insert(msg);
            }
        }
    }
}

/// One streaming request; returns the time to the first body byte. The rest
/// of the stream is read (untimed) so the connection can be reused.
async fn one_stream(conn: &mut Option<Conn>, target: &Target) -> anyhow::Result<Duration> {
    if conn.as_ref().is_none_or(Conn::is_closed) {
        // Connect outside the timed section: TTFB is about the request path.
        *conn = Some(Conn::open(target).await?);
    }
    let Some(c) = conn.as_mut() else {
        anyhow::bail!("no connection");
    };
    let started = Instant::now();
    let resp = c.send(target, Call::Stream).await?;
    let mut body = resp.into_body();
    let ttfb = loop {
        let frame = body
            .frame()
            .await
            .context("stream ended before any data")?
            .context("read stream")?;
        if frame.data_ref().is_some_and(|d| !d.is_empty()) {
            break started.elapsed();
        }
    };
    drain(&mut body).await?;
    Ok(ttfb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testserver;
    use http::StatusCode;

    #[tokio::test]
    async fn alternates_and_records_per_target() -> anyhow::Result<()> {
        let ok = Target::new("direct", testserver::start(StatusCode::OK).await?, "k")?;
        let bad = Target::new("proxy", testserver::start(StatusCode::BAD_GATEWAY).await?, "k")?;
        let spec = TtfbSpec {
            warmup: 2,
            requests: 5,
            timeout: Duration::from_secs(5),
        };
        let r = run(&[&ok, &bad], spec).await;
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].samples_us.len(), 5);
        assert_eq!(r[0].errors, 0, "{:?}", r[0].first_error);
        assert!(r[1].samples_us.is_empty());
        assert_eq!(r[1].errors, 5, "warmup errors are not counted");
        // Odd counts split 3 + 2 across the ABBA halves, none lost.
        Ok(())
    }

    #[tokio::test]
    async fn zero_requests_gives_empty_results() -> anyhow::Result<()> {
        let ok = Target::new("direct", testserver::start(StatusCode::OK).await?, "k")?;
        let spec = TtfbSpec {
            warmup: 0,
            requests: 0,
            timeout: Duration::from_secs(5),
        };
        let r = run(&[&ok], spec).await;
        assert_eq!(r.len(), 1);
        assert!(r[0].samples_us.is_empty());
        assert_eq!(r[0].errors, 0);
        Ok(())
    }
}
