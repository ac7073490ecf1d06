//! Instant refresh: a dedicated connection LISTENs on the channel the schema's triggers
//! notify when keys, proxy keys, invalid marks or cooldowns change, and wakes the
//! refresher, which then reloads at once instead of at its next tick.
//!
//! Notifications are only a hint: the refresher still reloads periodically, and after
//! the LISTEN connection was lost and re-established it is woken too, since changes may
//! have been missed in between.

use std::future::poll_fn;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use proxy_core::platform::StoreError;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, Connection, Socket};

use crate::connect::Connector;
use crate::error::map;
use crate::tls::RustlsStream;

/// The channel the migration's `notify_key_change` trigger notifies.
pub const CHANGES_CHANNEL: &str = "gemini_proxy_keys";

const RECONNECT_FIRST: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// Wakes whoever waits in [`ChangeListener::changed`] when the keys changed. Several
/// changes before the waiter gets to run wake it once. Dropping it closes the connection.
pub struct ChangeListener {
    notify: Arc<Notify>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for ChangeListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeListener").finish_non_exhaustive()
    }
}

impl ChangeListener {
    /// Returns once LISTEN is in place (so a change made after this call is seen), or
    /// with the error of the first attempt. Later losses are retried in the background.
    pub(crate) async fn start(connector: Connector) -> Result<Self, StoreError> {
        let notify = Arc::new(Notify::new());
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = tokio::spawn(run(connector, Arc::clone(&notify), ready_tx));
        match ready_rx.await {
            Ok(Ok(())) => Ok(Self { notify, task }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::Unavailable(
                "LISTEN task ended before it started".into(),
            )),
        }
    }

    /// Waits until something changed since the last call returned (or since the
    /// listener started, for the first call).
    pub async fn changed(&self) {
        self.notify.notified().await;
    }

    /// The underlying `Notify`, for code that selects on it alongside other events.
    pub fn notifier(&self) -> Arc<Notify> {
        Arc::clone(&self.notify)
    }
}

impl Drop for ChangeListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(connector: Connector, notify: Arc<Notify>, ready: oneshot::Sender<Result<(), StoreError>>) {
    let mut ready = Some(ready);
    let mut delay = RECONNECT_FIRST;
    loop {
        match listen(&connector, &notify).await {
            Ok((client, connection)) => {
                match ready.take() {
                    Some(ready) => {
                        let _ = ready.send(Ok(()));
                    }
                    // Back after a loss: whatever changed meanwhile went unannounced.
                    None => {
                        tracing::info!("LISTEN {CHANGES_CHANNEL}: reconnected");
                        notify.notify_one();
                    }
                }
                delay = RECONNECT_FIRST;
                pump(connection, &notify).await;
                drop(client);
                tracing::warn!("LISTEN {CHANGES_CHANNEL}: connection lost; reconnecting");
            }
            Err(e) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(e));
                    return;
                }
                tracing::warn!("LISTEN {CHANGES_CHANNEL}: {e}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RECONNECT_MAX);
            }
        }
    }
}

type PgConnection = Connection<Socket, RustlsStream>;

/// Connects and issues LISTEN, driving the connection meanwhile (it does all the IO).
async fn listen(connector: &Connector, notify: &Notify) -> Result<(Client, PgConnection), StoreError> {
    let (client, mut connection) = connector.connect().await?;
    {
        let sql = format!("LISTEN {CHANGES_CHANNEL}");
        let mut listening = pin!(client.batch_execute(&sql));
        loop {
            tokio::select! {
                done = &mut listening => {
                    done.map_err(map)?;
                    break;
                }
                message = poll_fn(|cx| connection.poll_message(cx)) => match message {
                    Some(Ok(message)) => forward(&message, notify),
                    Some(Err(e)) => return Err(map(e)),
                    None => return Err(StoreError::Unavailable("connection closed during LISTEN".into())),
                },
            }
        }
    }
    Ok((client, connection))
}

/// Drives the connection until it ends, forwarding notifications.
async fn pump(mut connection: PgConnection, notify: &Notify) {
    while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
        match message {
            Ok(message) => forward(&message, notify),
            Err(e) => {
                tracing::warn!("LISTEN {CHANGES_CHANNEL}: {}", map(e));
                return;
            }
        }
    }
}

fn forward(message: &AsyncMessage, notify: &Notify) {
    if let AsyncMessage::Notification(n) = message {
        if n.channel() == CHANGES_CHANNEL {
            notify.notify_one();
        }
    }
}
