//! The database stops under load and comes back: the proxy keeps serving from memory,
//! log records wait, and every one of them is written once it is back.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::harness::{SERIAL, Serve, cli, create_proxy_key, eventually, generate, key, test_db};

fn pg_cluster(action: &str) {
    let versions = std::fs::read_dir("/etc/postgresql").expect("a Debian PostgreSQL cluster");
    let version = versions
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .expect("a cluster version");
    let status = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", action])
        .status()
        .expect("pg_ctlcluster runs");
    assert!(status.success(), "pg_ctlcluster {action} failed");
}

/// Starts the cluster again even if the test fails half-way.
struct RestartGuard;

impl Drop for RestartGuard {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .args([
                "-c",
                "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
            ])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_restart_under_load_loses_no_log_row() {
    let _serial = SERIAL.lock().await;
    let fake = fake_gemini::FakeGemini::start().await.expect("fake starts");
    let db = test_db().await;
    let dir = tempfile::tempdir().expect("tempdir");
    cli(&db, &["keys", "add", &key("good")]);
    let proxy_key = create_proxy_key(&db);
    let serve = Arc::new(Serve::start(
        &db,
        &fake.base_url(),
        &dir.path().join("cache.json"),
    ));

    const REQUESTS: usize = 300;
    let done = Arc::new(AtomicUsize::new(0));
    let load = {
        let (serve, done, proxy_key) = (serve.clone(), done.clone(), proxy_key.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut failures = 0;
            for _ in 0..REQUESTS {
                if generate(&http, &serve, &proxy_key).await != 200 {
                    failures += 1;
                }
                done.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            failures
        })
    };
    assert!(eventually(60, || async { done.load(Ordering::SeqCst) >= 50 }).await);
    let _guard = RestartGuard;
    pg_cluster("stop");
    let during = done.load(Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let served_while_down = done.load(Ordering::SeqCst) - during;
    pg_cluster("start");
    let failures = load.await.expect("load task");
    assert_eq!(failures, 0, "requests failed while the database was away");
    assert!(
        served_while_down > 10,
        "the proxy stalled without its database ({served_while_down})"
    );
    let all_logged = eventually(60, || async { db.count_logs().await == REQUESTS as i64 }).await;
    assert!(
        all_logged,
        "expected {REQUESTS} log rows, found {}",
        db.count_logs().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_from_the_key_cache_while_the_database_is_down() {
    let _serial = SERIAL.lock().await;
    let fake = fake_gemini::FakeGemini::start().await.expect("fake starts");
    let db = test_db().await;
    let dir = tempfile::tempdir().expect("tempdir");
    cli(&db, &["keys", "add", &key("good")]);
    let proxy_key = create_proxy_key(&db);
    let cache = dir.path().join("cache.json");
    drop(Serve::start(&db, &fake.base_url(), &cache));
    assert!(cache.exists(), "serve wrote its key cache");

    let _guard = RestartGuard;
    pg_cluster("stop");
    let serve = Serve::start(&db, &fake.base_url(), &cache);
    assert_eq!(generate(&reqwest::Client::new(), &serve, &proxy_key).await, 200);
    drop(serve);
    // Without a cache it refuses to start, and says why.
    let output = Command::new(crate::harness::bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", &db.url)
        .env("GEMINI_PROXY_KEY_CACHE", dir.path().join("missing.json"))
        .output()
        .expect("run serve");
    pg_cluster("start");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no usable key cache") && stderr.contains("missing.json"),
        "{stderr}"
    );
}
