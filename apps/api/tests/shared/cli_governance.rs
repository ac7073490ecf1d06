//! The governance commands of the real binary on a SQLite file (no PostgreSQL, so no
//! `SERIAL` lock): proxy keys created with every limit, updated and cleared, renamed
//! and deleted; `proxy-keys usage` after log records; upstream keys' limits with and
//! without `--model`; model-off cooldowns in `keys list`; and bad input refused with
//! the flag named.

use std::path::Path;
use std::process::Command;

use proxy_core::admin::{day_start_ms, month_start_ms};
use proxy_core::log::LogRecord;
use proxy_core::platform::{KeyStore, LogSink};
use proxy_core::pool::StateChange;
use serde_json::{Value, json};
use store_sqlite::SqliteStore;

use crate::harness::{bin, cli_with};

fn cli(path: &Path, args: &[&str]) -> String {
    let db = path.to_str().expect("utf-8 path");
    cli_with(&[("GEMINI_PROXY_DB", db)], args)
}

fn cli_json(path: &Path, args: &[&str]) -> Value {
    let out = cli(path, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
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

/// The JSON row of proxy key `id` in `proxy-keys list --json`.
fn listed(path: &Path, id: i64) -> Value {
    let rows = cli_json(path, &["proxy-keys", "list", "--json"]);
    rows.as_array()
        .expect("an array")
        .iter()
        .find(|row| row["id"] == json!(id))
        .cloned()
        .unwrap_or_else(|| panic!("no proxy key {id} in {rows}"))
}

/// The policy fields of a JSON row.
fn policy(row: &Value) -> Value {
    let fields = [
        "passthrough",
        "models",
        "rpm",
        "tpm",
        "tokens_per_day",
        "budget_usd",
        "budget_period",
        "expires_at_ms",
        "expires_at",
    ];
    Value::Object(fields.iter().map(|f| (f.to_string(), row[*f].clone())).collect())
}

/// 2027-01-31T00:00:00Z
const EXPIRES_MS: u64 = 1_801_353_600_000;

#[tokio::test]
async fn proxy_keys_take_every_limit_and_update_clear_rename_and_delete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("proxy.db");

    let args = [
        "proxy-keys",
        "create",
        "--name",
        "governed",
        "--passthrough",
        "deny",
        "--models",
        "gemini-2.5-flash, gemini-2.0-*",
        "--rpm",
        "60",
        "--tpm",
        "100000",
        "--tokens-per-day",
        "2000000",
        "--budget-usd",
        "12.5",
        "--budget-period",
        "day",
        "--expires",
        "2027-01-31",
        "--json",
    ];
    let created = cli_json(&path, &args);
    let id = created["id"].as_i64().expect("id");
    let secret = created["secret"].as_str().expect("secret");
    assert!(secret.starts_with("gp-"), "{created}");
    assert_eq!(created["key"], created["secret"], "the older name stays");
    let full = json!({
        "passthrough": false,
        "models": ["gemini-2.5-flash", "gemini-2.0-*"],
        "rpm": 60,
        "tpm": 100000,
        "tokens_per_day": 2000000,
        "budget_usd": 12.5,
        "budget_period": "day",
        "expires_at_ms": EXPIRES_MS,
        "expires_at": "2027-01-31T00:00:00Z",
    });
    assert_eq!(policy(&created), full, "create --json says the policy");
    assert_eq!(policy(&listed(&path, id)), full, "list --json shows it");
    assert_eq!(
        listed(&path, id)["prefix"],
        json!(&secret[..9]),
        "list --json has the prefix"
    );

    // Plain create: the secret alone on the first line of stdout.
    let plain = cli(&path, &["proxy-keys", "create", "--name", "plain", "--rpm", "5"]);
    let first = plain.lines().next().unwrap_or_default();
    assert!(first.starts_with("gp-") && !first.contains(' '), "{plain}");
    assert_eq!(plain.lines().count(), 1, "{plain}");

    let table = cli(&path, &["proxy-keys", "list"]);
    // The list shows each secret's first 9 characters, never more.
    let prefix = format!("{}…", &secret[..9]);
    assert!(
        !table.contains(&secret[..10]) && !table.contains(&first[..10]),
        "{table}"
    );
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows[1],
        [
            "1",
            "governed",
            prefix.as_str(),
            "active",
            "denied",
            "gemini-2.5-flash,gemini-2.0-*",
            "rpm=60,tpm=100000,tokens/day=2000000,budget=$12.50/day",
            "2027-01-31T00:00:00Z",
            rows[1][8],
        ],
        "{table}"
    );
    assert_eq!(
        [&rows[2][..2], &rows[2][3..8]].concat(),
        ["2", "plain", "active", "allowed", "any", "rpm=5", "never"]
    );
    assert_eq!(rows[2][2], format!("{}…", &first[..9]), "the plain key's prefix");

    // Update several at once; the others stay.
    let said = cli(
        &path,
        &[
            "proxy-keys",
            "update",
            "1",
            "--rpm",
            "30",
            "--budget-period",
            "month",
            "--models",
            "gemini-2.5-pro",
            "--expires",
            "2027-01-31T12:30:00+02:00",
        ],
    );
    assert!(
        said.contains("models gemini-2.5-pro")
            && said.contains("rpm=30")
            && said.contains("budget=$12.50/month")
            && said.contains("2027-01-31T10:30:00Z"),
        "{said}"
    );
    let row = listed(&path, id);
    assert_eq!(
        (&row["rpm"], &row["tpm"], &row["budget_period"], &row["models"]),
        (
            &json!(30),
            &json!(100000),
            &json!("month"),
            &json!(["gemini-2.5-pro"])
        ),
        "{row}"
    );
    assert_eq!(
        row["expires_at_ms"],
        json!(EXPIRES_MS + 10 * 3_600_000 + 1_800_000)
    );

    // 0 and none clear; "" clears the model list.
    cli(
        &path,
        &[
            "proxy-keys",
            "update",
            "1",
            "--rpm",
            "0",
            "--tpm",
            "none",
            "--tokens-per-day",
            "0",
            "--budget-usd",
            "none",
            "--expires",
            "none",
            "--models",
            "",
            "--passthrough",
            "allow",
        ],
    );
    let cleared = json!({
        "passthrough": true,
        "models": [],
        "rpm": null,
        "tpm": null,
        "tokens_per_day": null,
        "budget_usd": null,
        "budget_period": "month",
        "expires_at_ms": null,
        "expires_at": null,
    });
    assert_eq!(policy(&listed(&path, id)), cleared, "every limit cleared");
    cli(&path, &["proxy-keys", "update", "1", "--models", "none"]);
    assert_eq!(listed(&path, id)["models"], json!([]));

    // Rename and delete; a deleted key's log records stay.
    let said = cli(&path, &["proxy-keys", "rename", "1", "renamed"]);
    assert_eq!(said, "proxy key 1 renamed to renamed\n");
    assert_eq!(listed(&path, id)["name"], json!("renamed"));
    let store = SqliteStore::open(&path).expect("open");
    let mut used = record("kept", proxy_axum::unix_ms() - 1_000, 2);
    used.total_tokens = Some(10);
    store.write_logs(&[used]).await.expect("write");
    let said = cli(&path, &["proxy-keys", "delete", "2"]);
    assert_eq!(said, "proxy key 2 deleted (its log records stay)\n");
    let ids: Vec<i64> = cli_json(&path, &["proxy-keys", "list", "--json"])
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .collect();
    assert_eq!(ids, vec![1]);
    let logs = cli_json(&path, &["logs", "list", "--proxy-key", "2", "--json"]);
    assert_eq!(logs[0]["id"], json!("kept"), "{logs}");
    let loaded = store.load().await.expect("load").proxy_keys;
    assert_eq!(loaded.len(), 1, "the proxy no longer knows the deleted key");

    for (args, says) in [
        (&["proxy-keys", "delete", "2"][..], "no proxy key with id 2"),
        (&["proxy-keys", "rename", "9", "x"][..], "no proxy key with id 9"),
        (&["proxy-keys", "rename", "1", " "][..], "must not be empty"),
        (
            &["proxy-keys", "update", "9", "--rpm", "1"][..],
            "no proxy key with id 9",
        ),
        (&["proxy-keys", "usage", "9"][..], "no proxy key with id 9"),
    ] {
        let error = cli_fails(&path, args);
        assert!(error.contains(says), "{args:?}: {error}");
    }
}

