//! The response body handed to the client: upstream's bytes, passed on as they arrive
//! through the core's [`BodyObserver`], which reads usage and finish reasons on the
//! way and completes the record when the stream ends, fails, or the client goes away
//! (drop).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use proxy_core::request::{Alarm, BodyEnd, BodyObserver};

use crate::clock::{TokioClock, unix_ms};
use crate::metrics::{RecordSink, StreamGuard};
use crate::upstream::{UpstreamBody, UpstreamReply};

pub(crate) struct ObservedBody {
    inner: UpstreamBody,
    observer: BodyObserver,
    records: RecordSink,
    /// Counts this body in `streams_active` while it lives (streamed answers only).
    _streaming: Option<StreamGuard>,
    /// hyper stops polling once `content-length` bytes went out, so the end of a
    /// sized body is seen by counting, not by waiting for the stream's `None`.
    remaining: Option<u64>,
    /// Set by the shutdown when it is about to drop the unfinished bodies.
    cut: Arc<AtomicBool>,
    /// Wakes the body for keep-alive comments (SSE answers, when configured).
    alarm: Option<Alarm<TokioClock>>,
}

impl ObservedBody {
    pub(crate) fn new(
        response: UpstreamReply,
        observer: BodyObserver,
        records: RecordSink,
        cut: Arc<AtomicBool>,
    ) -> Self {
        let _streaming = observer.is_stream().then(|| records.metrics.stream_started());
        // A body the observer rewrites has no content-length downstream.
        let inner = response.into_body();
        let remaining = inner.exact_len().filter(|_| !observer.changes_length());
        let alarm = observer.keeps_alive().then(|| Alarm::new(TokioClock));
        Self {
            inner,
            observer,
            records,
            _streaming,
            remaining,
            cut,
            alarm,
        }
    }

    fn complete(&mut self, end: BodyEnd) {
        if let Some(record) = self.observer.end(end, unix_ms()) {
            self.records.submit(record);
        }
    }
}

impl Stream for ObservedBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let inner = &mut this.inner;
        let mut polled = this.observer.poll_through(|| inner.poll_data(cx), unix_ms);
        if let (Poll::Pending, Some(alarm)) = (&polled, this.alarm.as_mut()) {
            polled = this
                .observer
                .poll_keep_alive(alarm, cx, unix_ms)
                .map(|comment| Some(Ok(comment)));
        }
        if let (Poll::Ready(Some(Ok(chunk))), Some(remaining)) = (&polled, this.remaining.as_mut()) {
            *remaining = remaining.saturating_sub(chunk.len() as u64);
            if *remaining == 0 {
                this.complete(BodyEnd::Complete);
            }
        }
        if let Some(record) = this.observer.take_ended(unix_ms()) {
            this.records.submit(record);
        }
        // Upstream's error text is not the client's business; it gets a fixed message.
        polled.map(|item| {
            item.map(|chunk| chunk.map_err(|_| std::io::Error::other("upstream closed the stream early")))
        })
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        // Still pending here means the body never reached its end: the client left,
        // or the shutdown's grace ran out.
        let end = match self.cut.load(Ordering::Acquire) {
            true => BodyEnd::CutAtShutdown,
            false => BodyEnd::ClientGone,
        };
        self.complete(end);
    }
}
