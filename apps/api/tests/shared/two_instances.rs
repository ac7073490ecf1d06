//! Two proxies, one database: what one learns, the other skips within seconds.

use crate::harness::{SERIAL, Serve, cli, create_proxy_key, eventually, generate, key, test_db};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_cooldowns_disables_and_logs() {
    let _serial = SERIAL.lock().await;
    let fake = fake_gemini::FakeGemini::start().await.expect("fake starts");
    let db = test_db().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (limited, good) = (key("a-r429m-"), key("b-good"));
    cli(&db, &["keys", "add", &limited, "--name", "limited"]);
    cli(&db, &["keys", "add", &good, "--name", "good"]);
    let proxy_key = create_proxy_key(&db);
    let a = Serve::start(&db, &fake.base_url(), &dir.path().join("a.json"));
    let b = Serve::start(&db, &fake.base_url(), &dir.path().join("b.json"));
    let http = reqwest::Client::new();

    // A meets the 429 first (least recently used is the first key) and cools it down.
    assert_eq!(generate(&http, &a, &proxy_key).await, 200);
    let used: Vec<String> = fake.requests().into_iter().filter_map(|r| r.api_key).collect();
    assert_eq!(used, vec![limited.clone(), good.clone()]);
    let mut sent = 1;

    // B learns it through the database and goes straight to the good key.
    let mut b_skips = false;
    for _ in 0..100 {
        fake.clear_requests();
        sent += 1;
        let ok = generate(&http, &b, &proxy_key).await == 200;
        let used: Vec<String> = fake.requests().into_iter().filter_map(|r| r.api_key).collect();
        if ok && used == vec![good.clone()] {
            b_skips = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(b_skips, "B kept trying the key A saw cooling down");

    // Disabling the good key with the CLI stops both from using it.
    cli(&db, &["keys", "disable", "2"]);
    for serve in [&a, &b] {
        let mut refused = false;
        for _ in 0..100 {
            sent += 1;
            if generate(&http, serve, &proxy_key).await == 429 {
                refused = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(refused, "an instance still used the disabled key");
    }

    // Every request is logged exactly once, whichever instance served it.
    let logged = eventually(20, || async { db.count_logs().await == sent }).await;
    assert!(
        logged,
        "expected {sent} log rows, found {}",
        db.count_logs().await
    );
}
