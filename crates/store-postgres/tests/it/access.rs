//! Row level security and grants: `anon` and `authenticated` (what Supabase's REST API
//! uses for browsers and signed-in users) can neither read nor change anything, not even
//! on a database whose default privileges grant them everything (as Supabase's do);
//! `service_role` can do what the proxy needs.

use proxy_core::admin::AdminStore;
use proxy_core::platform::{KeyStore, LogSink};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::support::{SECRET_A, hash, record, test_db};

struct Relation {
    name: String,
    is_view: bool,
    column: String,
}

async fn relations(client: &Client) -> Vec<Relation> {
    client
        .query(
            "SELECT c.relname, c.relkind = 'v', \
                    (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 \
                     AND NOT a.attisdropped ORDER BY a.attnum DESC LIMIT 1)::text \
             FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v', 'p') \
             ORDER BY c.relname",
            &[],
        )
        .await
        .expect("list relations")
        .iter()
        .map(|row| Relation {
            name: row.get(0),
            is_view: row.get(1),
            column: row.get(2),
        })
        .collect()
}

/// (signature, a call with NULL arguments, returns trigger)
async fn functions(client: &Client) -> Vec<(String, String, bool)> {
    client
        .query(
            "SELECT p.oid::regprocedure::text, \
                    format('SELECT public.%I(%s)', p.proname, coalesce((SELECT string_agg(format('NULL::%s', \
                        format_type(t, NULL)), ', ' ORDER BY n) FROM unnest(p.proargtypes) WITH ORDINALITY AS a(t, n)), '')), \
                    p.prorettype = 'trigger'::regtype \
             FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace ORDER BY 1",
            &[],
        )
        .await
        .expect("list functions")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

async fn denied(client: &Client, sql: &str) {
    match client.batch_execute(sql).await {
        Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {}
        Err(e) => panic!("{sql}: expected permission denied, got {e:?}"),
        Ok(()) => panic!("{sql}: expected permission denied, but it ran"),
    }
}

async fn yes(client: &Client, sql: &str) -> bool {
    client.query_one(sql, &[]).await.expect(sql).get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn anon_and_authenticated_get_nothing() {
    let db = test_db().await;
    let store = db.store().await;
    // Data in every table, so "nothing" is not just an empty table.
    let key = store.add_key(SECRET_A, "a").await.expect("add");
    store.create_proxy_key("p", &hash(0xa)).await.expect("proxy key");
    store
        .save_state(&[proxy_core::pool::StateChange::Cooldown {
            key_id: key,
            model: "flash".into(),
            until_ms: crate::support::now_ms() + 60_000,
        }])
        .await
        .expect("state");
    let mut r = record("r", 1);
    r.answered_key_id = Some(key);
    store.write_logs(&[r]).await.expect("log");

    let admin = db.client().await;
    let relations = relations(&admin).await;
    let names: Vec<&str> = relations.iter().map(|r| r.name.as_str()).collect();
    for expected in [
        "upstream_keys",
        "proxy_keys",
        "key_state",
        "key_cooldowns",
        "request_logs",
        "usage_daily",
        "usage_cost_daily",
    ] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    let functions = functions(&admin).await;
    assert!(functions.len() >= 7, "{functions:?}");

    // Row level security on every table, and no policy anywhere in the schema.
    for relation in relations.iter().filter(|r| !r.is_view) {
        let on = yes(
            &admin,
            &format!(
                "SELECT relrowsecurity FROM pg_class WHERE oid = 'public.{}'::regclass",
                relation.name
            ),
        )
        .await;
        assert!(on, "row level security off on {}", relation.name);
    }
    assert!(
        yes(
            &admin,
            "SELECT count(*) = 0 FROM pg_policies WHERE schemaname = 'public'"
        )
        .await
    );
    // Views read with the caller's rights, never their owner's.
    assert!(
        yes(
            &admin,
            "SELECT coalesce(bool_and('security_invoker=true' = ANY(reloptions)), true) FROM pg_class \
             WHERE relnamespace = 'public'::regnamespace AND relkind = 'v'"
        )
        .await
    );

    for role in ["anon", "authenticated"] {
        for relation in &relations {
            for privilege in [
                "SELECT",
                "INSERT",
                "UPDATE",
                "DELETE",
                "TRUNCATE",
                "REFERENCES",
                "TRIGGER",
            ] {
                let granted = yes(
                    &admin,
                    &format!(
                        "SELECT has_table_privilege('{role}', 'public.{}', '{privilege}')",
                        relation.name
                    ),
                )
                .await;
                assert!(!granted, "{role} has {privilege} on {}", relation.name);
            }
        }
        assert!(
            !yes(
                &admin,
                &format!("SELECT has_column_privilege('{role}', 'public.upstream_keys', 'secret', 'SELECT')")
            )
            .await
        );
        for sequence in ["upstream_keys_id_seq", "proxy_keys_id_seq"] {
            assert!(
                !yes(
                    &admin,
                    &format!(
                        "SELECT has_sequence_privilege('{role}', 'public.{sequence}', 'USAGE') \
                         OR has_sequence_privilege('{role}', 'public.{sequence}', 'SELECT') \
                         OR has_sequence_privilege('{role}', 'public.{sequence}', 'UPDATE')"
                    )
                )
                .await,
                "{role} may use {sequence}"
            );
        }
        for (signature, _, _) in &functions {
            let granted = yes(
                &admin,
                &format!("SELECT has_function_privilege('{role}', '{signature}', 'EXECUTE')"),
            )
            .await;
            assert!(!granted, "{role} may execute {signature}");
        }
    }

    // And in practice, the way PostgREST does it: log in as authenticator, switch role.
    for role in ["anon", "authenticated"] {
        let client = db.client().await;
        client
            .batch_execute(&format!(
                "SET SESSION AUTHORIZATION authenticator; SET ROLE {role}"
            ))
            .await
            .expect("become role");
        assert_eq!(
            client
                .query_one("SELECT current_user::text", &[])
                .await
                .expect("whoami")
                .get::<_, String>(0),
            role
        );
        denied(&client, "SELECT secret FROM public.upstream_keys").await;
        for relation in &relations {
            let (name, column) = (&relation.name, &relation.column);
            denied(&client, &format!("SELECT * FROM public.{name}")).await;
            denied(&client, &format!("SELECT count(*) FROM public.{name}")).await;
            if !relation.is_view {
                denied(&client, &format!("INSERT INTO public.{name} DEFAULT VALUES")).await;
                denied(&client, &format!("UPDATE public.{name} SET {column} = {column}")).await;
                denied(&client, &format!("DELETE FROM public.{name}")).await;
                denied(&client, &format!("TRUNCATE public.{name}")).await;
            }
        }
        for (signature, call, is_trigger) in &functions {
            if *is_trigger {
                continue; // not callable by anyone; the privilege check above covers it
            }
            match client.batch_execute(call).await {
                Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {}
                other => panic!("{role} calling {signature}: expected permission denied, got {other:?}"),
            }
        }
        denied(&client, "SELECT nextval('public.upstream_keys_id_seq')").await;
    }

    // Nothing changed through any of that.
    let rows = store.list_keys().await.expect("list");
    assert_eq!(rows.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn service_role_can_do_what_the_proxy_needs() {
    let db = test_db().await;
    let client = db.client().await;
    client
        .batch_execute("SET SESSION AUTHORIZATION authenticator; SET ROLE service_role")
        .await
        .expect("become service_role");
    client
        .batch_execute(
            "INSERT INTO upstream_keys (name, secret) VALUES ('k', 'AIzaSyTESTtestTESTtestTESTtestSSSS9999');
             UPDATE upstream_keys SET enabled = false;
             SELECT record_key_state('[{\"kind\":\"invalid\",\"key_id\":1,\"reason\":\"X\"}]');
             SELECT insert_request_logs('[{\"id\":\"x\",\"started_at_ms\":5,\"route\":\"r\",\"api\":\"gemini\",\"status\":200,\"answered_key_id\":1}]');
             SELECT * FROM usage_summary('epoch');
             SELECT * FROM usage_daily;
             SELECT prune_request_logs('1 day');
             SELECT prune_request_logs_before(now());
             DELETE FROM key_cooldowns; DELETE FROM key_state; DELETE FROM request_logs;",
        )
        .await
        .expect("service_role runs the proxy's statements");
    let secret: String = client
        .query_one("SELECT secret FROM upstream_keys", &[])
        .await
        .expect("service_role reads secrets")
        .get(0);
    assert!(secret.starts_with("AIza"));
    client
        .batch_execute(&format!(
            "INSERT INTO proxy_keys (name, secret_hash) VALUES ('p', '{}'); UPDATE proxy_keys SET revoked = true; \
             UPDATE proxy_keys SET passthrough = false; \
             DELETE FROM proxy_keys; DELETE FROM upstream_keys;",
            hash(0xb)
        ))
        .await
        .expect("service_role manages keys");
}
