//! The listener's limits (issue 10 §2) and a bounded shutdown that logs what it cuts
//! (§6), on real sockets. Each wait has a generous bound: without the limit under
//! test, the wait runs out and the test fails; with it, the proxy acts in a second.

use std::time::Duration;

use proxy_axum::{BodyPace, ConnectionLimits};
use proxy_core::request::CUT_AT_SHUTDOWN;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{FLASH, Harness, key};

/// How long a test waits for the proxy to act before calling it a failure.
const PATIENCE: Duration = Duration::from_secs(30);

async fn stored_logs(stop: &crate::harness::Stop) -> Vec<proxy_core::log::LogRecord> {
    let query = proxy_core::admin::LogQuery {
        limit: 100,
        ..Default::default()
    };
    proxy_core::admin::AdminStore::list_logs(stop.store.as_ref(), &query)
        .await
        .expect("logs")
}

fn limits(header_secs: u64, idle_secs: u64) -> ConnectionLimits {
    ConnectionLimits {
        header_timeout: Duration::from_secs(header_secs),
        idle_timeout: Duration::from_secs(idle_secs),
        ..ConnectionLimits::default()
    }
}

async fn connect(h: &Harness) -> TcpStream {
    TcpStream::connect(h.base.trim_start_matches("http://"))
        .await
        .expect("connects")
}

/// Reads until the proxy closes the connection; what it sent on the way (if anything).
async fn until_closed(stream: &mut TcpStream) -> Result<String, &'static str> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let reading = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(PATIENCE, reading)
        .await
        .map_err(|_| "the proxy kept the connection open")?;
    Ok(String::from_utf8_lossy(&seen).into_owned())
}

