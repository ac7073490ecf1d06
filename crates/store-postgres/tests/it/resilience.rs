//! Connections: LISTEN/NOTIFY, connections killed by the server, a server that is not
//! there, a database without the schema, TLS, and the migration runner.

use std::time::Duration;

use proxy_core::admin::{AdminStore, ProxyKeyUpdate};
use proxy_core::platform::{KeyStore, LogSink, StoreError};
use proxy_core::pool::StateChange;
use store_postgres::{ConnectOptions, MIGRATIONS, PostgresStore, apply_migrations};

use crate::support::{
    SECRET_A, SECRET_B, TestDb, hash, local_admin, now_ms, record, server_url, test_db,
    test_db_without_schema,
};

const SOON: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(700);

async fn announced(listener: &store_postgres::ChangeListener, what: &str) {
    tokio::time::timeout(SOON, listener.changed())
        .await
        .unwrap_or_else(|_| panic!("no notification within {SOON:?} after {what}"));
    // One change can touch several tables (a key and its state), and each table's
    // trigger notifies: take the whole burst, so the next check starts from quiet.
    while tokio::time::timeout(std::time::Duration::from_millis(300), listener.changed())
        .await
        .is_ok()
    {}
}

async fn silent(listener: &store_postgres::ChangeListener, what: &str) {
    let woke = tokio::time::timeout(QUIET, listener.changed()).await;
    assert!(woke.is_err(), "{what} must not announce a key change");
}

#[tokio::test(flavor = "multi_thread")]
async fn key_changes_are_announced_and_log_writes_are_not() {
    let db = test_db().await;
    let store = db.store().await;
    let listener = store.listen_for_changes().await.expect("listen");
    silent(&listener, "nothing").await;

    let key = store.add_key(SECRET_A, "a").await.expect("add");
    announced(&listener, "add_key").await;

    // Counters and last use change with every log batch; nobody needs to reload for it.
    let mut r = record("r1", 1);
    r.upstream_key_ids = vec![key];
    r.answered_key_id = Some(key);
    store.write_logs(&[r]).await.expect("write");
    silent(&listener, "write_logs").await;

    store
        .save_state(&[StateChange::Invalid {
            key_id: key,
            reason: "API_KEY_INVALID".into(),
        }])
        .await
        .expect("invalid");
    announced(&listener, "an invalid mark").await;
    store
        .save_state(&[StateChange::Cooldown {
            key_id: key,
            model: "flash".into(),
            until_ms: now_ms() + 60_000,
        }])
        .await
        .expect("cooldown");
    announced(&listener, "a cooldown").await;
    store.set_key_enabled(key, true).await.expect("enable");
    announced(&listener, "set_key_enabled").await;
    let proxy_key = store.create_proxy_key("p", &hash(0xc)).await.expect("proxy key");
    announced(&listener, "create_proxy_key").await;
    let deny = ProxyKeyUpdate {
        passthrough: Some(false),
        ..ProxyKeyUpdate::default()
    };
    assert!(store.update_proxy_key(proxy_key, &deny).await.expect("update"));
    announced(&listener, "update_proxy_key").await;
    store.remove_key(key).await.expect("remove");
    announced(&listener, "remove_key").await;
}

