//! Waiting for a key (`--queue-wait-secs`, `--queue-max`): when no key has room for a
//! model (all cooling down or at their limits), a request may wait until the first
//! frees instead of being answered 429 at once. Waiters of a model are served in the
//! order they came (a request arriving while others wait for its model queues behind
//! them); the queue holds at most `max` requests across models, and beyond that a
//! request is refused at once. A waiter whose client leaves is dropped, and its
//! place with it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

#[derive(Debug, Default)]
struct Waiting {
    next_ticket: u64,
    total: usize,
    /// Per model, tickets in arrival order, each with the waker of its task.
    models: HashMap<String, VecDeque<(u64, Option<Waker>)>>,
}

/// The requests waiting for a key.
#[derive(Debug, Default)]
pub struct WaitQueue {
    max: usize,
    waiting: Mutex<Waiting>,
}

/// A request's place in the queue; dropping it leaves the queue.
#[derive(Debug)]
#[must_use]
pub struct Place<'a> {
    queue: &'a WaitQueue,
    model: String,
    ticket: u64,
}

impl WaitQueue {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            waiting: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place at the back of `model`'s line; `None` when the queue is full.
    pub fn join(&self, model: &str) -> Option<Place<'_>> {
        let mut waiting = self.lock();
        if waiting.total >= self.max {
            return None;
        }
        let ticket = waiting.next_ticket;
        waiting.next_ticket += 1;
        waiting.total += 1;
        waiting
            .models
            .entry(model.to_string())
            .or_default()
            .push_back((ticket, None));
        Some(Place {
            queue: self,
            model: model.to_string(),
            ticket,
        })
    }

    /// Whether requests wait for `model` now (a newcomer then queues behind them).
    pub fn has_waiters(&self, model: &str) -> bool {
        self.lock().models.get(model).is_some_and(|line| !line.is_empty())
    }

    /// Requests waiting, across models.
    pub fn len(&self) -> usize {
        self.lock().total
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Place<'_> {
    /// Ready once this place is the first of its model's line; otherwise pending,
    /// with the task woken when the place ahead of it leaves.
    pub fn poll_first(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut waiting = self.queue.lock();
        let Some(line) = waiting.models.get_mut(&self.model) else {
            return Poll::Ready(());
        };
        match line.front() {
            Some((ticket, _)) if *ticket == self.ticket => Poll::Ready(()),
            _ => {
                if let Some(entry) = line.iter_mut().find(|(t, _)| *t == self.ticket) {
                    entry.1 = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    pub fn is_first(&self) -> bool {
        let waiting = self.queue.lock();
        let front = waiting.models.get(&self.model).and_then(|line| line.front());
        front.is_some_and(|(ticket, _)| *ticket == self.ticket)
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut waiting = self.queue.lock();
        let Some(line) = waiting.models.get_mut(&self.model) else {
            return;
        };
        let was_first = line.front().is_some_and(|(t, _)| *t == self.ticket);
        line.retain(|(t, _)| *t != self.ticket);
        let next = match was_first {
            true => line.front_mut().and_then(|(_, waker)| waker.take()),
            false => None,
        };
        if line.is_empty() {
            waiting.models.remove(&self.model);
        }
        waiting.total = waiting.total.saturating_sub(1);
        drop(waiting);
        if let Some(waker) = next {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn first_come_first_served_per_model_and_bounded() {
        let queue = WaitQueue::new(3);
        let a = queue.join("m").expect("room");
        let b = queue.join("m").expect("room");
        let other = queue.join("n").expect("room");
        assert!(queue.join("m").is_none(), "full across models");
        assert!(
            a.is_first() && !b.is_first() && other.is_first(),
            "lines per model"
        );
        assert!(queue.has_waiters("m") && !queue.has_waiters("x"));

        let woken = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(b.poll_first(&mut cx).is_pending());
        drop(a);
        assert_eq!(woken.0.load(Ordering::SeqCst), 1, "the next in line is woken");
        assert!(b.poll_first(&mut cx).is_ready());
        assert_eq!(queue.len(), 2);
    }

    #[test]
    fn a_waiter_that_leaves_gives_up_its_place_without_waking_anyone() {
        let queue = WaitQueue::new(10);
        let a = queue.join("m").expect("room");
        let b = queue.join("m").expect("room");
        let c = queue.join("m").expect("room");
        let woken = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(c.poll_first(&mut cx).is_pending());
        drop(b);
        assert_eq!(woken.0.load(Ordering::SeqCst), 0);
        drop(a);
        assert_eq!(woken.0.load(Ordering::SeqCst), 1, "c is first now");
        assert!(c.is_first());
        drop(c);
        assert!(queue.is_empty() && !queue.has_waiters("m"));
    }
}
