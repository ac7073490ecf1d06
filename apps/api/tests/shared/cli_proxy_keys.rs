//! `proxy-keys create`, `list`, `update` on a SQLite file, and a running `serve` taking
//! a pass-through change at its next refresh (no PostgreSQL, so no `SERIAL` lock).

use std::path::Path;
use std::process::Command;

use fake_gemini::FakeGemini;
use serde_json::{Value, json};

use crate::harness::{Serve, bin, cli_with, eventually, generate, key};

fn cli(path: &Path, args: &[&str]) -> String {
    let db = path.to_str().expect("utf-8 path");
    cli_with(&[("GEMINI_PROXY_DB", db)], args)
}

fn cli_json(path: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&cli(path, args)).expect("json output")
}

/// Runs the CLI expecting it to fail; returns its stderr.
fn cli_fails(path: &Path, args: &[&str]) -> String {
    let output = Command::new(bin())
        .args(args)
        .env_remove("DATABASE_URL")
        .env("GEMINI_PROXY_DB", path)
        .output()
        .expect("run gemini-proxy");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "gemini-proxy {args:?} succeeded: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}

/// (id, name, passthrough) of every key `list --json` shows.
fn listed(path: &Path) -> Vec<(i64, String, bool)> {
    let rows = cli_json(path, &["proxy-keys", "list", "--json"]);
    rows.as_array()
        .expect("an array")
        .iter()
        .map(|row| {
            (
                row["id"].as_i64().expect("id"),
                row["name"].as_str().expect("name").to_string(),
                row["passthrough"].as_bool().expect("passthrough"),
            )
        })
        .collect()
}

#[tokio::test]
async fn proxy_keys_are_created_listed_and_updated_with_their_passthrough() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("proxy.db");

    let open = cli_json(&path, &["proxy-keys", "create", "--name", "open", "--json"]);
    assert_eq!(open["passthrough"], json!(true), "allowed by default: {open}");
    let args = [
        "proxy-keys",
        "create",
        "--name",
        "limited",
        "--passthrough",
        "deny",
        "--json",
    ];
    let limited = cli_json(&path, &args);
    assert_eq!(limited["passthrough"], json!(false), "{limited}");
    assert!(limited["key"].as_str().is_some_and(|k| k.starts_with("gp-")));
    assert_eq!(
        listed(&path),
        vec![(1, "open".into(), true), (2, "limited".into(), false)]
    );

    let table = cli(&path, &["proxy-keys", "list"]);
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows[0],
        [
            "ID",
            "NAME",
            "PREFIX",
            "STATUS",
            "PASSTHROUGH",
            "MODELS",
            "LIMITS",
            "EXPIRES",
            "CREATED"
        ],
        "{table}"
    );
    let prefix = |key: &serde_json::Value| format!("{}…", &key["key"].as_str().unwrap_or_default()[..9]);
    assert_eq!(
        rows[1][..5],
        ["1", "open", &prefix(&open), "active", "allowed"],
        "{table}"
    );
    assert_eq!(
        rows[2][..5],
        ["2", "limited", &prefix(&limited), "active", "denied"],
        "{table}"
    );

    let said = cli(&path, &["proxy-keys", "update", "2", "--passthrough", "allow"]);
    assert_eq!(said, "proxy key 2: pass-through allowed\n");
    let said = cli(&path, &["proxy-keys", "update", "1", "--passthrough", "deny"]);
    assert_eq!(said, "proxy key 1: pass-through denied\n");
    assert_eq!(
        listed(&path),
        vec![(1, "open".into(), false), (2, "limited".into(), true)]
    );

    // Nothing to change: says what can be, fails, and opens no store.
    let fresh = dir.path().join("never-created.db");
    let error = cli_fails(&fresh, &["proxy-keys", "update", "1"]);
    assert!(
        error.contains("nothing to change") && error.contains("--passthrough allow|deny"),
        "{error}"
    );
    assert!(
        !fresh.exists(),
        "no database is created for a command that does nothing"
    );
    let error = cli_fails(&path, &["proxy-keys", "update", "99", "--passthrough", "deny"]);
    assert!(error.contains("no proxy key with id 99"), "{error}");
    let error = cli_fails(&path, &["proxy-keys", "update", "1", "--passthrough", "maybe"]);
    assert!(error.contains("allow") && error.contains("deny"), "{error}");
    assert_eq!(listed(&path).len(), 2, "failed commands changed nothing");
}

/// GET `/v1beta/cachedContents` with `proxy_key`: its status, and its error body.
async fn list_caches(http: &reqwest::Client, serve: &Serve, proxy_key: &str) -> (u16, Value) {
    let response = http
        .get(format!("{}/v1beta/cachedContents", serve.url))
        .header("x-goog-api-key", proxy_key)
        .send()
        .await
        .expect("serve answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_serve_applies_a_passthrough_change_at_its_next_refresh() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("proxy.db");
    let fake = FakeGemini::start().await.expect("fake gemini");
    cli(&path, &["keys", "add", &key("good")]);
    let args = [
        "proxy-keys",
        "create",
        "--name",
        "app",
        "--passthrough",
        "deny",
        "--json",
    ];
    let created = cli_json(&path, &args);
    let proxy_key = created["key"].as_str().expect("key").to_string();
    let db = path.to_string_lossy().into_owned();
    let upstream = fake.base_url();
    let serve = Serve::start_with(&[
        ("GEMINI_PROXY_DB", db.as_str()),
        ("GEMINI_BASE_URL", upstream.as_str()),
    ]);
    let http = reqwest::Client::new();

    let (status, body) = list_caches(&http, &serve, &proxy_key).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["status"], "PERMISSION_DENIED", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("pass-through routes"), "{body}");
    assert!(fake.requests().is_empty(), "nothing went upstream");
    assert_eq!(
        generate(&http, &serve, &proxy_key).await,
        200,
        "generation is allowed"
    );

    // fake-gemini has no cachedContents: once the call reaches it, the answer is its 404.
    cli(&path, &["proxy-keys", "update", "1", "--passthrough", "allow"]);
    assert!(
        eventually(10, || async {
            list_caches(&http, &serve, &proxy_key).await.0 == 404
        })
        .await,
        "the allowed key reaches upstream after a refresh"
    );
    cli(&path, &["proxy-keys", "update", "1", "--passthrough", "deny"]);
    assert!(
        eventually(10, || async {
            list_caches(&http, &serve, &proxy_key).await.0 == 403
        })
        .await,
        "denied again after a refresh"
    );
}
