//! Sharing the governance counts with the other instances through Redis, off the
//! request path: requests are checked against this instance's view
//! (`proxy_core::governance`), and this task reconciles the view with Redis in the
//! background, when the core says counts changed and every [`READ_EVERY`] to see the
//! other instances' use.
//!
//! Each window's count is one Redis integer (`INCRBY`, expiring a minute after its
//! window ends), so instances need no other coordination. When Redis cannot be
//! reached, the instance counts alone (said on `/healthz` and in the log) and tries
//! again every [`RETRY_EVERY`]; what it counted meanwhile is reported once it is back.
//!
//! A round is applied once: it runs as one script guarded by a marker of its own
//! (`<prefix>:round:<instance>:<n>`), and a round whose answer was lost (the
//! connection cut after Redis ran it) is sent again, same marker, before any new one.
//! Redis then only reads the totals back instead of adding twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use proxy_core::governance::Governor;
use proxy_core::governance::counters::SyncOp;
use proxy_core::health::LimitSharing;
use redis::aio::MultiplexedConnection;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::clock::unix_ms;

/// How often counts are read back without a local change (other instances' use).
pub const READ_EVERY: Duration = Duration::from_millis(100);
/// How often an unreachable Redis is tried again.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for one Redis round trip before it counts as unreachable.
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(2);
/// Keys outlive their window by this much, so a late reader still finds the total.
const EXPIRE_AFTER_WINDOW_MS: u64 = 60_000;
/// How long a round's marker says it was applied: a round sent again later than this
/// (Redis away for over an hour) would be added twice.
const ROUND_MARKER_MS: u64 = 3_600_000;

/// One round: if its marker is new, add each count and set its expiry; either way,
/// answer every count's total. `KEYS[1]` is the marker, `KEYS[i+1]` count `i`;
/// `ARGV[1]` the marker's life, then per count what to add and when it expires.
const ROUND_SCRIPT: &str = r"
local fresh = redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1])
local totals = {}
for i = 2, #KEYS do
  local add = ARGV[2 * i - 2]
  if fresh then
    totals[i - 1] = redis.call('INCRBY', KEYS[i], add)
    redis.call('PEXPIREAT', KEYS[i], ARGV[2 * i - 1])
  else
    totals[i - 1] = tonumber(redis.call('GET', KEYS[i]) or '0')
  end
end
return totals
";

/// A round's plan and the marker that makes it apply once.
struct Round {
    marker: String,
    plan: Vec<SyncOp>,
}

/// The running sync task and where sharing stands.
pub struct SharedCounts {
    task: JoinHandle<()>,
    stop: Arc<Notify>,
    status: SharingStatus,
}

/// Where sharing stands now, for `/healthz` (a cheap handle on the task's flags).
#[derive(Clone, Debug, Default)]
pub struct SharingStatus {
    state: Arc<AtomicU8>,
    rounds: Arc<AtomicU64>,
}

impl SharingStatus {
    pub fn get(&self) -> LimitSharing {
        match self.state.load(Ordering::Relaxed) {
            SHARED => LimitSharing::Shared,
            _ => LimitSharing::Unreachable,
        }
    }

    /// Rounds with Redis that succeeded so far (tests wait on it instead of sleeping).
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    fn set(&self, state: u8) {
        self.state.store(state, Ordering::Relaxed);
    }
}

const UNREACHABLE: u8 = 0;
const SHARED: u8 = 1;

impl SharedCounts {
    /// Starts sharing `governor`'s counts through the Redis at `url`. A URL that does
    /// not parse is an error now; a Redis that is down is not (it is retried).
    /// Every key is named `<prefix>:…`, so deployments can share one Redis.
    pub fn spawn(governor: Arc<Governor>, url: &str, prefix: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("invalid REDIS_URL: {e}"))?;
        let stop = Arc::new(Notify::new());
        let changed = Arc::new(Notify::new());
        let status = SharingStatus::default();
        let wake = changed.clone();
        governor.on_change(Box::new(move || wake.notify_one()));
        let task = tokio::spawn(sync_loop(
            governor,
            client,
            prefix.to_string(),
            changed,
            stop.clone(),
            status.clone(),
        ));
        Ok(Self { task, stop, status })
    }

    pub fn status(&self) -> SharingStatus {
        self.status.clone()
    }

    /// Reports what is still unreported, then stops.
    pub async fn shutdown(self) {
        self.stop.notify_one();
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "the shared-limits task ended abnormally");
        }
    }
}

