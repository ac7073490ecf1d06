//! Test databases: one fresh database per test from `store_postgres::testing`, set up
//! like a Supabase project before the schema is applied, and dropped when the test ends
//! (also when it panics).

use store_conformance::{DuplicateKeyMessage, Fixture};
use store_postgres::PostgresStore;
use store_postgres::testing::Setup;
pub use store_postgres::testing::{TestDb, local_admin, server_url};

pub use store_conformance::{SECRET_A, SECRET_B, hash, ids, now_ms, record};

/// Supabase's roles and default privileges, then the schema as shipped.
const SUPABASE_LIKE: Setup = Setup {
    supabase_privileges: true,
    without_schema: false,
};

/// A fresh database with the schema applied as shipped, on a Supabase-like setup.
pub async fn test_db() -> TestDb {
    TestDb::create_with("gp_test", SUPABASE_LIKE).await
}

/// A fresh database set up like a Supabase project, but without the schema.
pub async fn test_db_without_schema() -> TestDb {
    let setup = Setup {
        without_schema: true,
        ..SUPABASE_LIKE
    };
    TestDb::create_with("gp_test", setup).await
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
        let db = test_db().await;
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
