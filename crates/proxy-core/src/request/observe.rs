//! Watching a streamed answer on its way to the client: time to first byte, usage and
//! finish reasons read by the core's [`MetaReader`], and the record completed exactly
//! once however the body ends. The platform's body wrapper only polls its stream and
//! calls [`BodyObserver::chunk`] and [`BodyObserver::end`].

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};

use crate::governance::Governor;
use crate::log::LogRecord;
use crate::openai_usage::UsageChunkFilter;
use crate::platform::Clock;
use crate::route::BodyFormat;
use crate::stream_meta::MetaReader;

use super::keep_alive::{Alarm, KeepAlive};
use super::settle::CacheFill;
use crate::policy::BudgetPeriod;

/// A proxy key's budget: nano-dollars per period.
pub type Budget = (u64, BudgetPeriod);
use crate::resilience::cache::CachedAnswer;

/// The log's error kind for a request the server's shutdown cut short.
pub const CUT_AT_SHUTDOWN: &str = "cut_at_shutdown";

/// How a streamed body ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyEnd {
    /// Upstream's body ended and every byte went out.
    Complete,
    /// Upstream's connection failed mid-body.
    UpstreamCut,
    /// The client went away (the platform dropped the body before its end).
    ClientGone,
    /// The server's shutdown grace ran out while the body was still going.
    CutAtShutdown,
}

impl BodyEnd {
    /// The log's error kind and message for a body that did not end normally.
    fn failure(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::Complete => None,
            Self::UpstreamCut => Some(("upstream_stream_interrupted", "upstream closed the stream early")),
            Self::ClientGone => Some((
                "client_disconnected",
                "client closed the connection before the answer ended",
            )),
            Self::CutAtShutdown => Some((
                CUT_AT_SHUTDOWN,
                "the server shut down before the answer ended (its grace period ran out)",
            )),
        }
    }
}

/// The record of a streamed answer, waiting for the body to end.
#[derive(Debug)]
pub struct BodyObserver {
    record: Option<LogRecord>,
    reader: Option<MetaReader>,
    /// Removes the usage chunk the proxy asked for and the client did not.
    filter: Option<UsageChunkFilter>,
    /// Upstream's body ended: only the held-back tail may follow, then nothing.
    upstream_done: bool,
    /// How upstream's body ended, seen by [`BodyObserver::poll_through`]; its record
    /// waits for [`BodyObserver::take_ended`].
    ended: Option<BodyEnd>,
    /// Prices the record and counts its tokens when the body ends (and whether its
    /// proxy key's policy counts them).
    governor: Option<(Arc<Governor>, bool, Option<Budget>)>,
    /// Keep-alive comments while upstream is quiet (SSE answers, when configured).
    keep_alive: Option<KeepAlive>,
    /// A cacheable answer's bytes so far, for the cache when the body ends whole
    /// (dropped once past the largest answer the cache keeps).
    cache: Option<(CacheFill, String, BytesMut)>,
}

impl BodyObserver {
    /// `content_type` is upstream's: only JSON and event streams are read for usage.
    pub fn for_stream(record: LogRecord, format: BodyFormat, content_type: Option<&str>) -> Self {
        let readable = content_type.is_some_and(|ct| ct.contains("json") || ct.contains("event-stream"));
        Self {
            record: Some(record),
            reader: readable.then(|| MetaReader::new(format)),
            filter: None,
            upstream_done: false,
            ended: None,
            governor: None,
            keep_alive: None,
            cache: None,
        }
    }

    /// Keeps the answer's bytes for `fill`'s cache, which gets them if the body ends
    /// whole and the record found nothing wrong in it.
    pub fn fill_cache(&mut self, fill: CacheFill, content_type: Option<&str>) {
        let content_type = content_type.unwrap_or(super::JSON_CONTENT_TYPE).to_string();
        self.cache = Some((fill, content_type, BytesMut::new()));
    }

    /// Sends `bytes` ([`super::KEEP_ALIVE_COMMENT`] or
    /// [`super::KEEP_ALIVE_BLANK_LINE`]) whenever upstream is quiet for `interval_ms`
    /// (SSE answers only: the caller checks the framing).
    pub fn keep_alive_every(&mut self, interval_ms: u64, bytes: &'static [u8]) {
        self.keep_alive = (interval_ms > 0).then(|| KeepAlive::new(interval_ms, bytes));
    }

    /// Whether this answer gets keep-alive comments (the platform then keeps an
    /// [`Alarm`] for [`BodyObserver::poll_keep_alive`]).
    pub fn keeps_alive(&self) -> bool {
        self.keep_alive.is_some()
    }

    /// Charges what the answer used to `governor` when the body ends; `metered`: the
    /// proxy key's policy counts tokens or cost.
    /// `budget`: the proxy key's, in nano-dollars per period (crossing 80% or 100% of it
    /// leaves an alert in the record).
    pub fn charge_to(&mut self, governor: Arc<Governor>, metered: bool, budget: Option<Budget>) {
        self.governor = Some((governor, metered, budget));
    }

    /// Removes an OpenAI stream's usage-only chunk from what the client gets (it is
    /// still read for the log).
    pub fn strip_usage_chunk(&mut self) {
        self.filter = Some(UsageChunkFilter::new());
    }

    /// The client's body differs from upstream's: don't pass on its `content-length`.
    pub fn changes_length(&self) -> bool {
        self.filter.is_some() || self.keep_alive.is_some()
    }

