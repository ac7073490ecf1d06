//! A proxy-key holder cannot mark upstream keys invalid: text a client chooses that
//! Google echoes into an error, and 401s of OAuth-only methods, are the request's fault.

use crate::harness::{FLASH, Harness, key};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_chosen_text_in_upstream_errors_marks_no_key() {
    let keys = [key("a"), key("b"), key("c")];
    let h = Harness::start(&keys).await;
    let generate = format!("/v1beta/models/{FLASH}:generateContent");
    // More probes of each kind than there are keys: were any of them to mark its key,
    // the pool would be empty by the end.
    for _ in 0..=keys.len() {
        for field in ["API key not valid", "Consumer has been suspended"] {
            let body = format!(r#"{{"contents":[],"{field}":1}}"#);
            let response = h.post(&generate, &body).await;
            assert_eq!(response.status(), 400);
            let text = response.text().await.expect("body");
            assert!(text.contains("Unknown name"), "{text}");
        }
        for (path, status) in [
            ("/v1beta/files/API%20key%20not%20valid", 403),
            ("/v1beta/files/has%20been%20suspended", 403),
            ("/v1beta/corpora", 401),
        ] {
            let response = h
                .http
                .get(h.url(path))
                .header("x-goog-api-key", &h.proxy_key)
                .send()
                .await
                .expect("proxy answers");
            assert_eq!(response.status(), status, "{path}");
            let body: serde_json::Value = response.json().await.expect("json");
            assert_eq!(body["error"]["code"], status, "upstream's error is passed on");
        }
    }
    // The pool keeps serving with every key.
    h.fake.clear_requests();
    for _ in 0..keys.len() {
        assert_eq!(h.generate(FLASH).await.status(), 200);
    }
    assert_eq!(
        h.keys_used().len(),
        keys.len(),
        "one attempt each: no key skipped"
    );
    let rows = h.settled_key_rows().await;
    assert!(
        rows.iter()
            .all(|r| r.invalid_reason.is_none() && r.cooldowns.is_empty()),
        "{rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_invalid_answers_marks_at_most_half_the_pool() {
    let keys = [
        key("a-invalid-"),
        key("b-invalid-"),
        key("c-invalid-"),
        key("d-invalid-"),
    ];
    let h = Harness::start(&keys).await;
    assert_eq!(h.generate(FLASH).await.status(), 503, "every key was rejected");
    let state = h.runtime_state();
    let now = proxy_axum::unix_ms();
    let suspended = state.marking_suspended(now);
    assert!(suspended.is_some(), "the pool says marking is suspended");
    let health = h
        .http
        .get(h.url("/healthz"))
        .send()
        .await
        .expect("healthz answers");
    assert_eq!(health.status(), 200, "two keys still serve");
    let health: serde_json::Value = health.json().await.unwrap_or_default();
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(
        health["problems"].to_string().contains("marking suspended"),
        "{health}"
    );
    let rows = h.settled_key_rows().await;
    let marked = rows.iter().filter(|r| r.invalid_reason.is_some()).count();
    assert_eq!(marked, 2, "{rows:?}");
}
