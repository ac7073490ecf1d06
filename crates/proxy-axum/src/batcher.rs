//! A bounded queue drained by one background task that writes in batches.
//!
//! Used for request logs and for learned key state: the request path only does a
//! non-blocking `try_send`, never a store round trip. When the store is slow or down,
//! items wait in the queue; when the queue is full they are dropped *and counted*, and
//! the count is logged, so loss is never silent. Shutdown drains and flushes.
//!
//! A batch that is not full waits up to `linger` for more items before it is
//! written: one store call for many requests instead of one per request, which is
//! what makes logging cheap under load (SQLite writes its WAL pages once per batch).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proxy_core::platform::StoreError;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

/// The sending side, cheap to clone into every request.
#[derive(Debug)]
pub struct BatchQueue<T> {
    tx: mpsc::Sender<T>,
    dropped: Arc<AtomicU64>,
    name: &'static str,
}

impl<T> Clone for BatchQueue<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            dropped: self.dropped.clone(),
            name: self.name,
        }
    }
}

impl<T> BatchQueue<T> {
    /// Queues `item` without waiting. Returns false (and counts it) when full or closed.
    pub fn submit(&self, item: T) -> bool {
        match self.tx.try_send(item) {
            Ok(()) => true,
            Err(_) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(queue = self.name, dropped, "write queue full; items dropped");
                }
                false
            }
        }
    }

    /// Items waiting to be written now.
    pub fn depth(&self) -> usize {
        self.tx.max_capacity().saturating_sub(self.tx.capacity())
    }

    /// Items dropped because the queue was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The writing side: call [`BatchWriter::shutdown`] to flush what is queued and stop.
#[derive(Debug)]
pub struct BatchWriter {
    shutdown: Arc<Notify>,
    handle: JoinHandle<()>,
}

impl BatchWriter {
    /// Starts the writer task. `flush` gets each batch; a failed batch is retried with
    /// backoff until it succeeds (or, once shutting down, a few times more).
    pub fn spawn<T, F, Fut>(
        name: &'static str,
        capacity: usize,
        batch_size: usize,
        linger: Duration,
        flush: F,
    ) -> (BatchQueue<T>, BatchWriter)
    where
        T: Send + 'static,
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = (Vec<T>, Result<(), StoreError>)> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let shutdown = Arc::new(Notify::new());
        let dropped = Arc::new(AtomicU64::new(0));
        let task = run(
            name,
            rx,
            shutdown.clone(),
            batch_size.max(1),
            linger,
            flush,
            dropped.clone(),
        );
        let handle = tokio::spawn(task);
        (BatchQueue { tx, dropped, name }, BatchWriter { shutdown, handle })
    }

    /// Flushes everything queued so far, then stops the task.
    pub async fn shutdown(self) {
        self.shutdown.notify_one();
        if let Err(error) = self.handle.await {
            tracing::error!(%error, "batch writer task failed");
        }
    }
}

async fn run<T, F, Fut>(
    name: &'static str,
    mut rx: mpsc::Receiver<T>,
    shutdown: Arc<Notify>,
    batch_size: usize,
    linger: Duration,
    flush: F,
    dropped: Arc<AtomicU64>,
) where
    F: Fn(Vec<T>) -> Fut,
    Fut: Future<Output = (Vec<T>, Result<(), StoreError>)>,
{
    let mut closing = false;
    loop {
        let mut batch = Vec::with_capacity(batch_size);
        if !closing {
            tokio::select! {
                item = rx.recv() => match item {
                    Some(item) => batch.push(item),
                    None => closing = true,
                },
                () = shutdown.notified() => closing = true,
            }
        }
        drain(&mut rx, &mut batch, batch_size);
        if !closing && !batch.is_empty() && batch.len() < batch_size && !linger.is_zero() {
            // Senders do not wake a writer that sleeps, so the wait costs them nothing.
            tokio::select! {
                () = tokio::time::sleep(linger) => {}
                () = shutdown.notified() => closing = true,
            }
            drain(&mut rx, &mut batch, batch_size);
        }
        if batch.is_empty() {
            if closing {
                break;
            }
            continue;
        }
        write_with_retry(name, batch, &flush, closing, &dropped).await;
    }
    let lost = dropped.load(Ordering::Relaxed);
    if lost > 0 {
        tracing::warn!(
            queue = name,
            lost,
            "items were dropped while the store could not keep up"
        );
    }
}