async fn sync_loop(
    governor: Arc<Governor>,
    client: redis::Client,
    prefix: String,
    changed: Arc<Notify>,
    stop: Arc<Notify>,
    status: SharingStatus,
) {
    let mut connection: Option<MultiplexedConnection> = None;
    let mut warned = false;
    let script = redis::Script::new(ROUND_SCRIPT);
    // Unique per task: rounds of two instances never share a marker.
    let instance = crate::clock::unique_id();
    let mut next_round = 0u64;
    // A round Redis may or may not have applied: sent again before any new one.
    let mut held: Option<Round> = None;
    loop {
        if connection.is_none() {
            match tokio::time::timeout(ROUND_TRIP_TIMEOUT, client.get_multiplexed_async_connection()).await {
                Ok(Ok(connected)) => {
                    connection = Some(connected);
                    governor.set_shared(true);
                    status.set(SHARED);
                    tracing::info!("sharing limits with other instances through Redis");
                    warned = false;
                }
                Ok(Err(error)) => unreachable_now(&governor, &status, &mut warned, &error.to_string()),
                Err(_) => unreachable_now(&governor, &status, &mut warned, "connect timed out"),
            }
        }
        let wait = match connection {
            Some(_) => READ_EVERY,
            None => RETRY_EVERY,
        };
        let stopping = tokio::select! {
            () = stop.notified() => true,
            () = changed.notified() => false,
            () = tokio::time::sleep(wait) => false,
        };
        if let Some(conn) = connection.as_mut() {
            let round = held.take().unwrap_or_else(|| {
                next_round += 1;
                Round {
                    marker: format!("{prefix}:round:{instance}:{next_round}"),
                    plan: governor.sync_plan(unix_ms()),
                }
            });
            match run_round(&governor, conn, &prefix, &script, &round).await {
                Ok(()) => {
                    status.rounds.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    unreachable_now(&governor, &status, &mut warned, &error);
                    connection = None;
                    held = Some(round);
                }
            }
        }
        if stopping {
            return;
        }
    }
}

fn unreachable_now(governor: &Governor, status: &SharingStatus, warned: &mut bool, why: &str) {
    governor.set_shared(false);
    status.set(UNREACHABLE);
    if !*warned {
        tracing::warn!(
            error = why,
            "Redis is unreachable: limits are counted per instance until it is back"
        );
        *warned = true;
    }
}

/// One round: the core's plan as one script call, its totals back into the core. On a
/// lost answer the plan is not given back to the core: the caller sends the same round
/// again (its marker keeps Redis from adding it twice).
async fn run_round(
    governor: &Governor,
    conn: &mut MultiplexedConnection,
    prefix: &str,
    script: &redis::Script,
    round: &Round,
) -> Result<(), String> {
    if round.plan.is_empty() {
        return Ok(());
    }
    let mut call = script.key(&round.marker);
    call.arg(ROUND_MARKER_MS);
    for op in &round.plan {
        call.key(format!("{prefix}:{}", op.name))
            .arg(op.add)
            .arg(op.end_ms + EXPIRE_AFTER_WINDOW_MS);
    }
    let answer = tokio::time::timeout(ROUND_TRIP_TIMEOUT, call.invoke_async::<Vec<u64>>(conn)).await;
    match answer {
        Ok(Ok(totals)) if totals.len() == round.plan.len() => {
            governor.sync_apply(&round.plan, &totals);
            Ok(())
        }
        Ok(Ok(_)) => Err("Redis answered a different number of totals".to_string()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("Redis did not answer in time".to_string()),
    }
}
