//! The response body handed to the client: upstream's chunks, passed on as they
//! arrive through the core's [`BodyObserver`], which reads usage and finish reasons on
//! the way and completes the record when the stream ends, fails, or is dropped because
//! the client went away; the record goes to `done` (the Worker sends it through a
//! oneshot channel to a `ctx.wait_until` future that writes it).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use proxy_core::log::LogRecord;
use proxy_core::platform::Clock;
use proxy_core::request::{Alarm, BodyEnd, BodyObserver};

pub struct ObservedStream<S, C: Clock> {
    inner: Pin<Box<S>>,
    observer: BodyObserver,
    clock: C,
    done: Option<Box<dyn FnOnce(LogRecord)>>,
    /// Wakes the stream for keep-alive comments (SSE answers, when configured).
    alarm: Option<Alarm<C>>,
}

// The inner stream is boxed, so nothing here is pinned structurally.
impl<S, C: Clock> Unpin for ObservedStream<S, C> {}

impl<S, C: Clock + Clone + 'static> ObservedStream<S, C> {
    pub fn new(inner: S, observer: BodyObserver, clock: C, done: Box<dyn FnOnce(LogRecord)>) -> Self {
        let alarm = observer.keeps_alive().then(|| Alarm::new(clock.clone()));
        Self {
            inner: Box::pin(inner),
            observer,
            clock,
            done: Some(done),
            alarm,
        }
    }
}

impl<S, C: Clock> ObservedStream<S, C> {
    fn complete(&mut self, end: BodyEnd) {
        if let (Some(record), Some(done)) = (self.observer.end(end, self.clock.now_ms()), self.done.take()) {
            done(record);
        }
    }
}

impl<S, E, C> Stream for ObservedStream<S, C>
where
    S: Stream<Item = Result<Vec<u8>, E>>,
    C: Clock + Clone + 'static,
{
    type Item = Result<Vec<u8>, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let (inner, clock) = (&mut this.inner, &this.clock);
        // The runtime's error text is not logged: it may name the URL.
        let mut polled = this.observer.poll_through(
            || {
                inner
                    .as_mut()
                    .poll_next(cx)
                    .map(|item| item.map(|chunk| chunk.map(Bytes::from)))
            },
            || clock.now_ms(),
        );
        if let (Poll::Pending, Some(alarm)) = (&polled, this.alarm.as_mut()) {
            polled = this
                .observer
                .poll_keep_alive(alarm, cx, || clock.now_ms())
                .map(|comment| Some(Ok(comment)));
        }
        if let Some(record) = this.observer.take_ended(clock.now_ms())
            && let Some(done) = this.done.take()
        {
            done(record);
        }
        polled.map(|item| item.map(|chunk| chunk.map(Vec::from)))
    }
}

impl<S, C: Clock> Drop for ObservedStream<S, C> {
    fn drop(&mut self) {
        // Still pending here means the body never reached its end: the client left.
        self.complete(BodyEnd::ClientGone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    use async_trait::async_trait;
    use futures_util::{StreamExt, stream};
    use proxy_core::route::BodyFormat;

    #[derive(Clone, Copy)]
    struct FixedClock;

    #[async_trait]
    impl Clock for FixedClock {
        fn now_ms(&self) -> u64 {
            150
        }
        async fn sleep_ms(&self, _ms: u64) {}
    }

    type Chunks = Vec<Result<Vec<u8>, String>>;
    type Logged = Rc<RefCell<Option<LogRecord>>>;

    fn observe(
        chunks: Chunks,
    ) -> (
        ObservedStream<impl Stream<Item = Result<Vec<u8>, String>>, FixedClock>,
        Logged,
    ) {
        let logged = Rc::new(RefCell::new(None));
        let slot = logged.clone();
        let record = LogRecord {
            started_at_ms: 100,
            ..LogRecord::default()
        };
        let observer = BodyObserver::for_stream(record, BodyFormat::Sse, Some("text/event-stream"));
        let done = Box::new(move |record| *slot.borrow_mut() = Some(record));
        (
            ObservedStream::new(stream::iter(chunks), observer, FixedClock, done),
            logged,
        )
    }

    #[test]
    fn passes_chunks_and_logs_usage_at_the_end() {
        let (body, logged) = observe(vec![
            Ok(b"data: {\"candidates\":[{\"finishReason\":\"STOP\"}],".to_vec()),
            Ok(b"\"usageMetadata\":{\"promptTokenCount\":3,\"totalTokenCount\":5}}\n\n".to_vec()),
        ]);
        let out: Chunks = futures_util::FutureExt::now_or_never(body.collect()).unwrap_or_default();
        assert_eq!(out.len(), 2);
        let record = logged.borrow_mut().take().unwrap_or_default();
        assert_eq!((record.prompt_tokens, record.total_tokens), (Some(3), Some(5)));
        assert_eq!(record.finish_reason.as_deref(), Some("STOP"));
        assert_eq!((record.ttfb_ms, record.latency_ms), (Some(50), 50));
        assert_eq!(record.error_kind, None);
    }

    #[test]
    fn a_client_that_leaves_is_logged_once() {
        let (mut body, logged) = observe(vec![Ok(b"data: {}\n\n".to_vec()), Ok(b"more".to_vec())]);
        let first = futures_util::FutureExt::now_or_never(body.next());
        assert!(matches!(first, Some(Some(Ok(_)))));
        assert!(logged.borrow().is_none());
        drop(body);
        let record = logged.borrow_mut().take().unwrap_or_default();
        assert_eq!(record.error_kind.as_deref(), Some("client_disconnected"));
    }

    #[test]
    fn an_upstream_error_ends_the_record() {
        let (body, logged) = observe(vec![Ok(b"x".to_vec()), Err("reset".into())]);
        let out: Chunks = futures_util::FutureExt::now_or_never(body.collect()).unwrap_or_default();
        assert!(out.last().is_some_and(Result::is_err));
        let record = logged.borrow_mut().take().unwrap_or_default();
        assert_eq!(record.error_kind.as_deref(), Some("upstream_stream_interrupted"));
    }
}
