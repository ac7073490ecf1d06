//! Keeps the in-memory pool in step with the store, off the request path.

use std::sync::Arc;

use proxy_core::platform::KeyStore;
use tokio::sync::Notify;

use crate::clock::unix_ms;
use crate::runtime::ProxyState;

/// Re-reads keys and proxy keys every `refresh_interval` until told to stop. A store
/// that cannot be read is logged and the last known pool keeps serving.
/// `changed` fires when the store announces a change (e.g. PostgreSQL NOTIFY), so the
/// pool catches up at once instead of at the next tick.
pub(crate) async fn refresh_loop(
    state: Arc<ProxyState>,
    store: Arc<dyn KeyStore>,
    stop: Arc<Notify>,
    changed: Arc<Notify>,
) {
    let mut interval = tokio::time::interval(state.config.refresh_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    let mut failing = false;
    let mut marking_suspended = false;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = changed.notified() => {}
            () = stop.notified() => return,
        }
        marking_suspended = log_marking_change(&state, marking_suspended);
        match store.load().await {
            Ok(snapshot) => {
                if failing {
                    tracing::info!("store readable again; key pool refreshed");
                    failing = false;
                }
                state.apply_snapshot(snapshot);
                state.set_store_unreachable(false);
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "cannot refresh keys from the store; serving the last known pool");
                    failing = true;
                }
                state.set_store_unreachable(true);
            }
        }
    }
}

/// The core has no logger: say here when the pool's burst guard stops or resumes
/// taking invalid marks. Returns whether marking is suspended now.
fn log_marking_change(state: &ProxyState, was_suspended: bool) -> bool {
    let suspended = state.marking_suspended(unix_ms());
    match (&suspended, was_suspended) {
        (Some(s), false) => tracing::warn!(
            reason = %s.reason,
            refused = s.refused,
            until_ms = s.until_ms,
            "invalid-key marking suspended: a burst of marks across the pool"
        ),
        (None, true) => tracing::info!("invalid-key marking resumed"),
        _ => {}
    }
    suspended.is_some()
}
