//! A proxy key's policy, as the operator sets it in the store: a key without
//! pass-through is refused there (403, the client's shape, nothing upstream, logged with
//! its id) and keeps generation; the proxy picks a change up at its next refresh.

use std::time::Duration;

use proxy_core::admin::{AdminStore, ProxyKeyUpdate};
use proxy_core::auth::{format_proxy_key, hash_proxy_key};
use proxy_core::policy::ProxyKeyPolicy;
use serde_json::Value;

use crate::harness::{FLASH, Harness, key};

/// GET `path` with `proxy_key` in `x-goog-api-key`, or as a bearer token.
async fn get(h: &Harness, path: &str, proxy_key: &str, bearer: bool) -> (u16, Value) {
    let request = h.http.get(h.url(path));
    let request = if bearer {
        request.bearer_auth(proxy_key)
    } else {
        request.header("x-goog-api-key", proxy_key)
    };
    let response = request.send().await.expect("proxy answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn generate_with(h: &Harness, proxy_key: &str) -> u16 {
    h.http
        .post(h.url(&format!("/v1beta/models/{FLASH}:generateContent")))
        .header("x-goog-api-key", proxy_key)
        .body(r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#)
        .send()
        .await
        .expect("proxy answers")
        .status()
        .as_u16()
}

/// Polls `path` until it answers `status` (a store change shows after a refresh).
async fn until_status(h: &Harness, path: &str, proxy_key: &str, status: u16) -> u16 {
    let mut seen = 0;
    for _ in 0..100 {
        seen = get(h, path, proxy_key, false).await.0;
        if seen == status {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_without_passthrough_is_refused_there_and_still_generates() {
    let h = Harness::start(&[key("good")]).await;
    let limited = format_proxy_key(&[0x6b; 24]);
    let limited_id = h
        .store
        .create_proxy_key_with_policy(
            "limited",
            &hash_proxy_key(&limited),
            None,
            &ProxyKeyPolicy {
                passthrough: false,
                ..ProxyKeyPolicy::default()
            },
        )
        .await
        .expect("proxy key created");
    // Created after the proxy started: it is known once generation works.
    let mut status = 0;
    for _ in 0..100 {
        status = generate_with(&h, &limited).await;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200, "generation is allowed");
    h.fake.clear_requests();

    for path in [
        "/v1beta/files/abc",
        "/v1beta/cachedContents",
        "/v1/tunedModels",
        "/v1beta/operations",
    ] {
        let (status, body) = get(&h, path, &limited, false).await;
        assert_eq!(status, 403, "{path}: {body}");
        let error = &body["error"];
        assert_eq!(error["status"], "PERMISSION_DENIED", "{path}: {body}");
        assert_eq!(error["code"], 403, "{path}: {body}");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains("pass-through routes"), "{path}: {body}");
    }
    let (status, body) = get(&h, "/v1beta/openai/files", &limited, true).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["type"], "permission_error", "{body}");
    assert_eq!(body["error"]["code"], "passthrough_denied", "{body}");
    assert!(h.fake.requests().is_empty(), "nothing went upstream");

    // The other key reaches the same routes: fake Gemini answers them itself.
    let (status, body) = get(&h, "/v1beta/cachedContents", &h.proxy_key, false).await;
    assert_eq!(status, 404, "fake Gemini's own 404: {body}");
    assert_eq!(h.fake.requests().len(), 1);

    let logs = h
        .logs_where(|rows| {
            rows.iter()
                .filter(|r| r.error_kind.as_deref() == Some("passthrough_denied"))
                .count()
                == 5
        })
        .await;
    for record in logs
        .iter()
        .filter(|r| r.error_kind.as_deref() == Some("passthrough_denied"))
    {
        assert_eq!(record.proxy_key_id, Some(limited_id), "{record:?}");
        assert_eq!(record.status, 403, "{record:?}");
        assert!(record.upstream_key_ids.is_empty(), "{record:?}");
    }

    // Allowed by the operator: the next refresh lets it through, and back.
    let allow = ProxyKeyUpdate {
        passthrough: Some(true),
        ..ProxyKeyUpdate::default()
    };
    assert!(
        h.store
            .update_proxy_key(limited_id, &allow)
            .await
            .expect("update")
    );
    assert_eq!(
        until_status(&h, "/v1beta/cachedContents", &limited, 404).await,
        404
    );
    let deny = ProxyKeyUpdate {
        passthrough: Some(false),
        ..ProxyKeyUpdate::default()
    };
    assert!(h.store.update_proxy_key(limited_id, &deny).await.expect("update"));
    assert_eq!(
        until_status(&h, "/v1beta/cachedContents", &limited, 403).await,
        403
    );
}
