//! The response body handed to the client: upstream's bytes, passed on as they arrive,
//! read on the way by the core's [`MetaReader`] for usage and finish reasons. The log
//! record is completed when the stream ends, fails, or the client goes away (drop).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::Stream;
use futures_util::stream::BoxStream;
use proxy_core::log::LogRecord;
use proxy_core::stream_meta::MetaReader;

use crate::batcher::BatchQueue;

pub(crate) struct ObservedBody {
    inner: BoxStream<'static, reqwest::Result<Bytes>>,
    reader: Option<MetaReader>,
    log: Option<PendingLog>,
    /// hyper stops polling once `content-length` bytes went out, so the end of a
    /// sized body is seen by counting, not by waiting for the stream's `None`.
    remaining: Option<u64>,
}

/// The record waiting for the body to end, and where it goes then.
pub(crate) struct PendingLog {
    pub record: LogRecord,
    pub started: Instant,
    pub queue: BatchQueue<LogRecord>,
}

impl ObservedBody {
    pub(crate) fn new(response: reqwest::Response, reader: Option<MetaReader>, log: PendingLog) -> Self {
        let remaining = response.content_length();
        Self {
            inner: Box::pin(response.bytes_stream()),
            reader,
            log: Some(log),
            remaining,
        }
    }

    fn complete(&mut self, error: Option<(&str, &str)>) {
        let Some(PendingLog {
            mut record,
            started,
            queue,
        }) = self.log.take()
        else {
            return;
        };
        record.end_body(self.reader.take().map(MetaReader::finish), error);
        record.latency_ms = started.elapsed().as_millis() as u64;
        queue.submit(record);
    }
}

impl Stream for ObservedBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(log) = this.log.as_mut()
                    && log.record.ttfb_ms.is_none()
                {
                    log.record.ttfb_ms = Some(log.started.elapsed().as_millis() as u64);
                }
                if let Some(reader) = this.reader.as_mut() {
                    reader.feed(&chunk);
                }
                if let Some(remaining) = this.remaining.as_mut() {
                    *remaining = remaining.saturating_sub(chunk.len() as u64);
                    if *remaining == 0 {
                        this.complete(None);
                    }
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(_))) => {
                // reqwest's error text may name the URL; the client gets a fixed message.
                this.complete(Some((
                    "upstream_stream_interrupted",
                    "upstream closed the stream early",
                )));
                Poll::Ready(Some(Err(std::io::Error::other(
                    "upstream closed the stream early",
                ))))
            }
            Poll::Ready(None) => {
                this.complete(None);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        // Still pending here means the body never reached its end: the client left.
        self.complete(Some((
            "client_disconnected",
            "client closed the connection before the answer ended",
        )));
    }
}
