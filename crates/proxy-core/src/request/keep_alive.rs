//! Keep-alives on SSE answers (`--sse-heartbeat-secs`): when upstream sends nothing
//! for the interval, the client gets a few bytes every SSE reader skips, so platforms
//! that cut idle connections at ~100 s (Cloudflare) keep a slow thinking model's
//! stream open. Only between events, never inside one, and never in a JSON-array
//! stream (anything there would break the JSON).
//!
//! OpenAI streams get the comment line `: keep-alive`. Gemini's `alt=sse` streams get
//! a blank line instead: google-genai (the official Python SDK, 3.6) reads every line
//! that is neither `data: …` nor blank as a JSON error fragment, so a comment fails
//! the client's stream (`UnknownApiResponseError`), while a blank line between events
//! dispatches nothing, in its reader and in every reader that follows the SSE spec.
//!
//! Before upstream's response headers arrive nothing is sent: the status is not known
//! yet (the attempt may fail over to another key, or end in an error the client must
//! see as one), so the wait then is bounded by the attempt's timeout instead.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::platform::Clock;

/// What an OpenAI stream gets: a comment line, and the blank line that ends it.
pub const KEEP_ALIVE_COMMENT: &[u8] = b": keep-alive\n\n";
/// What a Gemini `alt=sse` stream gets: one blank line (see the module's note).
pub const KEEP_ALIVE_BLANK_LINE: &[u8] = b"\n";

#[cfg(not(target_arch = "wasm32"))]
type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;
#[cfg(target_arch = "wasm32")]
type Sleep = Pin<Box<dyn Future<Output = ()>>>;

/// A timer on the platform's clock for a body wrapper to poll: at most one sleep
/// armed at a time, re-armed lazily when the deadline moved meanwhile (each upstream
/// chunk moves it), so a busy stream costs no timer per chunk.
pub struct Alarm<C> {
    clock: C,
    sleep: Option<Sleep>,
}

impl<C: Clock + Clone + 'static> Alarm<C> {
    pub fn new(clock: C) -> Self {
        Self { clock, sleep: None }
    }

    /// Ready once the clock reached `deadline_ms`; otherwise pending, with the task
    /// woken when it may have.
    pub fn poll_until(&mut self, deadline_ms: u64, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let now = self.clock.now_ms();
            if now >= deadline_ms {
                self.sleep = None;
                return Poll::Ready(());
            }
            let sleep = self.sleep.get_or_insert_with(|| {
                let clock = self.clock.clone();
                let wait = deadline_ms - now;
                Box::pin(async move { clock.sleep_ms(wait).await })
            });
            match sleep.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                // Armed for an earlier deadline: look again.
                Poll::Ready(()) => self.sleep = None,
            }
        }
    }
}

impl<C> std::fmt::Debug for Alarm<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alarm")
            .field("armed", &self.sleep.is_some())
            .finish()
    }
}

/// What a stream's keep-alive needs to know: the interval, when upstream last spoke,
/// and whether the bytes sent so far end between events.
#[derive(Clone, Debug)]
pub(super) struct KeepAlive {
    interval_ms: u64,
    /// [`KEEP_ALIVE_COMMENT`] or [`KEEP_ALIVE_BLANK_LINE`].
    pub(super) bytes: &'static [u8],
    quiet_since_ms: Option<u64>,
    /// Newlines (ignoring `\r`) at the end of what the client got; two end an event.
    trailing_newlines: u8,
    pub(super) sent: u64,
}

impl KeepAlive {
    pub(super) fn new(interval_ms: u64, bytes: &'static [u8]) -> Self {
        Self {
            interval_ms,
            bytes,
            quiet_since_ms: None,
            // Before the first byte the client's stream is between events.
            trailing_newlines: 2,
            sent: 0,
        }
    }

    /// Upstream sent `bytes` (as the client gets them) at `now_ms`.
    pub(super) fn sent_bytes(&mut self, bytes: &[u8], now_ms: u64) {
        self.quiet_since_ms = Some(now_ms);
        let mut newlines = 0u8;
        let mut all_newlines = true;
        for &byte in bytes.iter().rev() {
            match byte {
                b'\r' => {}
                b'\n' => newlines = newlines.saturating_add(1),
                _ => {
                    all_newlines = false;
                    break;
                }
            }
            if newlines >= 2 {
                break;
            }
        }
        self.trailing_newlines = match all_newlines {
            // Only newlines: they continue what was there.
            true => self.trailing_newlines.saturating_add(newlines).min(2),
            false => newlines,
        };
    }

    /// When a comment is next due (`now_ms` starts the count on the first call).
    pub(super) fn due_at(&mut self, now_ms: u64) -> u64 {
        let since = *self.quiet_since_ms.get_or_insert(now_ms);
        since.saturating_add(self.interval_ms)
    }

