//! The dashboard's page data on both server stores: the embedded SQLite file and
//! PostgreSQL (a fresh database with the shipped migrations; the Supabase store runs the
//! same SQL functions over REST and passes the same conformance tests).
//! Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth), as CI provides.

use gemini_proxy_web::data::{Range, Split};
use gemini_proxy_web::handlers::{actions, pages};
use proxy_core::admin::AdminStore;
use proxy_core::log::LogRecord;
use proxy_core::platform::LogSink;
use store_postgres::{ConnectOptions, PostgresStore};
use store_sqlite::SqliteStore;

use store_postgres::testing::TestDb;

#[tokio::test]
async fn dashboard_queries_work_on_postgres() {
    let db = TestDb::create("gp_web").await;
    let store = PostgresStore::connect_lazy(&db.url, ConnectOptions::default()).expect("store");
    dashboard_queries(&store).await;
    drop(store);
    drop(db);
}

#[tokio::test]
async fn dashboard_queries_work_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("proxy.db")).expect("store");
    dashboard_queries(&store).await;
}

/// Adds keys, writes three records (two now, one yesterday), and reads every page's data.
async fn dashboard_queries<S: AdminStore + LogSink>(store: &S) {
    let admin: &dyn AdminStore = store;
    let pasted =
        "AIzaSyPG-key-0000000000000000000000001\n\n  AIzaSyPG-key-0000000000000000000000002 \nAIza key\n";
    let added = actions::add_key_lines(admin, "pg", pasted, &Default::default())
        .await
        .expect("add keys");
    assert_eq!(
        (added.added, added.stored.len(), added.refused.clone()),
        (2, 0, vec![4])
    );
    // The same paste again: both keys are there already, said by line; nothing added.
    let again = actions::add_key_lines(admin, "pg", pasted, &Default::default())
        .await
        .expect("add keys");
    assert_eq!(again.added, 0);
    let lines: Vec<usize> = again.stored.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, vec![1, 3]);
    let now = proxy_axum::unix_ms();
    let keys = pages::key_views(admin, now).await.expect("keys");
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| k.row.last_used_ms.is_none()
        && k.today.requests == 0
        && !k.row.masked.contains("0000000000000000")));
    let proxy_key = admin
        .create_proxy_key("app", &"ab".repeat(32))
        .await
        .expect("proxy key");

    let first_key = keys[0].row.id;
    let first_label = format!("{} (#{first_key})", keys[0].row.name);
    let record = |id: &str, at: u64, latency_ms: u64, status: u16, cost: f64| LogRecord {
        id: id.into(),
        started_at_ms: at,
        proxy_key_id: Some(proxy_key),
        upstream_key_ids: vec![first_key],
        answered_key_id: Some(first_key),
        model: Some("gemini-2.0-flash".into()),
        route: "generateContent".into(),
        api: "gemini".into(),
        status,
        attempts: 1,
        latency_ms,
        prompt_tokens: Some(7),
        total_tokens: Some(9),
        cost_usd: Some(cost),
        ..LogRecord::default()
    };
    store
        .write_logs(&[
            record("web-1", now - 1000, 12, 200, 0.25),
            record("web-2", now - 500, 40, 503, 0.125),
            record("web-old", now - 2 * 86_400_000, 5, 200, 1.0),
        ])
        .await
        .expect("write logs");

    let overview = pages::overview_data(admin, Range::Hour, Split::Kind, now)
        .await
        .expect("overview");
    let t = &overview.totals;
    assert_eq!(
        (t.requests, t.errors, t.prompt_tokens),
        (2, 1, 14),
        "last hour's totals"
    );
    assert_eq!(t.cost_usd, 0.375, "the hour's cost");
    assert_eq!(
        (t.latency_p50_ms, t.latency_p95_ms),
        (12, 40),
        "nearest-rank percentiles"
    );
    assert_eq!(overview.buckets.len(), 60, "every minute of the hour");
    assert_eq!(
        overview.buckets.iter().map(|b| b.requests).sum::<u64>(),
        2,
        "the buckets add up to the total"
    );
    assert_eq!(
        overview
            .top_models
            .first()
            .map(|(label, c)| (label.as_str(), c.requests, c.cost_usd)),
        Some(("gemini-2.0-flash", 2, 0.375)),
        "cost per model"
    );
    assert_eq!(
        overview.top_keys.first().map(|(_, c)| c.cost_usd),
        Some(0.375),
        "cost per upstream key"
    );
    assert_eq!(
        overview.top_keys.first().map(|(label, _)| label.clone()),
        Some(first_label.clone())
    );
    assert_eq!(
        t.error_classes().upstream,
        1,
        "a 503 without a kind is an upstream error: {t:?}"
    );

    let per_model = pages::overview_data(admin, Range::Hour, Split::Model, now)
        .await
        .expect("overview per model");
    let series: Vec<(&str, u64, u64)> = per_model
        .series
        .iter()
        .map(|s| {
            let sum = |f: fn(&proxy_core::admin::UsageCell) -> u64| s.buckets.iter().map(f).sum::<u64>();
            (s.label.as_str(), sum(|b| b.requests), sum(|b| b.errors))
        })
        .collect();
    assert_eq!(series, vec![("gemini-2.0-flash", 2, 1)], "a series per model");
    assert!(per_model.series.iter().all(|s| s.buckets.len() == 60));
    let charts =
        leptos::prelude::Owner::new().with(|| gemini_proxy_web::views::overview::section(&per_model));
    assert!(
        charts.contains("Upstream errors per model") && !charts.contains("Client mistakes per model"),
        "a chart per error class the range has"
    );
    assert!(charts.contains("Latency p95 per model"));

    let days_ago = |d: u64| now - d * 86_400_000;
    let custom = Range::Custom {
        from_ms: days_ago(3),
        to_ms: days_ago(1),
    };
    let past = pages::overview_data(admin, custom, Split::Key, now)
        .await
        .expect("custom range");
    assert_eq!(
        past.totals.requests, 1,
        "only the old record is in the custom range"
    );
    // Two days of hours, one more when `from` falls inside an hour.
    assert!((48..=49).contains(&past.buckets.len()), "{}", past.buckets.len());
    assert_eq!(
        past.series.first().map(|s| s.label.clone()),
        Some(first_label.clone()),
        "a series per key, by name"
    );

    let keys = pages::key_views(admin, now).await.expect("keys");
    let used = keys.iter().find(|k| k.row.id == first_key).expect("first key");
    assert_eq!(used.row.last_used_ms, Some(now - 500));
    assert!(used.today.requests >= 2, "usage today counts this hour's records");
    assert!(used.today.cost_usd >= 0.375);

    let proxy_keys = pages::proxy_key_views(admin, now).await.expect("proxy keys");
    assert_eq!(proxy_keys.len(), 1);
    assert_eq!(
        proxy_keys[0].last_used_ms,
        Some(now - 500),
        "last used: the newest record's start"
    );
    let usage = &proxy_keys[0].usage;
    let old_this_month = now - 2 * 86_400_000 >= proxy_core::admin::month_start_ms(now);
    let (month_requests, month_cost) = if old_this_month { (3, 1.375) } else { (2, 0.375) };
    assert_eq!(
        (usage.month.requests, usage.month.cost_usd),
        (month_requests, month_cost),
        "this month (UTC) holds the old record when it started this month"
    );
    assert!(usage.today.requests >= 2 && usage.today.cost_usd >= 0.375);

    let (lines, daily) = pages::usage_data(admin, 7, now).await.expect("usage");
    assert_eq!(daily.len(), 7, "one chart bar per day");
    assert_eq!(daily.iter().map(|d| d.requests).sum::<u64>(), 3);
    assert_eq!(lines.iter().map(|l| l.cell.requests).sum::<u64>(), 3);
    assert_eq!(lines.iter().map(|l| l.cell.cost_usd).sum::<f64>(), 1.375);
    assert_eq!(
        daily.iter().map(|d| d.cost_usd).sum::<f64>(),
        1.375,
        "daily sums carry cost"
    );
    assert!(lines.windows(2).all(|w| w[0].day >= w[1].day), "newest day first");
    assert!(lines.iter().all(|l| l.key == first_label));

    let found = gemini_proxy_web::data::find_log(admin, "web-1", now - 1000)
        .await
        .expect("find");
    assert_eq!(found.map(|r| r.latency_ms), Some(12));
}