    /// The record being completed (until the body ends).
    pub(super) fn record_mut(&mut self) -> Option<&mut LogRecord> {
        self.record.as_mut()
    }

    /// Whether the client asked for a stream (`streams_active` counts only these).
    pub fn is_stream(&self) -> bool {
        self.record.as_ref().is_some_and(|r| r.stream)
    }

    /// The request id (for the `x-request-id` header).
    pub fn request_id(&self) -> &str {
        self.record.as_ref().map_or("", |r| r.id.as_str())
    }

    /// Notes an upstream chunk arriving at `now_ms`; returns the bytes for the client
    /// (possibly none yet: then poll upstream again rather than send an empty chunk).
    pub fn chunk(&mut self, chunk: Bytes, now_ms: u64) -> Bytes {
        if let Some(record) = self.record.as_mut()
            && record.ttfb_ms.is_none()
        {
            record.ttfb_ms = Some(now_ms.saturating_sub(record.started_at_ms));
        }
        if let Some(reader) = self.reader.as_mut() {
            reader.feed(&chunk);
        }
        let out = match self.filter.as_mut() {
            Some(filter) => filter.push(&chunk),
            None => chunk,
        };
        if let Some(keep_alive) = self.keep_alive.as_mut() {
            keep_alive.sent_bytes(&out, now_ms);
        }
        if let Some((fill, _, kept)) = self.cache.as_mut() {
            match kept.len() + out.len() <= fill.cache.max_entry_bytes() {
                true => kept.extend_from_slice(&out),
                false => self.cache = None,
            }
        }
        out
    }

    /// After [`BodyObserver::poll_through`] was pending: a keep-alive for the
    /// client if upstream has been quiet for the interval and the stream is between
    /// events; otherwise pending, with `alarm` set to wake the task when one may be due.
    pub fn poll_keep_alive<C: Clock + Clone + 'static>(
        &mut self,
        alarm: &mut Alarm<C>,
        cx: &mut Context<'_>,
        now_ms: impl Fn() -> u64,
    ) -> Poll<Bytes> {
        let Some(keep_alive) = self.keep_alive.as_mut().filter(|_| !self.upstream_done) else {
            return Poll::Pending;
        };
        loop {
            let due = keep_alive.due_at(now_ms());
            if alarm.poll_until(due, cx).is_pending() {
                return Poll::Pending;
            }
            if keep_alive.fire(now_ms()) {
                return Poll::Ready(Bytes::from_static(keep_alive.bytes));
            }
        }
    }

    /// Bytes still held back when upstream's body ended (an unterminated last event);
    /// send them before ending the client's body.
    pub fn tail(&mut self) -> Bytes {
        self.filter
            .take()
            .map(UsageChunkFilter::finish)
            .unwrap_or_default()
    }

    /// Completes the record (once: later calls give `None`) for the log.
    pub fn end(&mut self, end: BodyEnd, now_ms: u64) -> Option<LogRecord> {
        let mut record = self.record.take()?;
        if let Some(sent) = self.keep_alive.as_ref().map(|k| k.sent).filter(|n| *n > 0) {
            record
                .notes
                .push(format!("sent {sent} keep-alive(s) while upstream was quiet"));
        }
        record.end_body(self.reader.take().map(MetaReader::finish), end.failure());
        record.close(now_ms);
        if let Some((governor, metered, budget)) = self.governor.take() {
            governor.charge(&mut record, metered, budget, now_ms);
        }
        if let Some((fill, content_type, kept)) = self.cache.take()
            && end == BodyEnd::Complete
            && record.status == 200
            && record.error_kind.is_none()
        {
            let answer = CachedAnswer {
                content_type,
                body: kept.freeze(),
            };
            fill.cache.put(fill.key, answer, now_ms);
        }
        Some(record)
    }

    /// One poll of the client's body: polls upstream's (`poll_upstream`, again while a
    /// chunk is held back whole) and says what the client gets: a chunk, the held-back
    /// tail once upstream ended, upstream's error (the record then says the stream was
    /// cut), the end, or pending. Every platform's body wrapper is this call, then
    /// [`BodyObserver::take_ended`] for the record of a body that ended.
    pub fn poll_through<E>(
        &mut self,
        mut poll_upstream: impl FnMut() -> Poll<Option<Result<Bytes, E>>>,
        now_ms: impl Fn() -> u64,
    ) -> Poll<Option<Result<Bytes, E>>> {
        loop {
            if self.upstream_done {
                return Poll::Ready(None);
            }
            match poll_upstream() {
                Poll::Ready(Some(Ok(chunk))) => {
                    let chunk = self.chunk(chunk, now_ms());
                    if !chunk.is_empty() {
                        return Poll::Ready(Some(Ok(chunk)));
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    self.ended = Some(BodyEnd::UpstreamCut);
                    return Poll::Ready(Some(Err(error)));
                }
                Poll::Ready(None) => {
                    self.ended = Some(BodyEnd::Complete);
                    self.upstream_done = true;
                    let tail = self.tail();
                    return Poll::Ready((!tail.is_empty()).then_some(Ok(tail)));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// The record of a body [`BodyObserver::poll_through`] saw end, completed at
    /// `now_ms` (once).
    pub fn take_ended(&mut self, now_ms: u64) -> Option<LogRecord> {
        let end = self.ended.take()?;
        self.end(end, now_ms)
    }

    /// True once the record went to [`BodyObserver::end`].
    pub fn is_ended(&self) -> bool {
        self.record.is_none()
    }
}