/// Ends every connection to the test database from outside, as a restart or a pooler
/// would, and waits until they are gone (pg_terminate_backend only sends the signal);
/// returns how many were ended.
async fn kill_connections(db: &TestDb) -> usize {
    let admin = local_admin().await;
    let pids: Vec<i32> = admin
        .query(
            // Materialised first: in a plain WHERE the planner may call pg_terminate_backend
            // before the other conditions, on every connection of the server.
            "WITH targets AS MATERIALIZED (SELECT pid FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()) \
             SELECT pid FROM targets WHERE pg_terminate_backend(pid)",
            &[&db.name],
        )
        .await
        .expect("terminate")
        .iter()
        .map(|row| row.get(0))
        .collect();
    for _ in 0..100 {
        let left: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)",
                &[&pids],
            )
            .await
            .expect("poll")
            .get(0);
        if left == 0 {
            return pids.len();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("terminated backends did not exit");
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_connections_are_replaced() {
    let db = test_db().await;
    let store = db.store().await;
    store.add_key(SECRET_A, "a").await.expect("add");
    let listener = store.listen_for_changes().await.expect("listen");
    store.load().await.expect("load before");

    for round in 0..2 {
        let killed = kill_connections(&db).await;
        assert!(
            killed >= 2,
            "round {round}: expected the pool's and LISTEN's connections, ended {killed}"
        );
        // The first call may meet the dead connection; it must fail cleanly, not panic.
        match store.load().await {
            Ok(snapshot) => assert_eq!(snapshot.keys.len(), 1 + round),
            Err(StoreError::Unavailable(_)) => {}
            Err(other) => panic!("round {round}: expected Unavailable, got {other:?}"),
        }
        // The next one gets a new connection.
        assert_eq!(store.load().await.expect("load after").keys.len(), 1 + round);
        // LISTEN comes back by itself and wakes the refresher, since it may have missed
        // changes while away; later changes are announced again.
        tokio::time::timeout(Duration::from_secs(15), listener.changed())
            .await
            .expect("LISTEN reconnected");
        let secret = if round == 0 {
            SECRET_B
        } else {
            "AIzaSyTESTtestTESTtestTESTtestCCCC3333"
        };
        store.add_key(secret, "after").await.expect("add after");
        announced(&listener, "add_key after reconnecting").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_server_is_unavailable_not_a_panic() {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let url = "postgres://postgres@127.0.0.1:1/nothing?connect_timeout=2";
    match PostgresStore::connect(url).await {
        Err(StoreError::Unavailable(msg)) => assert!(!msg.is_empty()),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    match apply_migrations(url).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
    match PostgresStore::connect("postgres://u:hunter2@127.0.0.1:5432/x?nonsense=1").await {
        Err(StoreError::Invalid(msg)) => assert!(!msg.contains("hunter2"), "{msg}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_without_the_schema_is_refused_clearly() {
    let db = test_db_without_schema().await;
    match PostgresStore::connect(&db.url).await {
        Err(StoreError::Unavailable(msg)) => assert!(msg.contains("supabase/migrations"), "{msg}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    apply_migrations(&db.url).await.expect("apply");
    PostgresStore::connect(&db.url)
        .await
        .expect("connect after migrating");
}

/// A database migrated by an older build (the files before the proxy-key policy): a
/// store refuses it with what to do, and once migrated its keys keep what they could do.
#[tokio::test(flavor = "multi_thread")]
async fn a_database_behind_the_latest_migration_is_refused_then_upgraded() {
    let db = test_db_without_schema().await;
    let admin = db.client().await;
    admin
        .batch_execute(store_postgres::BOOTSTRAP_ROLES)
        .await
        .expect("roles");
    let policy = MIGRATIONS
        .iter()
        .position(|m| m.file.ends_with("_proxy_key_policy.sql"))
        .expect("the policy migration is shipped");
    for m in &MIGRATIONS[..policy] {
        admin.batch_execute(m.sql).await.expect(m.file);
    }
    admin
        .execute(
            "INSERT INTO proxy_keys (name, secret_hash) VALUES ('old', $1)",
            &[&hash(0xd)],
        )
        .await
        .expect("a key made before the policy");
    match PostgresStore::connect(&db.url).await {
        Err(StoreError::Unavailable(msg)) => assert!(
            msg.contains("older than this build") && msg.contains("supabase/migrations"),
            "{msg}"
        ),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    apply_migrations(&db.url).await.expect("apply");
    let store = PostgresStore::connect(&db.url)
        .await
        .expect("connect after migrating");
    let loaded = store.load().await.expect("load").proxy_keys;
    assert_eq!(loaded.len(), 1);
    assert!(
        loaded[0].policy.passthrough,
        "an older key keeps the pass-through routes"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_are_the_shipped_files_and_apply_once() {
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/../../supabase/migrations");
    let mut files: Vec<String> = std::fs::read_dir(folder)
        .expect("supabase/migrations")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    files.sort();
    let listed: Vec<&str> = MIGRATIONS.iter().map(|m| m.file).collect();
    assert_eq!(
        listed, files,
        "store_postgres::MIGRATIONS must list every file, in order"
    );
    for m in MIGRATIONS {
        let on_disk = std::fs::read_to_string(format!("{folder}/{}", m.file)).expect("read");
        assert_eq!(on_disk, m.sql, "{} differs from the embedded copy", m.file);
    }

    let db = test_db().await;
    let store = db.store().await;
    store.add_key(SECRET_A, "kept").await.expect("add");
    // Applying again (another instance starting) skips what is recorded, keeps the data.
    apply_migrations(&db.url).await.expect("apply again");
    let client = db.client().await;
    let versions: Vec<String> = client
        .query(
            "SELECT version FROM supabase_migrations.schema_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("recorded")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions.len(), MIGRATIONS.len());
    // The SQL itself is idempotent too (for psql users who run it twice).
    for m in MIGRATIONS {
        client.batch_execute(m.sql).await.expect("re-run migration SQL");
    }
    assert_eq!(store.list_keys().await.expect("list").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_is_verified_when_required() {
    let db = test_db().await;
    let admin = db.client().await;
    let ssl: String = admin.query_one("SHOW ssl", &[]).await.expect("show ssl").get(0);
    let host_url = server_url();
    let url = format!(
        "{}/{}?sslmode=require",
        host_url.replace("127.0.0.1", "localhost"),
        db.name
    );
    if ssl != "on" {
        // Without TLS on the server, `require` must still refuse to go on in plaintext.
        match PostgresStore::connect(&url).await {
            Err(StoreError::Unavailable(_)) => return,
            other => panic!("expected Unavailable from a server without TLS, got {other:?}"),
        }
    }
    // The server's certificate is not signed by a public CA: refused.
    match PostgresStore::connect(&url).await {
        Err(StoreError::Unavailable(msg)) => {
            assert!(msg.contains("certificate") || msg.contains("tls"), "{msg}")
        }
        other => panic!("expected an unverified certificate to be refused, got {other:?}"),
    }
    // Trusting its certificate (as one trusts Supabase's root CA) makes it work.
    let cert_file: String = admin
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .expect("cert file")
        .get(0);
    let pem = std::fs::read_to_string(&cert_file).expect("read the server's certificate");
    let options = ConnectOptions {
        ca_certificates_pem: Some(pem),
        ..ConnectOptions::default()
    };
    let store = PostgresStore::connect_with(&url, options)
        .await
        .expect("TLS connect with the CA");
    store.add_key(SECRET_A, "over tls").await.expect("add over TLS");
    let encrypted: bool = admin
        .query_one(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = $1 AND a.application_name = 'gemini-proxy'",
            &[&db.name],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0);
    assert!(encrypted);
}
