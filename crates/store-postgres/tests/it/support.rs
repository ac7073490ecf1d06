//! Test databases: one fresh database per test, created through the maintenance
//! database, set up like a Supabase project, and dropped when the test ends (also when it
//! panics).

use std::sync::atomic::{AtomicU32, Ordering};

use store_conformance::{DuplicateKeyMessage, Fixture};
use store_postgres::{PostgresStore, apply_migrations};
use tokio_postgres::{Client, NoTls};

pub use store_conformance::{SECRET_A, SECRET_B, hash, ids, now_ms, record};

/// Server URL without a database name.
pub fn server_url() -> String {
    std::env::var("GEMINI_PROXY_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A superuser connection to `database`, driven in the background.
pub async fn superuser(database: &str) -> Client {
    let url = format!("{}/{database}", server_url());
    let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {url}: {e}. These tests need a PostgreSQL 15+ superuser \
             (start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, \
             or point GEMINI_PROXY_TEST_PG at one)"
        )
    });
    tokio::spawn(connection);
    client
}

pub struct TestDb {
    pub name: String,
    pub url: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    /// A fresh database with the schema applied as shipped.
    pub async fn new() -> TestDb {
        let db = TestDb::empty().await;
        apply_migrations(&db.url)
            .await
            .expect("apply roles and migrations");
        db
    }

    /// A fresh database set up like a Supabase project (default privileges that hand
    /// every new table, sequence and function in `public` to anon and authenticated), but
    /// without the schema.
    pub async fn empty() -> TestDb {
        let name = format!(
            "gp_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = superuser("postgres").await;
        // Two calls: several statements in one simple query form an implicit transaction,
        // which CREATE/DROP DATABASE refuse.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .expect("drop a leftover test database");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let db = TestDb {
            url: format!("{}/{name}", server_url()),
            name,
        };
        // The roles exist before the default privileges can name them.
        let client = db.superuser().await;
        client
            .batch_execute(store_postgres::BOOTSTRAP_ROLES)
            .await
            .expect("bootstrap roles");
        // What Supabase does in every project: the migration must revoke all of it.
        client
            .batch_execute(
                "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
                 ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
                 ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
                 GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;",
            )
            .await
            .expect("Supabase-like default privileges");
        db
    }

    pub async fn store(&self) -> PostgresStore {
        PostgresStore::connect(&self.url).await.expect("connect store")
    }

    pub async fn superuser(&self) -> Client {
        superuser(&self.name).await
    }
}

impl Drop for TestDb {
    /// Best effort, on a thread of its own: Drop cannot await, and this also runs while a
    /// failed test unwinds. FORCE ends the store's connections first.
    fn drop(&mut self) {
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let url = format!("{}/postgres", server_url());
                if let Ok((client, connection)) = tokio_postgres::connect(&url, NoTls).await {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        });
        let _ = dropped.join();
    }
}

/// A store on a fresh database, for `store-conformance`'s suite. The store (and its
/// connections) drops before the database.
pub struct Fresh {
    store: PostgresStore,
    db: TestDb,
}

impl Fixture for Fresh {
    type Store = PostgresStore;
    type Handle = PostgresStore;
    const DUPLICATE_KEY_MESSAGE: DuplicateKeyMessage = DuplicateKeyMessage::NamesExistingId;

    async fn create() -> Fresh {
        let db = TestDb::new().await;
        Fresh {
            store: db.store().await,
            db,
        }
    }

    fn store(&self) -> &PostgresStore {
        &self.store
    }

    /// A new connection pool, as another instance or the CLI opens.
    async fn other_handle(&self) -> PostgresStore {
        self.db.store().await
    }
}
