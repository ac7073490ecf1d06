//! No upstream key, whole or in part, ever reaches a client or a log record.

use proxy_core::admin::{AdminStore, LogQuery};

use crate::harness::{FLASH, Harness, key};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_keys_never_appear_in_responses_or_logs() {
    let keys = [
        key("s-suspended-"),
        key("i-invalid-"),
        key("q-r429m-"),
        key("o-r503-"),
        key("good"),
    ];
    let h = Harness::start(&keys).await;
    let mut seen = String::new();
    let calls = [
        ("POST", format!("/v1beta/models/{FLASH}:generateContent"), "{}"),
        (
            "POST",
            format!("/v1beta/models/{FLASH}:streamGenerateContent?alt=sse"),
            "{}",
        ),
        (
            "POST",
            "/v1beta/models/gemini-overloaded:generateContent".to_string(),
            "{}",
        ),
        ("POST", format!("/v1beta/models/{FLASH}:generateContent"), "{bad"),
        ("GET", "/v1beta/models".to_string(), ""),
        ("GET", "/v1beta/nothing/here".to_string(), ""),
    ];
    for (method, path, body) in calls {
        let request = match method {
            "GET" => h.http.get(h.url(&path)),
            _ => h.http.post(h.url(&path)).body(body),
        };
        let response = request
            .header("x-goog-api-key", &h.proxy_key)
            .send()
            .await
            .expect("answer");
        seen.push_str(&format!("{:?}", response.headers()));
        seen.push_str(&response.text().await.expect("body"));
    }
    // The suspended key's 403 echoes the key; if every other key failed we would pass
    // that text on, so make it the only answer once.
    let only_suspended = Harness::start(&[keys[0].clone()]).await;
    let response = only_suspended.generate(FLASH).await;
    seen.push_str(&response.text().await.expect("body"));
    let records = h.logs(6).await;
    seen.push_str(&serde_json::to_string(&records).expect("json"));
    seen.push_str(&serde_json::to_string(&only_suspended.logs(1).await).expect("json"));
    seen.push_str(&serde_json::to_string(&h.store.list_keys().await.expect("keys")).expect("json"));
    let all_logs = h
        .store
        .list_logs(&LogQuery {
            limit: 1000,
            ..LogQuery::default()
        })
        .await
        .expect("logs");
    seen.push_str(&format!("{all_logs:?}"));
    for secret in &keys {
        assert!(!seen.contains(secret.as_str()), "a key leaked");
        // Not even the distinguishing middle part of it.
        assert!(
            !seen.contains(&secret[4..secret.len() - 4]),
            "part of a key leaked"
        );
    }
    // And upstream always got keys in the header, never the URL.
    assert!(h.fake.requests().iter().all(|r| r.api_key.is_some()));
}
