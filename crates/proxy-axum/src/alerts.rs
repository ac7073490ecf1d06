//! `--alert-webhook URL`: delivers the core's alerts ([`proxy_core::alerts`]) as JSON
//! POSTs, off the request path. Requests only `try_send` an event to the task; the
//! task debounces, builds the body, and posts it to every URL, retrying each with
//! backoff. A full queue drops the event (alerts must never slow a request). Webhook
//! URLs are secrets of their own (Slack's are): the log names their host only.

use std::time::Duration;

use proxy_core::alerts::{AlertEvent, Debounce};
use proxy_core::civil::format_utc;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::batcher::BatchQueue;
use crate::clock::unix_ms;
use proxy_core::log::LogRecord;
use std::sync::Arc;

/// Events waiting for the task; past it, new ones are dropped.
const QUEUE: usize = 256;
/// Posts per URL and alert: the first and three retries.
const ATTEMPTS: u32 = 4;
/// How often the log queue's dropped count is looked at.
const DROPPED_EVERY: Duration = Duration::from_secs(10);

/// Where requests raise events.
#[derive(Clone, Debug)]
pub struct AlertHandle {
    tx: mpsc::Sender<(AlertEvent, Option<String>)>,
}

impl AlertHandle {
    /// Queues `event` (`masked`: the key it names, masked) without waiting.
    pub fn raise(&self, event: AlertEvent, masked: Option<String>) {
        let _ = self.tx.try_send((event, masked));
    }
}

/// The delivery task.
pub struct Alerter {
    task: JoinHandle<()>,
    stop: Arc<Notify>,
}

/// How deliveries are made.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub urls: Vec<String>,
    /// The wait before the first retry; it doubles for each next one.
    pub backoff: Duration,
}

impl Alerter {
    /// Starts delivering to `delivery.urls`; `logs` is watched for dropped records.
    pub fn spawn(delivery: Delivery, logs: BatchQueue<LogRecord>) -> Result<(Self, AlertHandle), String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the webhook client: {e}"))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let stop = Arc::new(Notify::new());
        let task = tokio::spawn(run(client, delivery, logs, rx, stop.clone()));
        Ok((Self { task, stop }, AlertHandle { tx }))
    }

    /// Stops taking events; deliveries under way finish on their own.
    pub async fn shutdown(self) {
        self.stop.notify_one();
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "the alert task ended abnormally");
        }
    }
}

async fn run(
    client: reqwest::Client,
    delivery: Delivery,
    logs: BatchQueue<LogRecord>,
    mut rx: mpsc::Receiver<(AlertEvent, Option<String>)>,
    stop: Arc<Notify>,
) {
    let mut debounce = Debounce::default();
    let mut dropped_told = 0;
    let mut watch = tokio::time::interval(DROPPED_EVERY);
    loop {
        let (event, masked) = tokio::select! {
            () = stop.notified() => return,
            next = rx.recv() => match next {
                Some(next) => next,
                None => return,
            },
            _ = watch.tick() => {
                let total = logs.dropped();
                if total <= dropped_told {
                    continue;
                }
                let event = AlertEvent::LogsDropped { dropped: total - dropped_told, total };
                dropped_told = total;
                (event, None)
            }
        };
        let now = unix_ms();
        if !debounce.admit(&event, now) {
            continue;
        }
        let alert = event.to_alert(masked.as_deref(), &format_utc(now));
        for url in &delivery.urls {
            tokio::spawn(deliver(
                client.clone(),
                url.clone(),
                alert.body.clone(),
                delivery.backoff,
            ));
        }
    }
}

/// Posts `body` to `url` until it answers 2xx, at most [`ATTEMPTS`] times.
async fn deliver(client: reqwest::Client, url: String, body: serde_json::Value, backoff: Duration) {
    let host = reqwest::Url::parse(&url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let mut wait = backoff;
    for attempt in 1..=ATTEMPTS {
        let why = match client.post(&url).json(&body).send().await {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => format!("answered {}", response.status().as_u16()),
            Err(error) => match error.is_timeout() {
                true => "timed out".to_string(),
                false => "could not be reached".to_string(),
            },
        };
        if attempt == ATTEMPTS {
            tracing::warn!(webhook_host = %host, "an alert was not delivered: the webhook {why} {ATTEMPTS} times");
            return;
        }
        tokio::time::sleep(wait).await;
        wait = wait.saturating_mul(2);
    }
}
