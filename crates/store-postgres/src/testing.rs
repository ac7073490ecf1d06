//! Fresh databases for the tests of crates built on this store (feature `testing`):
//! each test gets its own database with Supabase's roles and every shipped migration,
//! on the PostgreSQL CI provides (127.0.0.1:5432, trust auth for `postgres`).

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The maintenance database on the local server, as the `postgres` superuser.
pub const LOCAL_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database with the shipped migrations, dropped when dropped (best effort, by
/// `psql`, so it works from any runtime or none).
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// `{prefix}_{process}_{n}`: tests running at once, in one process or several,
    /// never share a database.
    pub async fn create(prefix: &str) -> TestDb {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = local_admin().await;
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
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        crate::apply_migrations(&url).await.expect("migrations apply");
        TestDb { name, url }
    }

    /// A plain connection to this database, for checks behind the store's back.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
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
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-q", "-c"])
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A superuser connection to the local server's maintenance database.
pub async fn local_admin() -> tokio_postgres::Client {
    connect(LOCAL_ADMIN_URL).await
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL must run at 127.0.0.1:5432 (user postgres, trust auth)");
    tokio::spawn(connection);
    client
}
