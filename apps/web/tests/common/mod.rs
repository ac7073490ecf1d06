//! A fresh PostgreSQL database with the shipped migrations, for tests that run the
//! dashboard on the shared store. Needs PostgreSQL at 127.0.0.1:5432 (user postgres,
//! trust auth), as CI provides.

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub struct TestDb {
    name: String,
    pub url: String,
}

impl TestDb {
    /// `tag` keeps databases of tests in one process apart.
    pub async fn create(tag: &str) -> TestDb {
        let name = format!("gp_web_{tag}_{}", std::process::id());
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

    pub async fn drop_db(self) {
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
