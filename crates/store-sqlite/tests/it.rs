//! Round trips through a real SQLite file, as the `serve` process and the CLI use it.
//!
//! The behaviour every store shares is checked by `store-conformance`'s suite; what
//! follows it is SQLite's own: two handles writing one file at once, an in-memory store.

use std::path::PathBuf;

use proxy_core::admin::AdminStore;
use proxy_core::log::LogRecord;
use proxy_core::platform::{KeyStore, LogSink};
use store_conformance::{DuplicateKeyMessage, Fixture, SECRET_A, record};
use store_sqlite::SqliteStore;
use tempfile::TempDir;

/// A store on a fresh file in a nested folder that does not exist yet.
struct TempStore {
    store: SqliteStore,
    path: PathBuf,
    _dir: TempDir,
}

impl Fixture for TempStore {
    type Store = SqliteStore;
    type Handle = SqliteStore;
    const DUPLICATE_KEY_MESSAGE: DuplicateKeyMessage = DuplicateKeyMessage::NamesExistingId;

    async fn create() -> TempStore {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nested/proxy.db");
        let store = SqliteStore::open(&path).expect("open store");
        TempStore {
            store,
            path,
            _dir: dir,
        }
    }

    fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// The same file opened again, as the CLI or a restarted `serve` opens it.
    async fn other_handle(&self) -> SqliteStore {
        SqliteStore::open(&self.path).expect("reopen")
    }
}

store_conformance::suite!(TempStore);

#[tokio::test]
async fn two_handles_on_one_file_write_at_once() {
    let fixture = TempStore::create().await;
    let (serve, cli) = (fixture.store(), fixture.other_handle().await);
    // The busy timeout makes one wait instead of failing.
    let batch_a: Vec<LogRecord> = (0..200u64).map(|i| record(&format!("a{i:03}"), i)).collect();
    let batch_b: Vec<LogRecord> = (0..200u64).map(|i| record(&format!("b{i:03}"), i)).collect();
    let (ra, rb) = tokio::join!(serve.write_logs(&batch_a), cli.write_logs(&batch_b));
    ra.expect("serve writes");
    rb.expect("cli writes");
    assert_eq!(cli.prune_logs(u64::MAX).await.expect("prune"), 400);
}

#[tokio::test]
async fn in_memory_store_works() {
    let store = SqliteStore::open_in_memory().expect("memory");
    store.add_key(SECRET_A, "m").await.expect("add");
    assert_eq!(store.load().await.expect("load").keys.len(), 1);
}

/// The file holds upstream keys in plaintext: only its owner may read it, and SQLite's
/// `-wal` and `-shm` files beside it (which hold the same pages) too, whatever the umask.
#[cfg(unix)]
#[tokio::test]
async fn the_database_and_its_wal_files_are_private() {
    use std::os::unix::fs::PermissionsExt;

    let fixture = TempStore::create().await;
    let store = fixture.store();
    store.add_key(SECRET_A, "private").await.expect("add");
    store.write_logs(&[record("r", 1)]).await.expect("write");
    for suffix in ["", "-wal", "-shm"] {
        let mut name = fixture.path.clone().into_os_string();
        name.push(suffix);
        let mode = std::fs::metadata(&name)
            .unwrap_or_else(|e| panic!("{name:?} exists while the store is open: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name:?} has mode {:o}", mode & 0o777);
    }
}
