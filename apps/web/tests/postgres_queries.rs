//! The dashboard's queries on PostgreSQL (fresh database with the shipped migrations),
//! so the pages work on the shared store too, not only on SQLite.
//! Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth), as CI provides.

use std::sync::Arc;

use gemini_proxy_web::data::Range;
use gemini_proxy_web::handlers::{actions, pages};
use proxy_core::admin::AdminStore;
use proxy_core::log::LogRecord;
use proxy_core::platform::LogSink;
use store_postgres::{ConnectOptions, PostgresStore};

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

struct TestDb {
    name: String,
    url: String,
}

impl TestDb {
    async fn create() -> TestDb {
        let name = format!("gp_web_{}", std::process::id());
        let admin = admin().await;
        // Two calls: one multi-statement batch runs as one transaction, and PostgreSQL
        // refuses DROP/CREATE DATABASE inside a transaction.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .expect("drop leftover database");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        store_postgres::apply_migrations(&url)
            .await
            .expect("migrations apply");
        TestDb { name, url }
    }

    async fn drop_db(self) {
        let _ = admin()
            .await
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .await;
    }
}

async fn admin() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(ADMIN_URL, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL must run at 127.0.0.1:5432 (user postgres, trust auth)");
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn dashboard_queries_work_on_postgres() {
    let db = TestDb::create().await;
    let store = Arc::new(PostgresStore::connect_lazy(&db.url, ConnectOptions::default()).expect("store"));
    let admin: &dyn AdminStore = store.as_ref();

    let added = actions::add_key_lines(
        admin,
        "pg",
        "AIzaSyPG-key-0000000000000000000000001\n\n  AIzaSyPG-key-0000000000000000000000002 \n",
    )
    .await
    .expect("add keys");
    assert_eq!(added, 2);
    let keys = pages::key_views(admin).await.expect("keys");
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter()
            .all(|k| k.last_used_ms.is_none() && !k.row.masked.contains("0000000000000000"))
    );

    let now = proxy_axum::unix_ms();
    let record = LogRecord {
        id: "pg-web-1".into(),
        started_at_ms: now - 1000,
        upstream_key_ids: vec![keys[0].row.id],
        answered_key_id: Some(keys[0].row.id),
        model: Some("gemini-2.0-flash".into()),
        route: "generateContent".into(),
        api: "gemini".into(),
        status: 200,
        attempts: 1,
        latency_ms: 12,
        prompt_tokens: Some(7),
        total_tokens: Some(9),
        ..LogRecord::default()
    };
    store.write_logs(&[record]).await.expect("write log");

    let overview = pages::overview_data(admin, Range::Hour, now)
        .await
        .expect("overview");
    assert_eq!(overview.totals.requests, 1);
    assert_eq!(overview.totals.prompt, 7);
    assert_eq!(
        overview.top_models.first().map(|r| r.group.as_str()),
        Some("gemini-2.0-flash")
    );
    let keys = pages::key_views(admin).await.expect("keys");
    assert!(keys.iter().any(|k| k.last_used_ms == Some(now - 1000)));
    let found = gemini_proxy_web::data::find_log(admin, "pg-web-1", now - 1000)
        .await
        .expect("find");
    assert_eq!(found.map(|r| r.latency_ms), Some(12));

    drop(store);
    db.drop_db().await;
}
