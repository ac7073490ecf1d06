//! Applies the Supabase schema exactly as shipped in `supabase/`: the role bootstrap for
//! plain PostgreSQL, then every migration in filename order.
//!
//! Applied migrations are recorded in `supabase_migrations.schema_migrations`, the table
//! the Supabase CLI keeps, so `supabase db push` and this function each skip what the
//! other already applied.

use proxy_core::platform::StoreError;

use crate::connect::{ConnectOptions, Connector};
use crate::error::DbResult;

/// A migration as shipped: the file name and its SQL.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    pub file: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// The CLI's version: the timestamp before the first `_`.
    fn version(&self) -> &'static str {
        self.file
            .split_once('_')
            .map_or(self.file, |(version, _)| version)
    }

    /// The CLI's name: the rest of the file name, without `.sql`.
    fn name(&self) -> &'static str {
        let stem = self.file.strip_suffix(".sql").unwrap_or(self.file);
        stem.split_once('_').map_or("", |(_, name)| name)
    }
}

/// Creates `anon`, `authenticated`, `service_role` and `authenticator` where missing;
/// a no-op on Supabase.
pub const BOOTSTRAP_ROLES: &str = include_str!("../../../supabase/tests/bootstrap_roles.sql");

/// Every file of `supabase/migrations`, in order. A test checks that this list and the
/// folder agree, so a new file cannot be forgotten here.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        file: "20261124000000_gemini_proxy.sql",
        sql: include_str!("../../../supabase/migrations/20261124000000_gemini_proxy.sql"),
    },
    Migration {
        file: "20261125000000_usage_buckets.sql",
        sql: include_str!("../../../supabase/migrations/20261125000000_usage_buckets.sql"),
    },
    Migration {
        file: "20261126000000_proxy_key_policy.sql",
        sql: include_str!("../../../supabase/migrations/20261126000000_proxy_key_policy.sql"),
    },
    Migration {
        file: "20261202000000_governance.sql",
        sql: include_str!("../../../supabase/migrations/20261202000000_governance.sql"),
    },
    Migration {
        file: "20261203000000_usage_cost.sql",
        sql: include_str!("../../../supabase/migrations/20261203000000_usage_cost.sql"),
    },
    Migration {
        file: "20261204000000_resilience.sql",
        sql: include_str!("../../../supabase/migrations/20261204000000_resilience.sql"),
    },
    Migration {
        file: "20261205000000_audit.sql",
        sql: include_str!("../../../supabase/migrations/20261205000000_audit.sql"),
    },
    Migration {
        file: "20261206000000_log_chain.sql",
        sql: include_str!("../../../supabase/migrations/20261206000000_log_chain.sql"),
    },
    Migration {
        file: "20261207000000_log_attempts_overhead.sql",
        sql: include_str!("../../../supabase/migrations/20261207000000_log_attempts_overhead.sql"),
    },
    Migration {
        file: "20261208000000_usage_error_kinds.sql",
        sql: include_str!("../../../supabase/migrations/20261208000000_usage_error_kinds.sql"),
    },
    Migration {
        file: "20261209000000_proxy_key_prefix.sql",
        sql: include_str!("../../../supabase/migrations/20261209000000_proxy_key_prefix.sql"),
    },
];

/// Serialises concurrent appliers (two instances starting at once) within a database.
const MIGRATION_LOCK: i64 = 0x6765_6d69_6e69; // "gemini"

/// Runs the role bootstrap, then each migration not yet recorded, all migrations in one
/// transaction: either the schema is brought fully up to date or nothing changes.
/// Needs a role allowed to create roles on plain PostgreSQL (a superuser, because of
/// BYPASSRLS); on Supabase the `postgres` role is enough.
pub async fn apply_migrations(database_url: &str) -> Result<(), StoreError> {
    apply_migrations_with(database_url, &ConnectOptions::default()).await
}

/// [`apply_migrations`] with connection options (a CA certificate for `sslmode=require`).
pub async fn apply_migrations_with(database_url: &str, options: &ConnectOptions) -> Result<(), StoreError> {
    let connector = Connector::new(database_url, options)?;
    let (mut client, connection) = connector.connect().await?;
    let driver = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("migration connection: {}", crate::error::map(e));
        }
    });
    let result = async {
        client.batch_execute(BOOTSTRAP_ROLES).await.db()?;
        let tx = client.transaction().await.db()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .db()?;
        tx.batch_execute(
            "CREATE SCHEMA IF NOT EXISTS supabase_migrations; \
             CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations \
                 (version text NOT NULL PRIMARY KEY, statements text[], name text);",
        )
        .await
        .db()?;
        for migration in MIGRATIONS {
            let applied = tx
                .query_opt(
                    "SELECT 1 FROM supabase_migrations.schema_migrations WHERE version = $1",
                    &[&migration.version()],
                )
                .await
                .db()?
                .is_some();
            if applied {
                continue;
            }
            tracing::info!("applying migration {}", migration.file);
            tx.batch_execute(migration.sql).await.db()?;
            tx.execute(
                "INSERT INTO supabase_migrations.schema_migrations (version, name) VALUES ($1, $2)",
                &[&migration.version(), &migration.name()],
            )
            .await
            .db()?;
        }
        tx.commit().await.db()
    }
    .await;
    drop(client);
    // The connection ends once the client is gone; wait so the caller's next
    // connection does not race this one's teardown.
    let _ = driver.await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_names_follow_the_cli() {
        let m = Migration {
            file: "20261124000000_gemini_proxy.sql",
            sql: "",
        };
        assert_eq!((m.version(), m.name()), ("20261124000000", "gemini_proxy"));
    }
}
