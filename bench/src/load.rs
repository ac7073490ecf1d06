//! Closed-loop load generator: N workers, each with its own keep-alive
//! connection, each sending the next request as soon as the previous answer
//! was fully read. Concurrency N therefore means exactly N in-flight requests.
//!
//! Phases: all workers connect, then start together (so connection setup is
//! never measured), run a warmup that is not recorded, then a measured window
//! bounded either by time or by a total request count.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Barrier, watch};
use tokio::task::JoinSet;

use crate::client::{Call, Conn, Target, drain};
use crate::procs;

/// How long the measured window lasts.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    Time(Duration),
    Requests(u64),
}

#[derive(Debug, Clone, Copy)]
pub struct LoadSpec {
    pub concurrency: usize,
    pub warmup: Duration,
    pub budget: Budget,
    /// Per request (connect included); a hung server becomes an error, not a
    /// hung benchmark.
    pub timeout: Duration,
}

/// Raw outcome of one run; several rounds can be merged before summarising.
#[derive(Debug, Default)]
pub struct LoadResult {
    pub latencies_us: Vec<u32>,
    pub errors: u64,
    /// Measured window: from the end of warmup to the last measured answer.
    pub elapsed: Duration,
    pub first_error: Option<String>,
    /// CPU seconds the measured process used in the measured window (when asked).
    pub cpu_secs: Option<f64>,
    /// CPU seconds the mock used in the same window (when asked).
    pub mock_cpu_secs: Option<f64>,
}

/// Processes whose CPU a round measures over its measured window.
#[derive(Debug, Clone, Copy, Default)]
pub struct Watch {
    /// The target's own process (the mock itself for the direct path).
    pub target: Option<u32>,
    pub mock: Option<u32>,
}

fn add_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

/// CPU used between two readings; `None` when either is missing (process gone).
fn cpu_delta(start: Option<f64>, end: Option<f64>) -> Option<f64> {
    Some((end? - start?).max(0.0))
}

impl LoadResult {
    pub fn merge(&mut self, other: LoadResult) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.cpu_secs = add_opt(self.cpu_secs, other.cpu_secs);
        self.mock_cpu_secs = add_opt(self.mock_cpu_secs, other.mock_cpu_secs);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Shared start signal: set once every worker has connected.
#[derive(Debug, Clone, Copy)]
struct Phase {
    measure_start: Instant,
    /// Only for `Budget::Time`.
    measure_end: Option<Instant>,
}

/// Runs one round of one load level against one target. The CPU the watched
/// processes use from the end of warmup until the last answer is measured too
/// (`/proc/PID/stat`).
pub async fn run(target: &Target, spec: LoadSpec, watch: Watch) -> LoadResult {
    let concurrency = spec.concurrency.max(1);
    // +1: the coordinator (this function) also waits, so it knows when every
    // worker has its connection.
    let connected = Arc::new(Barrier::new(concurrency + 1));
    let (phase_tx, phase_rx) = watch::channel::<Option<Phase>>(None);
    let remaining = Arc::new(AtomicU64::new(match spec.budget {
        Budget::Requests(n) => n,
        Budget::Time(_) => u64::MAX,
    }));

    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let target = target.clone();
        let connected = connected.clone();
        let phase_rx = phase_rx.clone();
        let remaining = remaining.clone();
        workers.spawn(worker(target, spec, connected, phase_rx, remaining));
    }

    connected.wait().await;
    let warmup_start = Instant::now();
    let measure_start = warmup_start + spec.warmup;
    let measure_end = match spec.budget {
        Budget::Time(d) => Some(measure_start + d),
        Budget::Requests(_) => None,
    };
    // Receivers are alive (workers hold them), so send cannot fail; if it
    // did, workers would see the sender gone and stop.
    let _ = phase_tx.send(Some(Phase {
        measure_start,
        measure_end,
    }));

    let read = |pid: Option<u32>| pid.and_then(procs::cpu_secs);
    let cpu_at_start = if watch.target.is_some() || watch.mock.is_some() {
        tokio::time::sleep_until(measure_start.into()).await;
        (read(watch.target), read(watch.mock))
    } else {
        (None, None)
    };
    let mut total = LoadResult::default();
    let mut last_finish = measure_start;
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(w) => {
                if let Some(t) = w.last_finish {
                    last_finish = last_finish.max(t);
                }
                total.merge(w.result);
            }
            Err(e) => {
                total.errors += 1;
                total
                    .first_error
                    .get_or_insert_with(|| format!("worker task failed: {e}"));
            }
        }
    }
    total.elapsed = last_finish.saturating_duration_since(measure_start);
    total.cpu_secs = cpu_delta(cpu_at_start.0, read(watch.target));
    total.mock_cpu_secs = cpu_delta(cpu_at_start.1, read(watch.mock));
    total
}

struct WorkerOutcome {
    result: LoadResult,
    last_finish: Option<Instant>,
}

