//! Fresh databases, the proxy binary as a child process, and its CLI.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Mutex;

/// One test at a time in this binary (see main.rs).
pub static SERIAL: Mutex<()> = Mutex::const_new(());

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_gemini-proxy")
}

/// A fresh database with the shipped migrations, dropped on drop.
pub type TestDb = store_postgres::testing::TestDb;

/// A test database for this binary's tests.
pub async fn test_db() -> TestDb {
    TestDb::create("gp_api").await
}

/// Creates a proxy key with the CLI and returns its secret.
pub fn create_proxy_key(db: &TestDb) -> String {
    let created = cli_json(db, &["proxy-keys", "create", "--name", "t", "--json"]);
    created["key"].as_str().expect("key").to_string()
}

/// Runs the CLI against `db` over a direct connection; panics with its output when it
/// fails.
pub fn cli(db: &TestDb, args: &[&str]) -> String {
    cli_with(&[("DATABASE_URL", db.url.as_str())], args)
}

/// Runs the CLI with the given store environment.
pub fn cli_with(env: &[(&str, &str)], args: &[&str]) -> String {
    let mut command = Command::new(bin());
    command
        .args(args)
        .env_remove("GEMINI_PROXY_DB")
        .env_remove("DATABASE_URL");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("run gemini-proxy");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "gemini-proxy {args:?} failed: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

pub fn cli_json(db: &TestDb, args: &[&str]) -> Value {
    serde_json::from_str(&cli(db, args)).expect("json output")
}

/// A running `gemini-proxy serve`, killed on drop.
pub struct Serve {
    pub child: Child,
    pub url: String,
}

impl Serve {
    pub fn start(db: &TestDb, upstream: &str, cache: &std::path::Path) -> Serve {
        let cache = cache.to_string_lossy().into_owned();
        Serve::start_with(&[
            ("DATABASE_URL", db.url.as_str()),
            ("GEMINI_BASE_URL", upstream),
            ("GEMINI_PROXY_KEY_CACHE", cache.as_str()),
        ])
    }

    /// `serve` with this store and upstream environment (refreshing every 500 ms).
    pub fn start_with(env: &[(&str, &str)]) -> Serve {
        let mut command = Command::new(bin());
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_remove("GEMINI_PROXY_DB")
            .env_remove("DATABASE_URL")
            .env("GEMINI_PROXY_REFRESH_MS", "500")
            .env("GEMINI_PROXY_LOG", "warn");
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_default()
            .to_string();
        assert!(url.starts_with("http://"), "serve did not start: {line:?}");
        Serve { child, url }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A realistic-length upstream key carrying a fake-gemini behaviour marker.
pub fn key(label: &str) -> String {
    format!("AIzaSy{:0<33}", format!("{label}-x"))
}

pub async fn generate(http: &reqwest::Client, serve: &Serve, proxy_key: &str) -> u16 {
    let url = format!("{}/v1beta/models/gemini-2.5-flash:generateContent", serve.url);
    match http
        .post(url)
        .header("x-goog-api-key", proxy_key)
        .body("{}")
        .send()
        .await
    {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

/// Polls `check` every 100 ms for up to `secs` seconds; true once it held.
pub async fn eventually<F, Fut>(secs: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..secs * 10 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
