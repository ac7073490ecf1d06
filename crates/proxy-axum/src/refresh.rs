//! Keeps the in-memory pool in step with the store, off the request path.

use std::sync::Arc;

use proxy_core::platform::KeyStore;
use tokio::sync::Notify;

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
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = changed.notified() => {}
            () = stop.notified() => return,
        }
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
