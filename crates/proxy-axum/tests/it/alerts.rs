//! `--alert-webhook` seen by a webhook: a real HTTP receiver on port 0 gets a key
//! marked invalid and every key cooling, retried after its own failures, debounced,
//! and never a secret.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;

use crate::harness::{FLASH, Harness, key};

#[derive(Clone, Default)]
struct Receiver {
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    /// Answers 500 to this many posts first.
    fail_first: Arc<Mutex<u32>>,
    posts: Arc<Mutex<u32>>,
}

async fn hook(State(r): State<Receiver>, body: axum::Json<serde_json::Value>) -> StatusCode {
    *r.posts.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    let mut fail = r.fail_first.lock().unwrap_or_else(|p| p.into_inner());
    if *fail > 0 {
        *fail -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    r.bodies.lock().unwrap_or_else(|p| p.into_inner()).push(body.0);
    StatusCode::OK
}

async fn receiver(fail_first: u32) -> (Receiver, String) {
    let r = Receiver::default();
    *r.fail_first.lock().unwrap_or_else(|p| p.into_inner()) = fail_first;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let app = Router::new().route("/hook", post(hook)).with_state(r.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, url)
}

impl Receiver {
    /// Waits (up to a minute on a loaded machine, no timed assertion) for an alert.
    async fn alert(&self, event: &str) -> serde_json::Value {
        for _ in 0..6_000 {
            let found = self
                .bodies
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .find(|b| b["event"] == event)
                .cloned();
            if let Some(found) = found {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no {event} alert arrived");
    }

    fn count(&self, event: &str) -> usize {
        let bodies = self.bodies.lock().unwrap_or_else(|p| p.into_inner());
        bodies.iter().filter(|b| b["event"] == event).count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_key_and_every_key_cooling_are_told_once_without_secrets() {
    // The webhook fails twice first: the alert still arrives, retried.
    let (hooked, url) = receiver(2).await;
    let keys = [key("w-invalid-"), key("w-r429m-")];
    let h = Harness::start_with(&keys, |config| {
        config.alert_webhooks = vec![url];
        config.alert_backoff = Duration::from_millis(10);
    })
    .await;
    // Key 1 is invalid, key 2 rate limited: the request fails; the next finds every
    // key cooling (the invalid one is out).
    assert_eq!(h.generate(FLASH).await.status(), 429);
    assert_eq!(h.generate(FLASH).await.status(), 429);
    assert_eq!(h.generate(FLASH).await.status(), 429);

    let invalid = hooked.alert("key_invalid").await;
    assert_eq!(invalid["key_id"], 1);
    let masked = invalid["key"].as_str().expect("the masked key");
    assert!(masked.contains('…'), "{masked}");
    assert!(
        invalid["text"]
            .as_str()
            .is_some_and(|t| t.contains("upstream key #1"))
    );
    let cooling = hooked.alert("all_keys_cooling").await;
    assert_eq!(cooling["model"], FLASH);
    assert!(cooling["retry_after_secs"].as_u64().is_some());
    // Two requests found every key cooling; the debounce sends one alert.
    h.logs(3).await;
    assert_eq!(hooked.count("all_keys_cooling"), 1);
    assert_eq!(hooked.count("key_invalid"), 1);
    assert!(
        *hooked.posts.lock().unwrap_or_else(|p| p.into_inner()) >= 4,
        "two failed posts were retried"
    );
    let everything =
        serde_json::to_string(&*hooked.bodies.lock().unwrap_or_else(|p| p.into_inner())).expect("json");
    for secret in keys.iter().chain([&h.proxy_key]) {
        assert!(!everything.contains(secret.as_str()), "a secret in an alert");
    }
}