async fn worker(
    target: Target,
    spec: LoadSpec,
    connected: Arc<Barrier>,
    mut phase_rx: watch::Receiver<Option<Phase>>,
    remaining: Arc<AtomicU64>,
) -> WorkerOutcome {
    // A failed initial connect is retried (and counted) inside the loop; we
    // must still reach the barrier or the coordinator would wait forever.
    let mut conn = tokio::time::timeout(spec.timeout, Conn::open(&target))
        .await
        .ok()
        .and_then(Result::ok);
    connected.wait().await;

    let mut out = WorkerOutcome {
        result: LoadResult::default(),
        last_finish: None,
    };
    let phase = match phase_rx.wait_for(Option::is_some).await {
        Ok(p) => match *p {
            Some(p) => p,
            None => return out,
        },
        Err(_) => return out,
    };
    if let Budget::Requests(n) = spec.budget {
        out.result
            .latencies_us
            .reserve(n as usize / spec.concurrency.max(1) + 1);
    }

    loop {
        let started = Instant::now();
        let measured = started >= phase.measure_start;
        if measured && !take_budget(&phase, &remaining, started) {
            break;
        }
        let outcome = tokio::time::timeout(spec.timeout, one_request(&mut conn, &target)).await;
        let finished = Instant::now();
        let error = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("{e:#}")),
            Err(_) => Some(format!("timeout after {:?}", spec.timeout)),
        };
        if let Some(msg) = &error {
            // The connection state is unknown after a failure: start over.
            conn = None;
            if measured {
                out.result.errors += 1;
                out.result.first_error.get_or_insert_with(|| msg.clone());
            }
        } else if measured {
            let us = finished.duration_since(started).as_micros();
            out.result
                .latencies_us
                .push(u32::try_from(us).unwrap_or(u32::MAX));
        }
        if measured {
            out.last_finish = Some(finished);
        }
        if error.is_some() {
            // Avoid a hot loop of refused connects eating the CPU the
            // servers need.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    out
}

/// Whether this worker may start another measured request.
fn take_budget(phase: &Phase, remaining: &AtomicU64, now: Instant) -> bool {
    match phase.measure_end {
        Some(end) => now < end,
        None => remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| r.checked_sub(1))
            .is_ok(),
    }
}

/// One generateContent request on the worker's connection, reconnecting
/// first when there is none (a reconnect after an error is part of the cost).
async fn one_request(conn: &mut Option<Conn>, target: &Target) -> anyhow::Result<()> {
    if conn.as_ref().is_none_or(Conn::is_closed) {
        *conn = Some(Conn::open(target).await?);
    }
    let Some(c) = conn.as_mut() else {
        anyhow::bail!("no connection");
    };
    let resp = c.send(target, Call::Generate).await?;
    let mut body = resp.into_body();
    drain(&mut body).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testserver;
    use http::StatusCode;

    fn spec(concurrency: usize, budget: Budget) -> LoadSpec {
        LoadSpec {
            concurrency,
            warmup: Duration::from_millis(50),
            budget,
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn counts_exactly_the_requested_number() -> anyhow::Result<()> {
        let addr = testserver::start(StatusCode::OK).await?;
        let target = Target::new("direct", addr, "k")?;
        let me = Some(std::process::id());
        let watch = Watch { target: me, mock: me };
        let r = run(&target, spec(4, Budget::Requests(203)), watch).await;
        assert_eq!(r.errors, 0, "{:?}", r.first_error);
        assert_eq!(r.latencies_us.len(), 203);
        assert!(r.cpu_secs.is_some(), "this process's CPU is readable");
        assert!(r.mock_cpu_secs.is_some());
        assert!(r.elapsed > Duration::ZERO);
        Ok(())
    }

    #[tokio::test]
    async fn time_budget_stops_on_time() -> anyhow::Result<()> {
        let addr = testserver::start(StatusCode::OK).await?;
        let target = Target::new("direct", addr, "k")?;
        let started = Instant::now();
        let r = run(
            &target,
            spec(8, Budget::Time(Duration::from_millis(200))),
            Watch::default(),
        )
        .await;
        assert_eq!(r.errors, 0, "{:?}", r.first_error);
        assert!(!r.latencies_us.is_empty());
        assert!(r.elapsed >= Duration::from_millis(200));
        assert!(started.elapsed() < Duration::from_secs(3));
        Ok(())
    }

    #[tokio::test]
    async fn error_statuses_are_counted_not_timed() -> anyhow::Result<()> {
        let addr = testserver::start(StatusCode::INTERNAL_SERVER_ERROR).await?;
        let target = Target::new("proxy", addr, "k")?;
        let r = run(&target, spec(2, Budget::Requests(10)), Watch::default()).await;
        assert!(r.latencies_us.is_empty());
        assert_eq!(r.errors, 10);
        let first = r.first_error.unwrap_or_default();
        assert!(first.contains("500"), "{first}");
        Ok(())
    }

    #[tokio::test]
    async fn unreachable_target_is_errors_not_panic() -> anyhow::Result<()> {
        // Bind then drop to get a port with (almost certainly) no listener.
        let addr = tokio::net::TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
        let target = Target::new("proxy", addr, "k")?;
        let r = run(&target, spec(3, Budget::Requests(6)), Watch::default()).await;
        assert!(r.latencies_us.is_empty());
        assert_eq!(r.errors, 6);
        assert!(r.first_error.is_some());
        Ok(())
    }

    #[test]
    fn merge_adds_up() {
        let mut a = LoadResult {
            latencies_us: vec![1, 2],
            errors: 1,
            elapsed: Duration::from_secs(1),
            first_error: None,
            cpu_secs: Some(0.5),
            mock_cpu_secs: None,
        };
        a.merge(LoadResult {
            latencies_us: vec![3],
            errors: 2,
            elapsed: Duration::from_secs(2),
            cpu_secs: Some(1.0),
            mock_cpu_secs: Some(0.25),
            first_error: Some("boom".into()),
        });
        assert_eq!(a.latencies_us, vec![1, 2, 3]);
        assert_eq!(a.errors, 3);
        assert_eq!(a.elapsed, Duration::from_secs(3));
        assert_eq!(a.first_error.as_deref(), Some("boom"));
        assert_eq!(a.cpu_secs, Some(1.5));
        assert_eq!(a.mock_cpu_secs, Some(0.25));
    }
}
