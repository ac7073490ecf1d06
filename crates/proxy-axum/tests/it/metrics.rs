//! `GET /metrics` seen by a scraper: the request, attempt, token, key and stream
//! series after real traffic, bounded labels, no secret in any of it, the token, and
//! the separate listener.

use crate::harness::{FLASH, Harness, key};

/// The value of the sample `name{labels…}` (every given label matching), if present.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
        let all = labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        (metric == name && all).then(|| value.parse().ok()).flatten()
    })
}

async fn scrape(h: &Harness) -> String {
    let response = h.http.get(h.url("/metrics")).send().await.expect("answers");
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "Prometheus' text format"
    );
    response.text().await.expect("text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_shows_in_the_series_with_bounded_labels_and_no_secrets() {
    let keys = [key("m-r429m-"), key("good")];
    let h = Harness::start(&keys).await;
    for _ in 0..2 {
        assert_eq!(h.generate(FLASH).await.status(), 200);
    }
    let stream = h
        .post(
            &format!("/v1beta/models/{FLASH}:streamGenerateContent?alt=sse"),
            r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#,
        )
        .await;
    stream.text().await.expect("stream");
    assert_eq!(h.generate("my-own-model-4711").await.status(), 200);
    h.logs(4).await;

    let text = scrape(&h).await;
    let generated = sample(
        &text,
        "gemini_proxy_requests_total",
        &[
            ("route", "generateContent"),
            ("model", FLASH),
            ("status", "200"),
            ("proxy_key", "1"),
        ],
    );
    assert_eq!(generated, Some(2.0), "{text}");
    assert_eq!(
        sample(&text, "gemini_proxy_requests_total", &[("model", "other")]),
        Some(1.0),
        "a model the price table does not know is folded into other"
    );
    assert_eq!(
        sample(
            &text,
            "gemini_proxy_upstream_attempts_total",
            &[("model", FLASH), ("outcome", "rate_limited")]
        ),
        Some(1.0),
        "the first request met the 429 key; later ones skip it while it cools"
    );
    assert_eq!(
        sample(
            &text,
            "gemini_proxy_upstream_attempts_total",
            &[("model", FLASH), ("outcome", "ok")]
        ),
        Some(3.0)
    );
    let prompt = sample(
        &text,
        "gemini_proxy_tokens_total",
        &[("model", FLASH), ("kind", "prompt")],
    );
    assert_eq!(prompt, Some(3.0 * fake_gemini::PROMPT_TOKENS as f64));
    assert!(sample(&text, "gemini_proxy_cost_usd_total", &[("model", FLASH)]).is_some_and(|c| c > 0.0));
    assert_eq!(
        sample(&text, "gemini_proxy_keys", &[("state", "cooling")]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "gemini_proxy_keys", &[("state", "healthy")]),
        Some(1.0)
    );
    assert_eq!(sample(&text, "gemini_proxy_streams_active", &[]), Some(0.0));
    assert_eq!(
        sample(&text, "gemini_proxy_log_records_dropped_total", &[]),
        Some(0.0)
    );
    assert!(sample(&text, "gemini_proxy_log_queue_depth", &[]).is_some());
    for histogram in ["request_duration_seconds", "ttfb_seconds", "overhead_seconds"] {
        let count = sample(
            &text,
            &format!("gemini_proxy_{histogram}_count"),
            &[("model", FLASH)],
        );
        assert!(count.is_some_and(|c| c >= 2.0), "{histogram}: {count:?}");
    }
    for secret in keys.iter().chain([&h.proxy_key]) {
        assert!(!text.contains(secret.as_str()), "a secret in /metrics");
    }
    grafana_queries_only_existing_series(&text);
}

/// Every series `docs/grafana-dashboard.json` queries is one the proxy exports.
fn grafana_queries_only_existing_series(text: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/grafana-dashboard.json");
    let dashboard = std::fs::read_to_string(path).expect("the dashboard is in docs/");
    let json: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let panels = json["panels"].as_array().expect("panels");
    let mut queried = Vec::new();
    for expr in panels
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
    {
        let expr = expr["expr"].as_str().expect("a query");
        for (at, _) in expr.match_indices("gemini_proxy_") {
            let name: String = expr[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            queried.push(name);
        }
    }
    assert!(queried.len() >= 10, "{queried:?}");
    let exported: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for name in queried {
        assert!(
            exported.contains(&name.as_str()),
            "the dashboard queries {name}, which is not exported"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_token_is_asked_for() {
    let h = Harness::start_with(&[key("a")], |config| {
        config.metrics_token = Some("s3cret-scrape".into())
    })
    .await;
    let bare = h.http.get(h.url("/metrics")).send().await.expect("answers");
    assert_eq!(bare.status(), 401);
    let error: serde_json::Value = bare.json().await.expect("json");
    assert_eq!(error["error"]["status"], "UNAUTHENTICATED");
    let wrong = h
        .http
        .get(h.url("/metrics"))
        .bearer_auth("nope")
        .send()
        .await
        .expect("answers");
    assert_eq!(wrong.status(), 401);
    let right = h
        .http
        .get(h.url("/metrics"))
        .bearer_auth("s3cret-scrape")
        .send()
        .await
        .expect("answers");
    assert_eq!(right.status(), 200);
    assert!(right.text().await.expect("text").contains("gemini_proxy_keys"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_metrics_listener_metrics_are_only_there() {
    let h = Harness::start_with(&[key("a")], |config| {
        config.metrics_listen = Some("127.0.0.1:0".parse().expect("address"))
    })
    .await;
    let main = h.http.get(h.url("/metrics")).send().await.expect("answers");
    assert_eq!(main.status(), 404, "not on the main listener");
    let addr = h.metrics_addr().expect("a metrics listener");
    let own = h
        .http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("answers");
    assert_eq!(own.status(), 200);
    assert!(
        own.text()
            .await
            .expect("text")
            .contains("gemini_proxy_keys{state=\"healthy\"} 1")
    );
    let proxied = h
        .http
        .get(format!("http://{addr}/v1beta/models"))
        .send()
        .await
        .expect("answers");
    assert_eq!(proxied.status(), 404, "the metrics listener proxies nothing");
}

/// `streams_active` counts answers being streamed, not every body still on its way:
/// a plain generate answer whose second half is late is not a stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_active_counts_streams_only() {
    let h = Harness::start_with(&[key("a")], |config| config.admission.retry_empty = false).await;
    let slow = "gemini-2.5-flash-longstream";
    let mut plain = h.generate(slow).await;
    assert_eq!(plain.status(), 200);
    assert!(plain.chunk().await.expect("half the answer").is_some());
    let text = scrape(&h).await;
    assert_eq!(
        sample(&text, "gemini_proxy_streams_active", &[]),
        Some(0.0),
        "{text}"
    );

    let mut stream = h
        .post(
            &format!("/v1beta/models/{slow}:streamGenerateContent?alt=sse"),
            r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#,
        )
        .await;
    assert!(stream.chunk().await.expect("a first event").is_some());
    let text = scrape(&h).await;
    assert_eq!(
        sample(&text, "gemini_proxy_streams_active", &[]),
        Some(1.0),
        "{text}"
    );
    drop((plain, stream));
}
