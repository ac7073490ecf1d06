//! What an operator does with the CLI reaches a running `serve` within a refresh.

use crate::harness::{SERIAL, Serve, cli, cli_json, create_proxy_key, eventually, generate, key, test_db};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_enable_clears_a_cooldown_in_a_running_serve() {
    let _serial = SERIAL.lock().await;
    let fake = fake_gemini::FakeGemini::start().await.expect("fake starts");
    let db = test_db().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // The first key answers 429 with RetryInfo 17 s, far longer than this test waits.
    let (limited, good) = (key("a-r429m-"), key("b-good"));
    cli(&db, &["keys", "add", &limited, "--name", "limited"]);
    cli(&db, &["keys", "add", &good, "--name", "good"]);
    let proxy_key = create_proxy_key(&db);
    let serve = Serve::start(&db, &fake.base_url(), &dir.path().join("cache.json"));
    let http = reqwest::Client::new();

    assert_eq!(generate(&http, &serve, &proxy_key).await, 200);
    // Wait until serve wrote the cooldown, so `enable` has something to clear (and the
    // pool has seen the store confirm it).
    let stored = eventually(10, || async {
        let keys = cli_json(&db, &["keys", "list", "--json"]);
        keys[0]["cooldowns"].as_array().is_some_and(|c| !c.is_empty())
    })
    .await;
    assert!(stored, "the cooldown never reached the database");
    fake.clear_requests();
    assert_eq!(generate(&http, &serve, &proxy_key).await, 200);
    let used: Vec<String> = fake.requests().into_iter().filter_map(|r| r.api_key).collect();
    assert_eq!(used, vec![good.clone()], "the cooling key is skipped");

    cli(&db, &["keys", "enable", "1"]);
    // Refreshes come every 500 ms; the cooldown had 17 s to go.
    let tried_again = eventually(8, || async {
        fake.clear_requests();
        generate(&http, &serve, &proxy_key).await;
        fake.requests().first().and_then(|r| r.api_key.clone()) == Some(limited.clone())
    })
    .await;
    assert!(tried_again, "serve kept skipping the key `keys enable` cleared");
}
