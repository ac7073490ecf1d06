//! A future that always wakes the task that polled it last.
//!
//! `worker::Delay` keeps the waker of its first poll. A keep-alive timer is armed once
//! and polled again by each later pull of the response stream, and workerd runs each
//! pull as a task of its own, so the timer woke a task that had already ended and the
//! stream never learnt that a keep-alive was due. Wrapped in [`LatestWaker`], the inner
//! future is polled with a waker that forwards to whichever task polled last.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// `inner`, woken through a relay to the latest poller.
pub struct LatestWaker<F> {
    inner: Pin<Box<F>>,
    relay: Arc<Relay>,
    relay_waker: Waker,
}

#[derive(Default)]
struct Relay(Mutex<Option<Waker>>);

impl Wake for Relay {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let latest = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(waker) = latest {
            waker.wake();
        }
    }
}

impl<F: Future> LatestWaker<F> {
    pub fn new(inner: F) -> Self {
        let relay = Arc::new(Relay::default());
        Self {
            inner: Box::pin(inner),
            relay_waker: Waker::from(relay.clone()),
            relay,
        }
    }
}

impl<F: Future> Future for LatestWaker<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        {
            let mut latest = self.relay.0.lock().unwrap_or_else(|p| p.into_inner());
            match latest.as_ref() {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => *latest = Some(cx.waker().clone()),
            }
        }
        let this = &mut *self;
        this.inner
            .as_mut()
            .poll(&mut Context::from_waker(&this.relay_waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Like `worker::Delay`: keeps the first waker and is ready once fired.
    struct FirstWakerOnly {
        kept: Arc<Mutex<Option<Waker>>>,
        fired: Arc<Mutex<bool>>,
    }

    impl Future for FirstWakerOnly {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if *self.fired.lock().unwrap_or_else(|p| p.into_inner()) {
                return Poll::Ready(());
            }
            self.kept
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(|| cx.waker().clone());
            Poll::Pending
        }
    }

    #[derive(Default)]
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn the_task_that_polled_last_is_woken() {
        let kept = Arc::new(Mutex::new(None));
        let fired = Arc::new(Mutex::new(false));
        let mut future = LatestWaker::new(FirstWakerOnly {
            kept: kept.clone(),
            fired: fired.clone(),
        });
        let (first, second) = (Arc::new(Count::default()), Arc::new(Count::default()));
        let poll = |future: &mut LatestWaker<FirstWakerOnly>, task: &Arc<Count>| {
            let waker = Waker::from(task.clone());
            Pin::new(future).poll(&mut Context::from_waker(&waker))
        };
        assert!(poll(&mut future, &first).is_pending());
        assert!(
            poll(&mut future, &second).is_pending(),
            "another task polls it now"
        );
        *fired.lock().unwrap_or_else(|p| p.into_inner()) = true;
        let timer = kept.lock().unwrap_or_else(|p| p.into_inner()).take();
        timer.expect("the inner future kept a waker").wake();
        assert_eq!(first.0.load(Ordering::Relaxed), 0, "not the task that went away");
        assert_eq!(second.0.load(Ordering::Relaxed), 1);
        assert!(poll(&mut future, &second).is_ready());
    }
}