fn record(id: &str, started_at_ms: u64, proxy_key: i64) -> LogRecord {
    LogRecord {
        id: id.into(),
        started_at_ms,
        proxy_key_id: Some(proxy_key),
        route: "generateContent".into(),
        api: "gemini".into(),
        status: 200,
        attempts: 1,
        latency_ms: 100,
        model: Some("gemini-2.5-flash".into()),
        ..LogRecord::default()
    }
}

#[tokio::test]
async fn proxy_keys_usage_reports_today_the_month_and_what_each_limit_leaves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("proxy.db");
    let args = [
        "proxy-keys",
        "create",
        "--name",
        "app",
        "--rpm",
        "10",
        "--tpm",
        "5000",
        "--tokens-per-day",
        "1000",
        "--budget-usd",
        "2",
        "--expires",
        "2999-01-01",
    ];
    cli(&path, &args);
    cli(&path, &["proxy-keys", "create", "--name", "free"]);

    let now = proxy_axum::unix_ms();
    let (day, month) = (day_start_ms(now), month_start_ms(now));
    let mut recent = record("1", now - 1_000, 1);
    (recent.total_tokens, recent.cost_usd) = (Some(100), Some(0.25));
    let mut earlier_today = record("2", day.max(now - 3_600_000), 1);
    (earlier_today.total_tokens, earlier_today.cost_usd) = (Some(200), None);
    // Yesterday, in this month unless today is the 1st.
    let mut yesterday = record("3", day - 1_000, 1);
    (yesterday.total_tokens, yesterday.cost_usd) = (Some(400), Some(1.0));
    let other_key = record("4", now - 1_000, 2);
    let store = SqliteStore::open(&path).expect("open");
    store
        .write_logs(&[recent, earlier_today, yesterday, other_key])
        .await
        .expect("write");
    let last_minute = if day.max(now - 3_600_000) >= now - 60_000 {
        2
    } else {
        1
    };
    let in_month = day - 1_000 >= month;

    let usage = cli_json(&path, &["proxy-keys", "usage", "1", "--json"]);
    assert_eq!(usage["id"], json!(1), "one key: one object");
    assert_eq!(
        (
            &usage["today"]["requests"],
            &usage["today"]["tokens"],
            &usage["today"]["cost_usd"]
        ),
        (&json!(2), &json!(300), &json!(0.25)),
        "{usage}"
    );
    let month_expected = if in_month { (3, 700, 1.25) } else { (2, 300, 0.25) };
    assert_eq!(
        (
            &usage["month"]["requests"],
            &usage["month"]["tokens"],
            &usage["month"]["cost_usd"]
        ),
        (
            &json!(month_expected.0),
            &json!(month_expected.1),
            &json!(month_expected.2)
        ),
        "{usage}"
    );
    let limits = usage["limits"].as_array().expect("limits");
    let kinds: Vec<&str> = limits.iter().filter_map(|l| l["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["rpm", "tpm", "tokens_per_day", "budget", "expires"],
        "{usage}"
    );
    assert_eq!(limits[0]["limit"], json!(10));
    assert_eq!(limits[0]["last_minute"], json!(last_minute));
    assert_eq!(
        (&limits[2]["used"], &limits[2]["left"]),
        (&json!(300), &json!(700)),
        "tokens per day: {usage}"
    );
    assert_eq!(limits[2]["resets_at_ms"], json!(day + 86_400_000));
    assert_eq!(
        (
            &limits[3]["period"],
            &limits[3]["used_usd"],
            &limits[3]["left_usd"]
        ),
        (
            &json!("month"),
            &json!(month_expected.2),
            &json!(2.0 - month_expected.2)
        ),
        "budget: {usage}"
    );
    assert_eq!(limits[4]["expired"], json!(false));

    let text = cli(&path, &["proxy-keys", "usage"]);
    assert!(text.starts_with("proxy key 1 (app): active\n"), "{text}");
    for line in [
        "  today (since ",
        "): 2 requests, 300 tokens, $0.25\n",
        &format!("  rpm: 10 per minute ({last_minute} in the last 60 s)\n"),
        "  tpm: 5000 tokens per minute (",
        "  tokens per day: 1000, used 300, left 700 (resets ",
        "  budget: $2.00 per month, used ",
        "  expires: 2999-01-01T00:00:00Z (in ",
        "proxy key 2 (free): active\n",
        "  no limits\n",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    let all = cli_json(&path, &["proxy-keys", "usage", "--json"]);
    assert_eq!(all.as_array().map(Vec::len), Some(2), "every key: an array");
    assert_eq!(all[1]["today"]["requests"], json!(1));
}

#[tokio::test]
async fn upstream_keys_take_limits_for_every_model_and_per_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("proxy.db");
    let said = cli(
        &path,
        &[
            "keys",
            "add",
            "AIzaSyTESTtestTESTtestTESTtestAAAA1111",
            "--name",
            "a",
            "--rpm",
            "10",
            "--rpd",
            "500",
        ],
    );
    assert_eq!(said, "added key 1 (AIza…1111, limits rpm=10,rpd=500)\n");
    cli(
        &path,
        &[
            "keys",
            "add",
            "AIzaSyTESTtestTESTtestTESTtestBBBB2222",
            "--name",
            "b",
            "--model",
            "gemini-2.5-pro",
            "--tpm",
            "1000",
        ],
    );
    cli(&path, &["keys", "add", "AIzaSyTESTtestTESTtestTESTtestCCCC3333"]);
    let said = cli(
        &path,
        &[
            "keys",
            "update",
            "1",
            "--model",
            "models/gemini-2.5-pro",
            "--rpm",
            "2",
            "--rpd",
            "50",
        ],
    );
    assert_eq!(
        said,
        "key 1 limits: rpm=10,rpd=500; gemini-2.5-pro: rpm=2,rpd=50\n"
    );
    let said = cli(&path, &["keys", "update", "1", "--rpd", "0", "--tpm", "250000"]);
    assert_eq!(
        said,
        "key 1 limits: rpm=10,tpm=250000; gemini-2.5-pro: rpm=2,rpd=50\n"
    );
    let said = cli(
        &path,
        &["keys", "update", "2", "--model", "gemini-2.5-pro", "--tpm", "0"],
    );
    assert_eq!(said, "key 2 limits: none\n", "an emptied model entry goes");

    let keys = cli_json(&path, &["keys", "list", "--json"]);
    assert_eq!(
        keys[0]["limits"],
        json!({
            "all_models": {"rpm": 10, "tpm": 250000, "rpd": null},
            "models": {"gemini-2.5-pro": {"rpm": 2, "tpm": null, "rpd": 50}},
        }),
        "{keys}"
    );
    assert_eq!(keys[1]["limits"]["models"], json!({}));
    assert!(!keys.to_string().contains("TESTtest"), "never the secret: {keys}");

    // What the pool loads, and a model off for key 1 until midnight Pacific.
    let store = SqliteStore::open(&path).expect("open");
    let loaded = store.load().await.expect("load").keys;
    assert_eq!(loaded[0].0.limits.for_model("gemini-2.5-pro").rpm, Some(2));
    let until = proxy_axum::unix_ms() + 3_600_000;
    store
        .save_state(&[
            StateChange::ModelOff {
                key_id: 1,
                model: "gemini-2.5-pro".into(),
                until_ms: until,
            },
            StateChange::Cooldown {
                key_id: 1,
                model: "gemini-2.5-flash".into(),
                until_ms: until,
            },
        ])
        .await
        .expect("save");
    let table = cli(&path, &["keys", "list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].contains("LIMITS") && lines[0].contains("COOLDOWNS"),
        "{table}"
    );
    assert!(
        lines[1].contains("rpm=10,tpm=250000; gemini-2.5-pro: rpm=2,rpd=50")
            && lines[1].contains("gemini-2.5-flash until ")
            && lines[1].contains("off today: gemini-2.5-pro (quota 0) until "),
        "{table}"
    );
    assert!(!lines[1].contains("off today: gemini-2.5-flash"), "{table}");
    assert_eq!(
        cli_json(&path, &["keys", "list", "--json"])[0]["off_models"],
        json!(["gemini-2.5-pro"])
    );

    for (args, says) in [
        (&["keys", "update", "1"][..], "nothing to change for key 1"),
        (&["keys", "update", "1", "--model", "x"][..], "nothing to change"),
        (
            &["keys", "update", "9", "--rpm", "1"][..],
            "no upstream key with id 9",
        ),
        (&["keys", "update", "1", "--rpm", "-1"][..], "--rpm"),
        (&["keys", "update", "1", "--rpd", "ten"][..], "--rpd"),
    ] {
        let error = cli_fails(&path, args);
        assert!(error.contains(says), "{args:?}: {error}");
    }
}

#[tokio::test]
async fn bad_governance_input_is_refused_naming_the_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("proxy.db");
    fn create<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["proxy-keys", "create", "--name", "x"];
        args.extend_from_slice(extra);
        args
    }
    for (extra, flag) in [
        (&["--rpm", "-5"][..], "--rpm"),
        (&["--tpm", "1.5"][..], "--tpm"),
        (&["--tokens-per-day", "lots"][..], "--tokens-per-day"),
        (&["--budget-usd", "-1"][..], "--budget-usd"),
        (&["--budget-usd", "NaN"][..], "--budget-usd"),
        (&["--budget-usd", "inf"][..], "--budget-usd"),
        (&["--budget-period", "week"][..], "--budget-period"),
        (&["--expires", "next tuesday"][..], "--expires"),
        (&["--expires", "2027-02-30"][..], "--expires"),
        (&["--models", "gemini pro"][..], "--models"),
    ] {
        let error = cli_fails(&path, &create(extra));
        assert!(error.contains(flag), "{extra:?}: {error}");
    }
    let error = cli_fails(&path, &["proxy-keys", "create", "--name", " "]);
    assert!(error.contains("--name"), "{error}");
    assert!(!path.exists(), "refused input opens no store");

    // A period without a budget is fine: it waits for one.
    let created = cli_json(&path, &create(&["--budget-period", "day", "--json"]));
    assert_eq!(
        (&created["budget_period"], &created["budget_usd"]),
        (&json!("day"), &Value::Null)
    );
    let error = cli_fails(&path, &["proxy-keys", "update", "1"]);
    assert!(
        error.contains("nothing to change") && error.contains("--budget-usd"),
        "{error}"
    );
}
