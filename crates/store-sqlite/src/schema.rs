//! Connection settings and the schema, kept as an append-only list of migrations keyed
//! by SQLite's `user_version`, so a later release adds a step instead of editing one.

use std::time::Duration;

use proxy_core::platform::StoreError;
use rusqlite::{Connection, TransactionBehavior};

use crate::error::DbResult;

/// How long a statement waits for another process's write lock before giving up.
/// Log batches and CLI edits hold it for milliseconds, so seconds is generous.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migration `i` brings the file from `user_version` `i` to `i + 1`. Never edit or
/// reorder a shipped entry: files in the field have already run it.
const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    //
    // AUTOINCREMENT keeps ids of removed keys from being reused: request logs keep the
    // id of the key that served them, and a new key must not inherit that history.
    //
    // request_logs has no foreign keys on purpose: logs outlive removed keys.
    r#"
    CREATE TABLE keys (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        name          TEXT    NOT NULL,
        secret        TEXT    NOT NULL UNIQUE,
        enabled       INTEGER NOT NULL DEFAULT 1,
        created_at_ms INTEGER NOT NULL
    );
    CREATE TABLE key_state (
        key_id         INTEGER PRIMARY KEY REFERENCES keys(id) ON DELETE CASCADE,
        invalid_reason TEXT,
        invalid_at_ms  INTEGER,
        last_used_ms   INTEGER
    );
    CREATE TABLE key_cooldowns (
        key_id   INTEGER NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
        model    TEXT    NOT NULL,
        until_ms INTEGER NOT NULL,
        PRIMARY KEY (key_id, model)
    ) WITHOUT ROWID;
    CREATE TABLE proxy_keys (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        name          TEXT    NOT NULL,
        secret_hash   TEXT    NOT NULL UNIQUE,
        revoked       INTEGER NOT NULL DEFAULT 0,
        created_at_ms INTEGER NOT NULL
    );
    CREATE TABLE request_logs (
        id                TEXT    PRIMARY KEY,
        started_at_ms     INTEGER NOT NULL,
        proxy_key_id      INTEGER,
        upstream_key_ids  TEXT    NOT NULL DEFAULT '[]', -- JSON array, in the order tried
        answered_key_id   INTEGER,
        model             TEXT,
        route             TEXT    NOT NULL,
        api               TEXT    NOT NULL,
        stream            INTEGER NOT NULL,
        status            INTEGER NOT NULL,
        attempts          INTEGER NOT NULL,
        latency_ms        INTEGER NOT NULL,
        ttfb_ms           INTEGER,
        prompt_tokens     INTEGER,
        candidates_tokens INTEGER,
        thoughts_tokens   INTEGER,
        cached_tokens     INTEGER,
        total_tokens      INTEGER,
        finish_reason     TEXT,
        block_reason      TEXT,
        error_kind        TEXT,
        error_message     TEXT,
        request_body      TEXT
    );
    CREATE INDEX request_logs_started ON request_logs (started_at_ms);
    CREATE INDEX request_logs_model ON request_logs (model, started_at_ms);
    CREATE INDEX request_logs_answered_key ON request_logs (answered_key_id, started_at_ms);
    CREATE INDEX request_logs_proxy_key ON request_logs (proxy_key_id, started_at_ms);
    "#,
    // 2: the first piece of a proxy key's policy: may it use the pass-through routes
    // (files, cachedContents, tunedModels, …). Keys that exist keep what they could do.
    r#"
    ALTER TABLE proxy_keys ADD COLUMN passthrough INTEGER NOT NULL DEFAULT 1;
    "#,
    // 3: governance. The rest of a proxy key's policy (every column empty: no limit, as
    // before), an upstream key's limits (serde JSON of proxy_core::keys::KeyLimits),
    // cooldowns that say the model is off for the key (its quota is 0), and each
    // request's cost by the price table.
    r#"
    ALTER TABLE proxy_keys ADD COLUMN models TEXT NOT NULL DEFAULT '[]'; -- JSON array of names/globs
    ALTER TABLE proxy_keys ADD COLUMN rpm INTEGER;
    ALTER TABLE proxy_keys ADD COLUMN tpm INTEGER;
    ALTER TABLE proxy_keys ADD COLUMN tokens_per_day INTEGER;
    ALTER TABLE proxy_keys ADD COLUMN budget_usd REAL;
    ALTER TABLE proxy_keys ADD COLUMN budget_period TEXT NOT NULL DEFAULT 'month'
        CHECK (budget_period IN ('day', 'month'));
    ALTER TABLE proxy_keys ADD COLUMN expires_at_ms INTEGER;
    ALTER TABLE keys ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE key_cooldowns ADD COLUMN model_off INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE request_logs ADD COLUMN cost_usd REAL;
    "#,
    // 4: resilience. The model a fallback served the request with, whether the response
    // cache answered it, and what the resilience rules did (JSON array of text).
    r#"
    ALTER TABLE request_logs ADD COLUMN served_model TEXT;
    ALTER TABLE request_logs ADD COLUMN cache TEXT;
    ALTER TABLE request_logs ADD COLUMN notes TEXT NOT NULL DEFAULT '[]';
    "#,
    // 5: audit. A hash of each request's prompt (found by `logs list --prompt-sha256`
    // without storing the prompt), the client's address and user agent.
    r#"
    ALTER TABLE request_logs ADD COLUMN prompt_sha256 TEXT;
    ALTER TABLE request_logs ADD COLUMN client_ip TEXT;
    ALTER TABLE request_logs ADD COLUMN user_agent TEXT;
    CREATE INDEX IF NOT EXISTS request_logs_prompt_sha256 ON request_logs (prompt_sha256)
        WHERE prompt_sha256 IS NOT NULL;
    "#,
    // 6: the log's hash chain (`proxy_core::log_chain`, `logs verify`): each record's
    // chain, its place in it and its link.
    r#"
    ALTER TABLE request_logs ADD COLUMN chain_id TEXT;
    ALTER TABLE request_logs ADD COLUMN chain_seq INTEGER;
    ALTER TABLE request_logs ADD COLUMN chain_sha256 TEXT;
    "#,
    // 7: each upstream attempt of a request (key, model, outcome, status, ms), JSON, so
    // the log explains a failover; the proxy's own time until its answer went out.
    r#"
    ALTER TABLE request_logs ADD COLUMN attempt_details TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE request_logs ADD COLUMN overhead_us INTEGER;
    "#,
    // 8: a proxy key's shown prefix (`gp-1a2b3c`), so pages can tell keys apart.
    r#"
    ALTER TABLE proxy_keys ADD COLUMN secret_prefix TEXT;
    "#,
];

