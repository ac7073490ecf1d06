//! `serve` and the CLI on Supabase's REST API (the PostgREST stand-in on a real
//! PostgreSQL with the shipped migrations), unchanged from the other stores.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use postgrest_test_server::{PostgrestTestServer, SERVICE_ROLE_TOKEN};

use crate::harness::{SERIAL, bin, cli_with, eventually, key, test_db};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_cli_work_over_supabase_rest() {
    let _serial = SERIAL.lock().await;
    let fake = fake_gemini::FakeGemini::start().await.expect("fake starts");
    let db = test_db().await;
    let rest = PostgrestTestServer::start(&db.url)
        .await
        .expect("rest server starts");
    let base = rest.url();
    let env = [
        ("SUPABASE_URL", base.as_str()),
        ("SUPABASE_SERVICE_ROLE_KEY", SERVICE_ROLE_TOKEN),
    ];
    cli_with(&env, &["keys", "add", &key("i-invalid-"), &key("good")]);
    let created: serde_json::Value = serde_json::from_str(&cli_with(
        &env,
        &["proxy-keys", "create", "--name", "t", "--json"],
    ))
    .expect("json");
    let proxy_key = created["key"].as_str().expect("key").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .envs(env)
        .env_remove("DATABASE_URL")
        .env("GEMINI_BASE_URL", fake.base_url())
        .env("GEMINI_PROXY_KEY_CACHE", dir.path().join("cache.json"))
        .env("GEMINI_PROXY_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let url = line.trim().trim_start_matches("listening on ").to_string();
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let response = http
            .post(format!("{url}/v1beta/models/gemini-2.5-flash:generateContent"))
            .header("x-goog-api-key", &proxy_key)
            .body("{}")
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), 200);
    }
    // Logs and the invalid mark reach the database through the REST API.
    let logged = eventually(20, || async { db.count_logs().await == 3 }).await;
    let keys = cli_with(&env, &["keys", "list", "--json"]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(logged, "expected 3 log rows, found {}", db.count_logs().await);
    assert!(keys.contains("API_KEY_INVALID"), "{keys}");
    assert!(!keys.contains(&key("good")), "a key leaked into the CLI output");
}