/// Moves what is queued into `batch`, up to `batch_size` items.
fn drain<T>(rx: &mut mpsc::Receiver<T>, batch: &mut Vec<T>, batch_size: usize) {
    while batch.len() < batch_size {
        match rx.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
}

async fn write_with_retry<T, F, Fut>(
    name: &'static str,
    mut batch: Vec<T>,
    flush: &F,
    closing: bool,
    dropped: &AtomicU64,
) where
    F: Fn(Vec<T>) -> Fut,
    Fut: Future<Output = (Vec<T>, Result<(), StoreError>)>,
{
    let mut delay = Duration::from_millis(100);
    for attempt in 1u32.. {
        let (returned, result) = flush(batch).await;
        match result {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(queue = name, attempt, %error, "batch write failed; will retry");
                if closing && attempt >= 3 {
                    dropped.fetch_add(returned.len() as u64, Ordering::Relaxed);
                    tracing::error!(
                        queue = name,
                        lost = returned.len(),
                        "giving up on a batch at shutdown"
                    );
                    return;
                }
                batch = returned;
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn batches_retries_and_flushes_on_shutdown() {
        let written = Arc::new(Mutex::new(Vec::<u32>::new()));
        let failures_left = Arc::new(AtomicU64::new(2));
        let sink = written.clone();
        let failures = failures_left.clone();
        let (queue, writer) = BatchWriter::spawn("test", 1000, 10, Duration::ZERO, move |batch: Vec<u32>| {
            let sink = sink.clone();
            let failures = failures.clone();
            async move {
                if failures.load(Ordering::SeqCst) > 0 {
                    failures.fetch_sub(1, Ordering::SeqCst);
                    return (batch, Err(StoreError::Unavailable("down".into())));
                }
                sink.lock().map(|mut w| w.extend(batch.iter().copied())).ok();
                (batch, Ok(()))
            }
        });
        for i in 0..100 {
            assert!(queue.submit(i));
        }
        writer.shutdown().await;
        let mut got = written.lock().map(|w| w.clone()).unwrap_or_default();
        got.sort_unstable();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert_eq!(queue.dropped(), 0);
    }

    type Written = std::future::Ready<(Vec<u32>, Result<(), StoreError>)>;

    /// Records the size of each batch written.
    type Sizes = Arc<Mutex<Vec<usize>>>;

    fn recording() -> (Sizes, impl Fn(Vec<u32>) -> Written) {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let flush = move |batch: Vec<u32>| {
            seen.lock().map(|mut s| s.push(batch.len())).ok();
            std::future::ready((batch, Ok(())))
        };
        (sizes, flush)
    }

    fn sizes(sizes: &Mutex<Vec<usize>>) -> Vec<usize> {
        sizes.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Items that arrive while a batch lingers go out in that batch: one write.
    #[tokio::test(start_paused = true)]
    async fn a_short_batch_waits_for_more() {
        let (written, flush) = recording();
        let (queue, writer) = BatchWriter::spawn("test", 100, 50, Duration::from_secs(1), flush);
        assert!(queue.submit(0));
        tokio::task::yield_now().await;
        for i in 1..6 {
            assert!(queue.submit(i));
        }
        assert!(sizes(&written).is_empty(), "written before the wait ended");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(sizes(&written), vec![6]);
        writer.shutdown().await;
    }

    /// A full batch does not wait: the clock never moves while it is written.
    #[tokio::test(start_paused = true)]
    async fn a_full_batch_goes_at_once() {
        let (written, flush) = recording();
        let (queue, writer) = BatchWriter::spawn("test", 100, 3, Duration::from_secs(3600), flush);
        let start = tokio::time::Instant::now();
        for i in 0..3 {
            assert!(queue.submit(i));
        }
        while sizes(&written).is_empty() {
            tokio::task::yield_now().await;
        }
        assert_eq!(sizes(&written), vec![3]);
        assert_eq!(tokio::time::Instant::now(), start);
        writer.shutdown().await;
    }

    /// Shutdown cuts a wait short and writes what waited.
    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_the_wait() {
        let (written, flush) = recording();
        let (queue, writer) = BatchWriter::spawn("test", 100, 50, Duration::from_secs(3600), flush);
        let start = tokio::time::Instant::now();
        assert!(queue.submit(7));
        tokio::task::yield_now().await;
        writer.shutdown().await;
        assert_eq!(sizes(&written), vec![1]);
        assert!(tokio::time::Instant::now() - start < Duration::from_secs(3600));
    }

    #[tokio::test]
    async fn full_queue_counts_drops() {
        let (queue, writer) =
            BatchWriter::spawn("test", 2, 1, Duration::ZERO, |batch: Vec<u32>| async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                (batch, Ok(()))
            });
        let accepted = (0..50).filter(|i| queue.submit(*i)).count() as u64;
        assert_eq!(accepted + queue.dropped(), 50);
        assert!(queue.dropped() > 0);
        writer.shutdown().await;
    }
}