/// Per-connection settings; none of them is stored in the file except WAL mode.
pub(crate) fn configure(conn: &Connection, wal: bool) -> Result<(), StoreError> {
    // First, so that switching to WAL below already waits out another process's lock.
    conn.busy_timeout(BUSY_TIMEOUT).db()?;
    if wal {
        // WAL lets the CLI read while `serve` writes a log batch, and vice versa.
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .db()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unavailable(format!(
                "database refused WAL mode (journal_mode is {mode})"
            )));
        }
        // In WAL mode NORMAL stays consistent after a crash and only risks the last
        // commits on power loss; FULL would fsync every log batch for little gain.
        conn.pragma_update(None, "synchronous", "NORMAL").db()?;
    }
    // Off by default in SQLite, per connection: without it removing a key would leave
    // its state rows behind.
    conn.pragma_update(None, "foreign_keys", true).db()?;
    // The dashboard scans a week of logs: 32 MiB of page cache (SQLite's default is
    // 2 MiB) and reads through a memory map rather than one read() per page.
    conn.pragma_update(None, "cache_size", -32_768).db()?;
    conn.pragma_update(None, "mmap_size", 256 * 1024 * 1024).db()?;
    Ok(())
}

/// Applies every migration the file has not seen yet, all in one transaction.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    // IMMEDIATE takes the write lock before reading the version, so two processes
    // opening a fresh file at once cannot both run migration 1.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    let current: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .db()?;
    let current = usize::try_from(current).unwrap_or(0);
    if current > MIGRATIONS.len() {
        return Err(StoreError::Unavailable(format!(
            "database schema version {current} is newer than this build understands ({})",
            MIGRATIONS.len()
        )));
    }
    if current == MIGRATIONS.len() {
        return Ok(());
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(sql).db()?;
        // user_version lives in the file header and is part of the transaction.
        tx.pragma_update(None, "user_version", index + 1).db()?;
    }
    tx.commit().db()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file made by a build that knew only the first step.
    fn version_one() -> Connection {
        let conn = Connection::open_in_memory().unwrap_or_else(|e| panic!("open: {e}"));
        conn.execute_batch(MIGRATIONS[0])
            .and_then(|()| conn.pragma_update(None, "user_version", 1))
            .and_then(|()| {
                conn.execute(
                    "INSERT INTO proxy_keys (name, secret_hash, created_at_ms) VALUES ('old', 'h', 1)",
                    [],
                )
            })
            .unwrap_or_else(|e| panic!("version 1: {e}"));
        conn
    }

    #[test]
    fn an_older_file_is_brought_up_to_date_and_its_keys_keep_passthrough() {
        let mut conn = version_one();
        migrate(&mut conn).unwrap_or_else(|e| panic!("migrate: {e}"));
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap_or(0);
        assert_eq!(usize::try_from(version).ok(), Some(MIGRATIONS.len()));
        let passthrough: bool = conn
            .query_row(
                "SELECT passthrough FROM proxy_keys WHERE name = 'old'",
                [],
                |row| row.get(0),
            )
            .unwrap_or(false);
        assert!(
            passthrough,
            "a key made before the policy may still do what it could"
        );
        // Migrating again is a no-op.
        migrate(&mut conn).unwrap_or_else(|e| panic!("migrate again: {e}"));
    }

    #[test]
    fn keys_made_before_governance_have_no_limits() {
        let mut conn = version_one();
        migrate(&mut conn).unwrap_or_else(|e| panic!("migrate: {e}"));
        let row: (String, Option<i64>, Option<f64>, String, Option<i64>) = conn
            .query_row(
                "SELECT models, rpm, budget_usd, budget_period, expires_at_ms FROM proxy_keys",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
            )
            .unwrap_or_else(|e| panic!("read: {e}"));
        assert_eq!(row, ("[]".into(), None, None, "month".into(), None));
        let bad = conn.execute("UPDATE proxy_keys SET budget_period = 'week'", []);
        assert!(bad.is_err(), "the period is day or month");
    }
}