/// Reads one response head (and whatever came with it).
async fn response_head(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let reading = async {
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(PATIENCE, reading)
        .await
        .expect("the proxy answered");
    String::from_utf8_lossy(&answer).into_owned()
}

fn generate_head(h: &Harness, content_length: usize) -> String {
    format!(
        "POST /v1beta/models/{FLASH}:generateContent HTTP/1.1\r\nhost: x\r\nx-goog-api-key: {}\r\n\
         content-type: application/json\r\ncontent-length: {content_length}\r\n\r\n",
        h.proxy_key
    )
}

fn generate_request(h: &Harness) -> String {
    let body = r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#;
    format!("{}{body}", generate_head(h, body.len()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let h = Harness::start_serving(&[key("good")], |_| {}, limits(1, 600)).await;
    let mut silent = connect(&h).await;
    assert_eq!(until_closed(&mut silent).await, Ok(String::new()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_head_is_closed_after_the_header_timeout() {
    let h = Harness::start_serving(&[key("good")], |_| {}, limits(1, 600)).await;
    let mut half = connect(&h).await;
    half.write_all(b"POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("half a head sent");
    assert!(until_closed(&mut half).await.is_ok());
    assert!(h.fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let h = Harness::start_serving(&[key("good")], |_| {}, limits(600, 1)).await;
    let mut kept = connect(&h).await;
    kept.write_all(generate_request(&h).as_bytes())
        .await
        .expect("request sent");
    assert!(response_head(&mut kept).await.starts_with("HTTP/1.1 200"));
    assert!(until_closed(&mut kept).await.is_ok());
}

/// The two timers are distinct: between requests the idle timeout applies, not the
/// header timeout (hyper alone would use one for both).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn between_requests_the_header_timeout_does_not_apply() {
    let h = Harness::start_serving(&[key("good")], |_| {}, limits(1, 600)).await;
    let mut kept = connect(&h).await;
    kept.write_all(generate_request(&h).as_bytes())
        .await
        .expect("first request sent");
    assert!(response_head(&mut kept).await.starts_with("HTTP/1.1 200"));
    // Idle past the header timeout, then a second request on the same connection.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    kept.write_all(generate_request(&h).as_bytes())
        .await
        .expect("second request sent");
    let second = response_head(&mut kept).await;
    assert!(second.starts_with("HTTP/1.1 200"), "{second:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let capped = ConnectionLimits {
        max_connections: 2,
        ..limits(600, 600)
    };
    let h = Harness::start_serving(&[key("good")], |_| {}, capped).await;
    let first = connect(&h).await;
    let mut second = connect(&h).await;
    second
        .write_all(generate_request(&h).as_bytes())
        .await
        .expect("sent");
    assert!(response_head(&mut second).await.starts_with("HTTP/1.1 200"));
    // A third waits in the accept queue: its request is not read while two are open.
    let mut third = connect(&h).await;
    third
        .write_all(generate_request(&h).as_bytes())
        .await
        .expect("sent");
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "a third connection was served past the cap of two"
    );
    drop(first);
    assert!(response_head(&mut third).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_is_408_and_logged() {
    let slow = |c: &mut proxy_axum::ProxyConfig| {
        c.body_pace = BodyPace {
            grace: Duration::from_secs(1),
            min_bytes_per_sec: 1024,
        }
    };
    let h = Harness::start_serving(&[key("good")], slow, ConnectionLimits::default()).await;
    let mut stalled = connect(&h).await;
    stalled
        .write_all(generate_head(&h, 100_000).as_bytes())
        .await
        .expect("head sent");
    stalled
        .write_all(b"{\"contents\":")
        .await
        .expect("a few bytes sent");
    let answer = response_head(&mut stalled).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(h.fake.requests().is_empty());
    let logged = h.logs(1).await;
    assert_eq!(logged[0].error_kind.as_deref(), Some("body_too_slow"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_past_the_memory_budget_get_503_with_retry_after_until_room_returns() {
    let budget = |c: &mut proxy_axum::ProxyConfig| {
        c.body_memory_bytes = 1024 * 1024;
        c.admission.max_body_bytes = 1024 * 1024;
    };
    let h = Harness::start_serving(&[key("good")], budget, ConnectionLimits::default()).await;
    // One client holds 900 KiB of the 1 MiB budget with a body it never finishes.
    let mut holder = connect(&h).await;
    holder
        .write_all(generate_head(&h, 900 * 1024).as_bytes())
        .await
        .expect("head sent");
    holder.write_all(&[b' '; 4096]).await.expect("some body sent");
    let text = "x".repeat(200 * 1024);
    let body = format!(r#"{{"contents":[{{"parts":[{{"text":"{text}"}}]}}]}}"#);
    let path = format!("/v1beta/models/{FLASH}:generateContent");
    let mut refused = None;
    for _ in 0..100 {
        let answer = h.post(&path, &body).await;
        if answer.status() == 503 {
            refused = Some(answer);
            break;
        }
        // The holder's head may not have been read yet.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = refused.expect("a body past the budget is refused");
    assert_eq!(
        refused.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let error: serde_json::Value = refused.json().await.expect("JSON error");
    assert_eq!(error["error"]["status"], "UNAVAILABLE", "{error}");
    drop(holder);
    let mut status = 0;
    for _ in 0..100 {
        status = h.post(&path, &body).await.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200, "the budget came back when the holder left");
    assert_eq!(h.runtime_state().body_memory_in_use(), 0);
}

/// Streams still running when the grace ends are cut, and each is logged as cut
/// before the writers flush: nothing dropped, nothing unlogged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_cut_at_shutdown_are_logged_as_cut() {
    let no_grace = ConnectionLimits {
        shutdown_grace: Duration::ZERO,
        ..ConnectionLimits::default()
    };
    let h = Harness::start_serving(&[key("good")], |_| {}, no_grace).await;
    let url = h.url("/v1beta/models/gemini-2.5-flash-longstream:streamGenerateContent?alt=sse");
    let mut streams = Vec::new();
    for _ in 0..5 {
        let mut response = h
            .http
            .post(&url)
            .header("x-goog-api-key", &h.proxy_key)
            .body("{}")
            .send()
            .await
            .expect("stream starts");
        let first = response.chunk().await.expect("first chunk");
        assert!(first.is_some());
        streams.push(response);
    }
    let stop = h.stop_serving().await;
    assert_eq!(stop.stopped.cut_connections, 5);
    assert_eq!(stop.dropped_logs, 0);
    let records = stored_logs(&stop).await;
    assert_eq!(records.len(), 5);
    for record in &records {
        assert_eq!(record.error_kind.as_deref(), Some(CUT_AT_SHUTDOWN), "{record:?}");
        assert_eq!(record.status, 200, "the answer had started");
    }
    drop(streams);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waiting_on_upstream_at_shutdown_is_logged_as_cut() {
    let no_grace = ConnectionLimits {
        shutdown_grace: Duration::ZERO,
        ..ConnectionLimits::default()
    };
    let h = Harness::start_serving(&[key("h-hang-")], |_| {}, no_grace).await;
    let request = h
        .http
        .post(h.url(&format!("/v1beta/models/{FLASH}:generateContent")))
        .header("x-goog-api-key", &h.proxy_key)
        .body(r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#)
        .send();
    let waiting = tokio::spawn(request);
    for _ in 0..500 {
        if !h.fake.requests().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(h.fake.requests().len(), 1, "upstream was called");
    let stop = h.stop_serving().await;
    assert_eq!((stop.stopped.cut_connections, stop.dropped_logs), (1, 0));
    let records = stored_logs(&stop).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, 503);
    assert_eq!(records[0].error_kind.as_deref(), Some(CUT_AT_SHUTDOWN));
    assert_eq!(records[0].attempts, 1, "the upstream call is in the record");
    waiting.abort();
}