    /// The due time came at `now_ms`: whether a comment may go now (between events);
    /// either way the next one is an interval away.
    pub(super) fn fire(&mut self, now_ms: u64) -> bool {
        self.quiet_since_ms = Some(now_ms);
        let between_events = self.trailing_newlines >= 2;
        if between_events {
            self.sent += 1;
        }
        between_events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boundary_after(chunks: &[&str]) -> bool {
        let mut keep_alive = KeepAlive::new(1_000, KEEP_ALIVE_COMMENT);
        for chunk in chunks {
            keep_alive.sent_bytes(chunk.as_bytes(), 0);
        }
        keep_alive.trailing_newlines >= 2
    }

    #[test]
    fn comments_go_only_between_events() {
        assert!(boundary_after(&[]), "before the first byte");
        assert!(boundary_after(&["data: {}\n\n"]));
        assert!(boundary_after(&["data: {}\r\n\r\n"]));
        assert!(boundary_after(&["data: {}\n", "\n"]), "split across chunks");
        assert!(boundary_after(&["data: {}\r\n", "\r", "\n"]));
        assert!(!boundary_after(&["data: {\"a\""]), "inside an event");
        assert!(!boundary_after(&["data: {}\n"]), "between an event's lines");
        assert!(!boundary_after(&["data: {}\n\n", "data: {"]));
    }

    use std::sync::{Arc, Mutex};
    use std::task::Waker;

    use async_trait::async_trait;
    use bytes::Bytes;

    use crate::log::LogRecord;
    use crate::request::BodyObserver;
    use crate::route::BodyFormat;

    /// A clock whose sleeps end at once, moving time on, while `sleeps` lasts; after
    /// that a sleep never ends (as a real one would not within a test's poll).
    #[derive(Clone, Default)]
    struct Scripted {
        now: Arc<Mutex<u64>>,
        sleeps: Arc<Mutex<u32>>,
    }

    #[async_trait]
    impl Clock for Scripted {
        fn now_ms(&self) -> u64 {
            *self.now.lock().unwrap_or_else(|p| p.into_inner())
        }
        async fn sleep_ms(&self, ms: u64) {
            let allowed = {
                let mut sleeps = self.sleeps.lock().unwrap_or_else(|p| p.into_inner());
                let allowed = *sleeps > 0;
                *sleeps = sleeps.saturating_sub(1);
                allowed
            };
            if !allowed {
                std::future::pending::<()>().await;
            }
            *self.now.lock().unwrap_or_else(|p| p.into_inner()) += ms;
        }
    }

    #[test]
    fn a_quiet_sse_stream_gets_comments_between_events_and_the_log_counts_them() {
        let clock = Scripted::default();
        *clock.sleeps.lock().unwrap_or_else(|p| p.into_inner()) = 2;
        let mut observer =
            BodyObserver::for_stream(LogRecord::default(), BodyFormat::Sse, Some("text/event-stream"));
        observer.keep_alive_every(1_000, KEEP_ALIVE_COMMENT);
        assert!(observer.keeps_alive() && observer.changes_length());
        let mut alarm = Alarm::new(clock.clone());
        let mut cx = Context::from_waker(Waker::noop());
        let now = || clock.now_ms();
        let mut upstream = vec![Bytes::from_static(b"data: {}\n\n")];
        let mut next = |observer: &mut BodyObserver, upstream: &mut Vec<Bytes>| {
            let polled = observer.poll_through(
                || match upstream.pop() {
                    Some(chunk) => Poll::Ready(Some(Ok::<_, ()>(chunk))),
                    None => Poll::Pending,
                },
                now,
            );
            match polled {
                Poll::Pending => observer.poll_keep_alive(&mut alarm, &mut cx, now).map(Some),
                Poll::Ready(item) => Poll::Ready(item.and_then(Result::ok)),
            }
        };
        assert_eq!(
            next(&mut observer, &mut upstream),
            Poll::Ready(Some(Bytes::from_static(b"data: {}\n\n")))
        );
        let comment = Poll::Ready(Some(Bytes::from_static(KEEP_ALIVE_COMMENT)));
        assert_eq!(next(&mut observer, &mut upstream), comment, "a second of silence");
        assert_eq!(clock.now_ms(), 1_000);
        assert_eq!(next(&mut observer, &mut upstream), comment, "and another");
        assert_eq!(clock.now_ms(), 2_000);
        // Half an event, then silence: nothing may go in the middle of it.
        upstream.push(Bytes::from_static(b"data: {\"a\""));
        assert!(next(&mut observer, &mut upstream).is_ready());
        *clock.sleeps.lock().unwrap_or_else(|p| p.into_inner()) = 3;
        assert_eq!(next(&mut observer, &mut upstream), Poll::Pending);
        assert_eq!(clock.now_ms(), 5_000, "three quiet seconds went by");
        let record = observer
            .end(super::super::BodyEnd::Complete, 5_000)
            .unwrap_or_default();
        assert_eq!(
            record.notes,
            vec!["sent 2 keep-alive(s) while upstream was quiet"]
        );
    }

    #[test]
    fn without_an_interval_there_are_none() {
        let mut observer =
            BodyObserver::for_stream(LogRecord::default(), BodyFormat::Sse, Some("text/event-stream"));
        observer.keep_alive_every(0, KEEP_ALIVE_COMMENT);
        assert!(!observer.keeps_alive() && !observer.changes_length());
        let mut alarm = Alarm::new(Scripted::default());
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(
            observer.poll_keep_alive(&mut alarm, &mut cx, || 10_000),
            Poll::Pending
        );
    }

    #[test]
    fn due_an_interval_after_upstream_last_spoke() {
        let mut keep_alive = KeepAlive::new(1_000, KEEP_ALIVE_COMMENT);
        assert_eq!(keep_alive.due_at(500), 1_500, "counted from the first look");
        keep_alive.sent_bytes(b"data: {}\n\n", 1_200);
        assert_eq!(keep_alive.due_at(1_300), 2_200);
        assert!(keep_alive.fire(2_200));
        assert_eq!((keep_alive.sent, keep_alive.due_at(2_200)), (1, 3_200));
        keep_alive.sent_bytes(b"data: {\"half", 3_000);
        assert!(!keep_alive.fire(4_000), "not inside an event");
        assert_eq!((keep_alive.sent, keep_alive.due_at(4_000)), (1, 5_000));
    }
}
