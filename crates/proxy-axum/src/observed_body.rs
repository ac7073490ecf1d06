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
use futures_util::stream::BoxStream;
use proxy_core::log::LogRecord;
use proxy_core::request::{BodyEnd, BodyObserver};

use crate::batcher::BatchQueue;
use crate::clock::unix_ms;

pub(crate) struct ObservedBody {
    inner: BoxStream<'static, reqwest::Result<Bytes>>,
    observer: BodyObserver,
    queue: BatchQueue<LogRecord>,
    /// hyper stops polling once `content-length` bytes went out, so the end of a
    /// sized body is seen by counting, not by waiting for the stream's `None`.
    remaining: Option<u64>,
    /// Upstream's body ended; only the observer's held-back tail may follow.
    upstream_done: bool,
    /// Set by the shutdown when it is about to drop the unfinished bodies.
    cut: Arc<AtomicBool>,
}

impl ObservedBody {
    pub(crate) fn new(
        response: reqwest::Response,
        observer: BodyObserver,
        queue: BatchQueue<LogRecord>,
        cut: Arc<AtomicBool>,
    ) -> Self {
        let remaining = response.content_length();
        Self {
            inner: Box::pin(response.bytes_stream()),
            observer,
            queue,
            remaining,
            upstream_done: false,
            cut,
        }
    }

    fn complete(&mut self, end: BodyEnd) {
        if let Some(record) = self.observer.end(end, unix_ms()) {
            self.queue.submit(record);
        }
    }
}

impl Stream for ObservedBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.upstream_done {
                return Poll::Ready(None);
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    let length = chunk.len() as u64;
                    let chunk = this.observer.chunk(chunk, unix_ms());
                    if let Some(remaining) = this.remaining.as_mut() {
                        *remaining = remaining.saturating_sub(length);
                        if *remaining == 0 {
                            this.complete(BodyEnd::Complete);
                        }
                    }
                    if !chunk.is_empty() {
                        return Poll::Ready(Some(Ok(chunk)));
                    }
                }
                Poll::Ready(Some(Err(_))) => {
                    // reqwest's error text may name the URL; the client gets a fixed message.
                    this.complete(BodyEnd::UpstreamCut);
                    return Poll::Ready(Some(Err(std::io::Error::other(
                        "upstream closed the stream early",
                    ))));
                }
                Poll::Ready(None) => {
                    this.complete(BodyEnd::Complete);
                    this.upstream_done = true;
                    let tail = this.observer.tail();
                    return Poll::Ready((!tail.is_empty()).then_some(Ok(tail)));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
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
