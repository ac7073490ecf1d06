//! A fresh PostgreSQL database per test with the Supabase schema applied exactly as
//! shipped, the PostgREST stand-in on top, and a store pointed at it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use postgrest_test_server::{PostgrestTestServer, SERVICE_ROLE_TOKEN};
use store_conformance::{DuplicateKeyMessage, Fixture};
use store_supabase::SupabaseStore;
use tokio_postgres::{Client, NoTls};

/// The server the tests create their databases on; `TEST_PG_ADMIN_URL` overrides it.
const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn admin_url() -> String {
    std::env::var("TEST_PG_ADMIN_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_string())
}

/// The same server, another database.
fn database_url(name: &str) -> String {
    let admin = admin_url();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
    format!("{base}/{name}")
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e} (is PostgreSQL running?)"));
    tokio::spawn(connection);
    client
}

fn supabase_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../supabase")
}

/// `supabase/tests/bootstrap_roles.sql`, then every migration in filename order.
fn schema_files() -> Vec<PathBuf> {
    let dir = supabase_dir();
    let mut migrations: Vec<PathBuf> = std::fs::read_dir(dir.join("migrations"))
        .expect("supabase/migrations exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    migrations.sort();
    assert!(!migrations.is_empty(), "no migrations in {}", dir.display());
    let mut files = vec![dir.join("tests/bootstrap_roles.sql")];
    files.extend(migrations);
    files
}

/// A database that is dropped when this goes out of scope, also when a test panics.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    async fn create() -> TestDb {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "gp_supabase_it_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let admin = connect(&admin_url()).await;
        admin
            .batch_execute(&format!("create database \"{name}\""))
            .await
            .expect("create database");
        let db = TestDb {
            url: database_url(&name),
            name,
        };
        let client = connect(&db.url).await;
        for file in schema_files() {
            let sql = std::fs::read_to_string(&file).expect("schema file readable");
            // One simple-protocol message: run as one implicit transaction, as
            // `psql --single-transaction -f` or `supabase db push` would.
            client
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("{} failed: {e:?}", file.display()));
        }
        db
    }

    /// A superuser connection, for looking at what the REST API does not show.
    pub async fn sql(&self) -> Client {
        connect(&self.url).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let statement = format!("drop database if exists \"{}\" with (force)", self.name);
        // Drop runs inside the test's runtime, which cannot be blocked on; a thread
        // with a runtime of its own can.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let admin = connect(&admin_url()).await;
                admin.batch_execute(&statement).await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// Everything one test needs. Fields drop in order: the server (and its connections)
/// before the database.
pub struct Env {
    pub server: PostgrestTestServer,
    pub store: SupabaseStore,
    pub db: TestDb,
}

impl Env {
    pub async fn new() -> Env {
        let db = TestDb::create().await;
        let server = PostgrestTestServer::start(&db.url)
            .await
            .expect("start the PostgREST stand-in");
        let store = store_as(&server, SERVICE_ROLE_TOKEN);
        Env { server, store, db }
    }

    /// Another store handle, as a second process (the CLI, another instance) would have.
    pub fn other_store(&self) -> SupabaseStore {
        store_as(&self.server, SERVICE_ROLE_TOKEN)
    }
}

/// For `store-conformance`'s suite: a fresh database, REST server and store per check.
impl Fixture for Env {
    type Store = SupabaseStore;
    type Handle = SupabaseStore;
    // The database answers a duplicate with the secret in `details`; the store says
    // "already stored" without it (and without the id).
    const DUPLICATE_KEY_MESSAGE: DuplicateKeyMessage = DuplicateKeyMessage::Plain;

    async fn create() -> Env {
        Env::new().await
    }

    fn store(&self) -> &SupabaseStore {
        &self.store
    }

    async fn other_handle(&self) -> SupabaseStore {
        self.other_store()
    }
}

pub fn store_as(server: &PostgrestTestServer, token: &str) -> SupabaseStore {
    SupabaseStore::with_rest_url(&server.rest_url(), token).expect("valid settings")
}
