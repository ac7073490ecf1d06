//! Sharing the response cache with the other instances through Redis pub/sub
//! (`REDIS_URL` with `--cache-ttl-secs`): every answer this instance keeps is published
//! once on `<prefix>:cache`, and every instance keeps what the others publish in its
//! own memory. A lookup therefore never leaves the process; the cost of sharing is one
//! message per answer kept, sent off the request path.
//!
//! What it does not do: an instance that starts (or reconnects) later does not get the
//! answers published before, and while Redis is unreachable answers are kept locally
//! only (the ones kept meanwhile are not sent later: a cache may forget).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use proxy_core::resilience::cache::ResponseCache;
use proxy_core::resilience::cache_share::SharedAnswer;
use redis::aio::MultiplexedConnection;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::clock::unix_ms;

/// How often an unreachable Redis is tried again.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for connecting or publishing.
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(2);
/// Answers waiting to be published; past it, new ones are kept locally only.
const OUTBOX: usize = 256;

/// The running sharing task.
pub struct SharedCache {
    task: JoinHandle<()>,
    stop: Arc<Notify>,
    counts: CacheSharing,
}

/// What the task has done so far (tests wait on it instead of sleeping).
#[derive(Clone, Debug, Default)]
pub struct CacheSharing {
    published: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
    /// Times the task subscribed (answers published before are not received).
    subscribed: Arc<AtomicU64>,
}

impl CacheSharing {
    /// Answers this instance sent the others.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }
    /// Answers from the others kept here.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
    /// Times this instance subscribed to the others' answers (0 until Redis answered).
    pub fn subscribed(&self) -> u64 {
        self.subscribed.load(Ordering::Relaxed)
    }
}

impl SharedCache {
    /// Starts sharing `cache` through the Redis at `url`, on the channel
    /// `<prefix>:cache`. A URL that does not parse is an error now; a Redis that is
    /// down is not (it is retried).
    pub fn spawn(cache: Arc<ResponseCache>, url: &str, prefix: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("invalid REDIS_URL: {e}"))?;
        // Random per instance (two instances may share a process in tests).
        let origin = RandomState::new().build_hasher().finish();
        let (outbox, pending) = mpsc::channel::<Vec<u8>>(OUTBOX);
        cache.on_fill(Box::new(move |key, answer, fresh_ms| {
            let message = SharedAnswer {
                origin,
                key: *key,
                fresh_ms,
                answer: answer.clone(),
            };
            // Full or closed: this answer stays local (a cache may forget).
            let _ = outbox.try_send(message.encode());
        }));
        let stop = Arc::new(Notify::new());
        let counts = CacheSharing::default();
        let task = tokio::spawn(share_loop(
            Link {
                cache,
                client,
                channel: format!("{prefix}:cache"),
                origin,
                counts: counts.clone(),
            },
            pending,
            stop.clone(),
        ));
        Ok(Self { task, stop, counts })
    }

    pub fn counts(&self) -> CacheSharing {
        self.counts.clone()
    }

    pub async fn shutdown(self) {
        self.stop.notify_one();
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "the shared-cache task ended abnormally");
        }
    }
}

struct Link {
    cache: Arc<ResponseCache>,
    client: redis::Client,
    channel: String,
    origin: u64,
    counts: CacheSharing,
}

async fn share_loop(link: Link, mut pending: mpsc::Receiver<Vec<u8>>, stop: Arc<Notify>) {
    let mut warned = false;
    loop {
        let why = match connect(&link).await {
            Ok((publisher, subscriber)) => {
                link.counts.subscribed.fetch_add(1, Ordering::Relaxed);
                if warned {
                    tracing::info!("sharing the response cache through Redis again");
                }
                warned = false;
                match relay(&link, publisher, subscriber, &mut pending, &stop).await {
                    None => return,
                    Some(why) => why,
                }
            }
            Err(why) => why,
        };
        if !warned {
            tracing::warn!(
                error = why,
                "Redis is unreachable: the response cache is per instance until it is back"
            );
            warned = true;
        }
        // Wait to retry, dropping what is kept meanwhile (it stays in this instance).
        let retry = tokio::time::sleep(RETRY_EVERY);
        tokio::pin!(retry);
        loop {
            tokio::select! {
                () = stop.notified() => return,
                () = &mut retry => break,
                message = pending.recv() => if message.is_none() { return },
            }
        }
    }
}

async fn connect(link: &Link) -> Result<(MultiplexedConnection, redis::aio::PubSub), String> {
    let both = async {
        let publisher = link.client.get_multiplexed_async_connection().await?;
        let mut subscriber = link.client.get_async_pubsub().await?;
        subscriber.subscribe(&link.channel).await?;
        Ok::<_, redis::RedisError>((publisher, subscriber))
    };
    match tokio::time::timeout(ROUND_TRIP_TIMEOUT, both).await {
        Ok(Ok(both)) => Ok(both),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("connect timed out".into()),
    }
}

/// Publishes what this instance keeps and keeps what the others publish, until Redis
/// fails (`Some(why)`) or the task is stopped (`None`).
async fn relay(
    link: &Link,
    mut publisher: MultiplexedConnection,
    subscriber: redis::aio::PubSub,
    pending: &mut mpsc::Receiver<Vec<u8>>,
    stop: &Notify,
) -> Option<String> {
    let mut messages = subscriber.into_on_message();
    loop {
        tokio::select! {
            () = stop.notified() => return None,
            message = pending.recv() => {
                let message = message?;
                let sent = tokio::time::timeout(
                    ROUND_TRIP_TIMEOUT,
                    redis::cmd("PUBLISH").arg(&link.channel).arg(message).query_async::<u64>(&mut publisher),
                )
                .await;
                match sent {
                    Ok(Ok(_)) => {
                        link.counts.published.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(error)) => return Some(error.to_string()),
                    Err(_) => return Some("Redis did not answer in time".into()),
                }
            }
            message = messages.next() => {
                let message = match message {
                    Some(message) => message,
                    None => return Some("the subscription ended".into()),
                };
                match SharedAnswer::decode(message.get_payload_bytes()) {
                    Some(shared) if shared.origin != link.origin => {
                        link.cache.put_from_peer(shared.key, shared.answer, shared.fresh_ms, unix_ms());
                        link.counts.received.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(_) => {}
                    None => tracing::warn!(channel = %link.channel, "a message on the cache channel was not understood"),
                }
            }
        }
    }
}
