//! Writes queued items (log records, key state changes) in batches, off the request
//! path. A Worker has no background task that outlives requests, so the writer is a
//! future the platform hands to `ctx.wait_until`: it drains the isolate's queue until
//! it is empty. While one flush runs, later items join its queue and go out in its
//! next batch, so a busy isolate writes few, larger batches. Full queue: the item is
//! dropped *and counted* (shown on `/healthz`), as on the native platform.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use futures_util::future::LocalBoxFuture;
use proxy_core::platform::{Clock, StoreError};

use crate::diag;

/// Writes one batch; gives the batch back so a failed write can be retried.
pub type WriteFn<T> = Box<dyn Fn(Vec<T>) -> LocalBoxFuture<'static, (Vec<T>, Result<(), StoreError>)>>;

/// Tries per batch before it is given up (and counted as dropped).
const WRITE_TRIES: u32 = 3;
/// A flush running this long is presumed stuck (a write that never answers); the next
/// submit starts another one rather than letting the queue grow behind it.
const STUCK_FLUSH_MS: u64 = 30_000;

pub struct BatchQueue<T, C> {
    name: &'static str,
    items: RefCell<VecDeque<T>>,
    /// Start time of the running flush, if any.
    flushing_since: Cell<Option<u64>>,
    dropped: Cell<u64>,
    capacity: usize,
    batch_size: usize,
    clock: C,
    write: WriteFn<T>,
}

impl<T: 'static, C: Clock + 'static> BatchQueue<T, C> {
    pub fn new(
        name: &'static str,
        capacity: usize,
        batch_size: usize,
        clock: C,
        write: WriteFn<T>,
    ) -> Rc<Self> {
        Rc::new(Self {
            name,
            items: RefCell::new(VecDeque::new()),
            flushing_since: Cell::new(None),
            dropped: Cell::new(0),
            capacity: capacity.max(1),
            batch_size: batch_size.max(1),
            clock,
            write,
        })
    }

    /// Items dropped because the queue was full or the store kept failing.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    pub fn queued(&self) -> usize {
        self.items.borrow().len()
    }

    /// Queues `item`, then writes the queue out unless a flush is already running.
    /// The Worker passes this future to `ctx.wait_until`.
    pub async fn submit(self: Rc<Self>, item: T) {
        self.push(item);
        self.flush().await;
    }

    pub fn push(&self, item: T) {
        let mut items = self.items.borrow_mut();
        if items.len() >= self.capacity {
            drop(items);
            self.count_dropped(1);
        } else {
            items.push_back(item);
        }
    }

    /// Writes batches until the queue is empty.
    pub async fn flush(self: Rc<Self>) {
        let now = self.clock.now_ms();
        if let Some(since) = self.flushing_since.get()
            && now.saturating_sub(since) < STUCK_FLUSH_MS
        {
            return;
        }
        self.flushing_since.set(Some(now));
        let _done = FlushGuard(&self.flushing_since, now);
        loop {
            let batch: Vec<T> = {
                let mut items = self.items.borrow_mut();
                let n = items.len().min(self.batch_size);
                items.drain(..n).collect()
            };
            if batch.is_empty() {
                return;
            }
            self.write_with_retry(batch).await;
        }
    }

    async fn write_with_retry(&self, mut batch: Vec<T>) {
        let mut delay_ms = 200;
        for attempt in 1..=WRITE_TRIES {
            let (returned, result) = (self.write)(batch).await;
            match result {
                Ok(()) => return,
                Err(error) if attempt == WRITE_TRIES => {
                    diag::warn(&format!(
                        "{}: giving up on {} items after {attempt} failed writes: {error}",
                        self.name,
                        returned.len()
                    ));
                    self.count_dropped(returned.len() as u64);
                    return;
                }
                Err(error) => {
                    diag::warn(&format!("{}: batch write failed, will retry: {error}", self.name));
                    batch = returned;
                    self.clock.sleep_ms(delay_ms).await;
                    delay_ms *= 2;
                }
            }
        }
    }

    fn count_dropped(&self, n: u64) {
        let before = self.dropped.get();
        self.dropped.set(before + n);
        if (before + n).is_power_of_two() || before == 0 {
            diag::warn(&format!("{}: {} items dropped so far", self.name, before + n));
        }
    }
}

/// Clears the running mark when the flush that set it ends (or is dropped).
struct FlushGuard<'a>(&'a Cell<Option<u64>>, u64);

impl Drop for FlushGuard<'_> {
    fn drop(&mut self) {
        if self.0.get() == Some(self.1) {
            self.0.set(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use futures_util::FutureExt;

    #[derive(Clone, Copy)]
    struct FixedClock;

    #[async_trait]
    impl Clock for FixedClock {
        fn now_ms(&self) -> u64 {
            1_000
        }
        async fn sleep_ms(&self, _ms: u64) {}
    }

    type Written = Rc<RefCell<Vec<Vec<u32>>>>;

    fn queue(capacity: usize, failures: u32) -> (Rc<BatchQueue<u32, FixedClock>>, Written) {
        let written = Rc::new(RefCell::new(Vec::new()));
        let sink = written.clone();
        let failures = Rc::new(Cell::new(failures));
        let write: WriteFn<u32> = Box::new(move |batch| {
            let sink = sink.clone();
            let failures = failures.clone();
            Box::pin(async move {
                if failures.get() > 0 {
                    failures.set(failures.get() - 1);
                    return (batch, Err(StoreError::Unavailable("down".into())));
                }
                sink.borrow_mut().push(batch.clone());
                (batch, Ok(()))
            })
        });
        (BatchQueue::new("test", capacity, 2, FixedClock, write), written)
    }

    #[test]
    fn drains_in_batches_and_retries() {
        let (queue, written) = queue(100, 2);
        for n in 1..=4 {
            queue.push(n);
        }
        assert!(queue.clone().submit(5).now_or_never().is_some());
        assert_eq!(*written.borrow(), vec![vec![1, 2], vec![3, 4], vec![5]]);
        assert_eq!((queue.queued(), queue.dropped()), (0, 0));
    }

    #[test]
    fn full_queue_and_failing_store_are_counted() {
        let (queue, written) = queue(3, 3);
        for n in 1..=4 {
            queue.push(n);
        }
        assert_eq!(queue.dropped(), 1);
        assert!(queue.clone().flush().now_or_never().is_some());
        // The first batch failed three times and was given up; the rest went out.
        assert_eq!(*written.borrow(), vec![vec![3]]);
        assert_eq!(queue.dropped(), 3);
    }
}
