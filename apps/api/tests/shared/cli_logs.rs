//! `logs stats` and `logs list` print exactly what an operator expects, for a known set
//! of records on a SQLite file (no PostgreSQL involved, so no `SERIAL` lock).

use proxy_core::admin::AdminStore;
use proxy_core::log::LogRecord;
use proxy_core::platform::LogSink;
use store_sqlite::SqliteStore;

use crate::harness::cli_with;

const HOUR_MS: u64 = 3_600_000;

fn now_ms() -> u64 {
    proxy_axum::unix_ms()
}

fn record(id: &str, started_at_ms: u64, model: Option<&str>, key: Option<i64>) -> LogRecord {
    LogRecord {
        id: id.into(),
        started_at_ms,
        route: "generateContent".into(),
        api: "gemini".into(),
        status: 200,
        attempts: 1,
        latency_ms: 100,
        model: model.map(Into::into),
        answered_key_id: key,
        upstream_key_ids: key.into_iter().collect(),
        ..LogRecord::default()
    }
}

/// Three keys (named, unnamed, removed), requests by two models, one with no model and
/// no key, and one older than the window.
async fn seeded(path: &std::path::Path) {
    let store = SqliteStore::open(path).expect("open");
    let alpha = store
        .add_key("AIzaSyTESTtestTESTtestTESTtestAAAA1111", "alpha")
        .await
        .expect("add");
    let unnamed = store
        .add_key("AIzaSyTESTtestTESTtestTESTtestBBBB2222", "")
        .await
        .expect("add");
    let removed = store
        .add_key("AIzaSyTESTtestTESTtestTESTtestCCCC3333", "gamma")
        .await
        .expect("add");
    let now = now_ms();
    let at = now - HOUR_MS;

    let mut ok = record("1", at, Some("flash"), Some(alpha));
    ok.cost_usd = Some(0.0123);
    (ok.prompt_tokens, ok.candidates_tokens, ok.thoughts_tokens) = (Some(10), Some(20), Some(5));
    (ok.cached_tokens, ok.total_tokens) = (Some(2), Some(37));
    let mut blocked = record("2", at + 1, Some("flash"), Some(alpha));
    blocked.error_kind = Some("blocked".into());
    blocked.prompt_tokens = Some(5);
    blocked.latency_ms = 301;
    let mut limited = record("3", at + 2, Some("pro"), Some(unnamed));
    limited.status = 429;
    limited.latency_ms = 50;
    let mut refused = record("4", at + 3, None, None);
    refused.status = 401;
    refused.latency_ms = 2;
    let mut by_removed = record("5", at + 4, Some("pro"), Some(removed));
    by_removed.total_tokens = Some(10);
    by_removed.cost_usd = Some(0.5);
    by_removed.latency_ms = 10;
    let mut too_old = record("0", now - 48 * HOUR_MS, Some("flash"), Some(alpha));
    too_old.prompt_tokens = Some(1_000);
    store
        .write_logs(&[ok, blocked, limited, refused, by_removed, too_old])
        .await
        .expect("write");
    assert!(store.remove_key(removed).await.expect("remove"));
}

fn cli(path: &std::path::Path, args: &[&str]) -> String {
    let db = path.to_str().expect("utf-8 path");
    cli_with(&[("GEMINI_PROXY_DB", db)], args)
}

#[tokio::test]
async fn logs_stats_prints_totals_by_model_and_by_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("proxy.db");
    seeded(&path).await;

    let text = cli(&path, &["logs", "stats"]);
    let expected = "\
BY     GROUP   REQUESTS  ERRORS  PROMPT  OUTPUT  THOUGHTS  CACHED  TOTAL  AVG_MS  COST_USD
all    total   5         3       15      20      5         2       47     92      $0.5123
model  flash   2         1       15      20      5         2       37     200     $0.0123
model  pro     2         1       0       0       0         0       10     30      $0.50
model  (none)  1         1       0       0       0         0       0      2       -
key    alpha   2         1       15      20      5         2       37     200     $0.0123
key    #2      1         1       0       0       0         0       0      50      -
key    #3      1         0       0       0       0         0       10     10      $0.50
key    (none)  1         1       0       0       0         0       0      2       -
";
    assert_eq!(text, expected, "logs stats, text");

    let json: serde_json::Value =
        serde_json::from_str(&cli(&path, &["logs", "stats", "--json"])).expect("json");
    let row = |group: &str, counts: [u64; 8], cost: f64| {
        let [requests, errors, prompt, candidates, thoughts, cached, total, avg] = counts;
        serde_json::json!({
            "group": group, "requests": requests, "errors": errors, "prompt_tokens": prompt,
            "candidates_tokens": candidates, "thoughts_tokens": thoughts,
            "cached_tokens": cached, "total_tokens": total, "avg_latency_ms": avg,
            "cost_usd": cost,
        })
    };
    let expected = serde_json::json!({
        "total": row("total", [5, 3, 15, 20, 5, 2, 47, 92], 0.0123 + 0.5),
        "by_model": [
            row("flash", [2, 1, 15, 20, 5, 2, 37, 200], 0.0123),
            row("pro", [2, 1, 0, 0, 0, 0, 10, 30], 0.5),
            row("(none)", [1, 1, 0, 0, 0, 0, 0, 2], 0.0),
        ],
        "by_key": [
            row("alpha", [2, 1, 15, 20, 5, 2, 37, 200], 0.0123),
            row("#2", [1, 1, 0, 0, 0, 0, 0, 50], 0.0),
            row("#3", [1, 0, 0, 0, 0, 0, 10, 10], 0.5),
            row("(none)", [1, 1, 0, 0, 0, 0, 0, 2], 0.0),
        ],
    });
    assert_eq!(json, expected, "logs stats --json");

    // An empty window: the total row alone, zeros.
    let empty = cli(&path, &["logs", "stats", "--since", "1ms"]);
    assert_eq!(
        empty,
        "BY   GROUP  REQUESTS  ERRORS  PROMPT  OUTPUT  THOUGHTS  CACHED  TOTAL  AVG_MS  COST_USD\n\
         all  total  0         0       0       0       0         0       0      0       -\n",
        "an empty window"
    );
}

