//! Fresh databases for tests (feature `testing`; this crate's own tests use it too):
//! each test gets its own database with Supabase's roles and every shipped migration, on
//! the PostgreSQL CI provides (127.0.0.1:5432, trust auth for `postgres`), or the server
//! at `GEMINI_PROXY_TEST_PG` (a URL without a database name).

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::PostgresStore;

/// The local server, as the `postgres` superuser, without a database name.
pub const LOCAL_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432";

/// The maintenance database on the local server, as the `postgres` superuser.
pub const LOCAL_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// What Supabase grants in every project before any migration runs: everything new in
/// `public` to the API roles. The migrations must revoke all of it.
const SUPABASE_DEFAULT_PRIVILEGES: &str = "\
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
    GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;";

/// The server tests create their databases on: `GEMINI_PROXY_TEST_PG`, else the local one.
pub fn server_url() -> String {
    std::env::var("GEMINI_PROXY_TEST_PG").unwrap_or_else(|_| LOCAL_SERVER_URL.into())
}

/// How [`TestDb::create_with`] prepares a database. The default is what
/// [`TestDb::create`] gives: the shipped migrations on a plain database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Setup {
    /// Before the migrations, set the database up like a Supabase project: its roles and
    /// default privileges that hand every new table, sequence and function in `public`
    /// to `anon` and `authenticated` (so a test can prove the migrations revoke them).
    pub supabase_privileges: bool,
    /// Leave the schema out: no migrations run.
    pub without_schema: bool,
}

/// A test database, dropped when dropped (best effort, by `psql`, so it works from any
/// runtime or none, also while a failed test unwinds).
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// A fresh database with the shipped migrations.
    pub async fn create(prefix: &str) -> TestDb {
        TestDb::create_with(prefix, Setup::default()).await
    }

    /// A fresh database named `{prefix}_{process}_{n}` (tests running at once, in one
    /// process or several, never share one), prepared as `setup` says.
    pub async fn create_with(prefix: &str, setup: Setup) -> TestDb {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = connect(&format!("{}/postgres", server_url())).await;
        // Two calls: several statements in one simple query form an implicit
        // transaction, which DROP/CREATE DATABASE refuse.
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
        if setup.supabase_privileges {
            // The roles exist before the default privileges can name them.
            let client = db.client().await;
            client
                .batch_execute(crate::BOOTSTRAP_ROLES)
                .await
                .expect("bootstrap roles");
            client
                .batch_execute(SUPABASE_DEFAULT_PRIVILEGES)
                .await
                .expect("Supabase-like default privileges");
        }
        if !setup.without_schema {
            crate::apply_migrations(&db.url).await.expect("migrations apply");
        }
        db
    }

    /// A superuser connection to this database, for checks behind the store's back.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }

    /// A store on this database.
    pub async fn store(&self) -> PostgresStore {
        PostgresStore::connect(&self.url).await.expect("connect store")
    }

    /// Rows in `request_logs`.
    pub async fn count_logs(&self) -> i64 {
        let row = self
            .client()
            .await
            .query_one("SELECT count(*) FROM request_logs", &[])
            .await
            .expect("count request_logs");
        row.get(0)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-q", "-d"])
            .arg(format!("{}/postgres", server_url()))
            .arg("-c")
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A superuser connection to the test server's maintenance database.
pub async fn local_admin() -> tokio_postgres::Client {
    connect(&format!("{}/postgres", server_url())).await
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {url}: {e}. These tests need a PostgreSQL 15+ \
                 superuser at 127.0.0.1:5432 (user postgres, trust auth), or GEMINI_PROXY_TEST_PG \
                 pointing at one"
            )
        });
    tokio::spawn(connection);
    client
}
