//! The response body handed to the client: upstream's chunks, passed on as they
//! arrive, read on the way by the core's [`MetaReader`] for usage and finish reasons.
//! The log record is completed when the stream ends, fails, or is dropped because the
//! client went away, and handed to `done` (the Worker sends it through a oneshot
//! channel to a `ctx.wait_until` future that writes it).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use proxy_core::log::LogRecord;
use proxy_core::platform::Clock;
use proxy_core::stream_meta::MetaReader;

/// The record waiting for the body to end, and what to do with it then.
pub struct PendingLog<C> {
    pub record: LogRecord,
    pub started_ms: u64,
    pub clock: C,
    pub done: Box<dyn FnOnce(LogRecord)>,
}

pub struct ObservedStream<S, C: Clock> {
    inner: Pin<Box<S>>,
    reader: Option<MetaReader>,
    log: Option<PendingLog<C>>,
}

// The inner stream is boxed, so nothing here is pinned structurally.
impl<S, C: Clock> Unpin for ObservedStream<S, C> {}

impl<S, C: Clock> ObservedStream<S, C> {
    pub fn new(inner: S, reader: Option<MetaReader>, log: PendingLog<C>) -> Self {
        Self {
            inner: Box::pin(inner),
            reader,
            log: Some(log),
        }
    }

    fn complete(&mut self, error: Option<(&str, &str)>) {
        let Some(PendingLog {
            mut record,
            started_ms,
            clock,
            done,
        }) = self.log.take()
        else {
            return;
        };
        record.end_body(self.reader.take().map(MetaReader::finish), error);
        record.latency_ms = clock.now_ms().saturating_sub(started_ms);
        done(record);
    }
}

impl<S, E, C> Stream for ObservedStream<S, C>
where
    S: Stream<Item = Result<Vec<u8>, E>>,
    C: Clock,
{
    type Item = Result<Vec<u8>, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(log) = this.log.as_mut()
                    && log.record.ttfb_ms.is_none()
                {
                    log.record.ttfb_ms = Some(log.clock.now_ms().saturating_sub(log.started_ms));
                }
                if let Some(reader) = this.reader.as_mut() {
                    reader.feed(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(error))) => {
                // The runtime's error text is not logged: it may name the URL.
                this.complete(Some((
                    "upstream_stream_interrupted",
                    "upstream closed the stream early",
                )));
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                this.complete(None);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S, C: Clock> Drop for ObservedStream<S, C> {
    fn drop(&mut self) {
        // Still pending here means the body never reached its end: the client left.
        self.complete(Some((
            "client_disconnected",
            "client closed the connection before the answer ended",
        )));
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
        let log = PendingLog {
            record: LogRecord::default(),
            started_ms: 100,
            clock: FixedClock,
            done: Box::new(move |record| *slot.borrow_mut() = Some(record)),
        };
        let reader = Some(MetaReader::new(BodyFormat::Sse));
        (ObservedStream::new(stream::iter(chunks), reader, log), logged)
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