/// A model name is the client's choice (it comes from the request path): control
/// characters in it must reach the operator's terminal escaped, not as escape sequences
/// that recolour, clear or rewrite the screen. JSON output escapes them by itself.
#[tokio::test]
async fn control_characters_from_clients_are_escaped_in_text_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("proxy.db");
    let hostile = "flash\u{1b}[2J\u{1b}]0;owned\u{7}\r\nfake row\u{7f}\u{9b}31m\u{202e}";
    let store = SqliteStore::open(&path).expect("open");
    store
        .write_logs(&[record("1", now_ms() - HOUR_MS, Some(hostile), None)])
        .await
        .expect("write");
    let escaped = r"flash\u{1b}[2J\u{1b}]0;owned\u{7}\r\nfake row\u{7f}\u{9b}31m\u{202e}";
    // (command, lines it prints, the line with the model)
    let tables: [(&[&str], usize, usize); 2] = [(&["logs", "list"], 2, 1), (&["logs", "stats"], 4, 2)];
    for (args, line_count, model_line) in tables {
        let text = cli(&path, args);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), line_count, "{args:?}: no line injected: {text:?}");
        assert!(
            !text
                .chars()
                .any(|c| c != '\n' && (c.is_control() || c == '\u{202e}')),
            "{args:?} prints raw control characters: {text:?}"
        );
        assert!(
            lines[model_line].contains(escaped),
            "{args:?} shows the name escaped: {text:?}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&cli(&path, &["logs", "list", "--json"])).expect("json");
    assert_eq!(json[0]["model"], hostile, "JSON keeps the exact name");
}

/// `logs verify` on records a writer linked: intact, then a stored field changed
/// behind the store's back and a record deleted make it fail and say where.
#[tokio::test]
async fn logs_verify_finds_a_changed_and_a_removed_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("proxy.db");
    let store = SqliteStore::open(&path).expect("open");
    let mut chain = proxy_core::log_chain::LogChain::new("w1");
    let now = now_ms();
    let mut records: Vec<LogRecord> = (0..5)
        .map(|i| record(&format!("v{i}"), now - HOUR_MS + i, Some("flash"), None))
        .collect();
    records.iter_mut().for_each(|r| chain.link(r, now));
    store.write_logs(&records).await.expect("write");
    let mut unlinked = record("old", now - 2 * HOUR_MS, Some("flash"), None);
    unlinked.status = 500;
    store.write_logs(&[unlinked]).await.expect("write");

    let intact = cli(&path, &["logs", "verify"]);
    assert!(
        intact.ends_with("5 records in 1 chains (1 without a link): intact\n"),
        "{intact}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&cli(&path, &["logs", "verify", "--since", "1d", "--json"])).expect("json");
    assert_eq!(json["chains"][0]["records"], 5);
    assert_eq!(
        json["chains"][0]["head"],
        records[4].chain_sha256.clone().unwrap_or_default()
    );

    let db = rusqlite::Connection::open(&path).expect("open the file");
    db.execute("UPDATE request_logs SET latency_ms = 1 WHERE id = 'v1'", [])
        .expect("tamper");
    db.execute("DELETE FROM request_logs WHERE id = 'v3'", [])
        .expect("tamper");
    let output = std::process::Command::new(crate::harness::bin())
        .args(["logs", "verify"])
        .env_remove("DATABASE_URL")
        .env("GEMINI_PROXY_DB", &path)
        .output()
        .expect("run gemini-proxy");
    assert!(!output.status.success(), "a broken chain fails the command");
    let text = String::from_utf8_lossy(&output.stdout);
    let chain_id = records[0].chain_id.clone().unwrap_or_default();
    assert!(
        text.contains(&format!(
            "{chain_id} #1 (request v1): changed after it was written"
        )),
        "{text}"
    );
    assert!(text.contains(&format!("{chain_id} #3: missing")), "{text}");
    assert!(text.contains("BROKEN"), "{text}");
}

/// The server log is plain text when stderr is not a terminal (a file, journald, a
/// container's log): no colour codes in it.
#[test]
fn the_server_log_has_no_colour_codes_off_a_terminal() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(crate::harness::bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("DATABASE_URL")
        .env_remove("NO_COLOR")
        .env("GEMINI_PROXY_DB", dir.path().join("proxy.db"))
        .env("GEMINI_PROXY_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("listening line");
    assert!(line.starts_with("listening on "), "{line}");
    // Up to the start's log line (written just after the listening line).
    let mut log = String::new();
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    while !log.contains("gemini-proxy serving") {
        let before = log.len();
        stderr.read_line(&mut log).expect("stderr");
        assert!(log.len() > before, "serve ended without its start line: {log}");
    }
    child.kill().expect("kill");
    let _ = child.wait();
    assert!(!log.contains('\u{1b}'), "colour codes in a piped log: {log:?}");
}
