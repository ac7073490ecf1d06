//! Who may do what. The proxy uses the service role; the anon key (public by design:
//! it ships in every Supabase front end) must reach nothing, above all no secret.

use postgrest::Postgrest;
use postgrest_test_server::ANON_TOKEN;
use proxy_core::admin::{AdminStore, LogQuery, stats_query};
use proxy_core::platform::{KeyStore, LogSink, StoreError};
use proxy_core::pool::StateChange;
use serde_json::json;
use store_supabase::SupabaseStore;

use crate::fixtures::{SECRET_A, SECRET_B, hash, now_ms, record};
use crate::harness::{Env, store_as};

/// A key, a proxy key, state and a log row for the anonymous caller to go after.
async fn seed(env: &Env) -> i64 {
    let store = &env.store;
    let a = store.add_key(SECRET_A, "a").await.expect("add");
    store.create_proxy_key("p", &hash(7)).await.expect("proxy key");
    store
        .save_state(&[
            StateChange::Cooldown {
                key_id: a,
                model: "flash".into(),
                until_ms: now_ms() + 600_000,
            },
            StateChange::Invalid {
                key_id: a,
                reason: "API_KEY_INVALID".into(),
            },
        ])
        .await
        .expect("state");
    let mut log = record("seen", 1_000);
    log.answered_key_id = Some(a);
    log.upstream_key_ids = vec![a];
    store.write_logs(&[log]).await.expect("log");
    a
}

/// What the service role sees, to prove the anonymous attempts changed nothing.
async fn everything(store: &SupabaseStore) -> String {
    let snapshot = store.load().await.expect("load");
    let keys: Vec<_> = snapshot
        .keys
        .iter()
        .map(|(k, s)| {
            (
                k.id,
                k.name.clone(),
                k.secret.expose().to_string(),
                k.enabled,
                s.clone(),
            )
        })
        .collect();
    let logs = store.list_logs(&LogQuery::default()).await.expect("logs");
    format!("{keys:?} {:?} {logs:?}", snapshot.proxy_keys)
}

fn assert_refused<T: std::fmt::Debug>(what: &str, result: Result<T, StoreError>) {
    match result {
        Err(StoreError::Unavailable(msg)) => assert!(!msg.contains("TESTtest"), "{what}: {msg}"),
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn the_anon_key_gets_nothing_through_the_store() {
    let env = Env::new().await;
    let a = seed(&env).await;
    let before = everything(&env.store).await;
    let anon = store_as(&env.server, ANON_TOKEN);

    assert_refused("load", anon.load().await);
    let change = StateChange::Invalid {
        key_id: a,
        reason: "x".into(),
    };
    assert_refused("save_state", anon.save_state(&[change]).await);
    assert_refused("write_logs", anon.write_logs(&[record("evil", 2_000)]).await);
    assert_refused("add_key", anon.add_key(SECRET_B, "evil").await);
    assert_refused("list_keys", anon.list_keys().await);
    assert_refused("remove_key", anon.remove_key(a).await);
    assert_refused("disable", anon.set_key_enabled(a, false).await);
    assert_refused("enable", anon.set_key_enabled(a, true).await);
    assert_refused("create_proxy_key", anon.create_proxy_key("evil", &hash(8)).await);
    assert_refused("list_proxy_keys", anon.list_proxy_keys().await);
    assert_refused("revoke_proxy_key", anon.revoke_proxy_key(1).await);
    assert_refused("list_logs", anon.list_logs(&LogQuery::default()).await);
    assert_refused("usage", anon.usage(&stats_query(0)).await);
    assert_refused("prune_logs", anon.prune_logs(u64::MAX).await);

    assert_eq!(everything(&env.store).await, before);
}

/// Raw PostgREST requests as anon, on every table and function the schema exposes.
#[tokio::test]
async fn the_anon_key_gets_nothing_over_raw_rest() {
    let env = Env::new().await;
    let a = seed(&env).await;
    let before = everything(&env.store).await;
    let api = Postgrest::new(env.server.rest_url())
        .insert_header("apikey", ANON_TOKEN)
        .insert_header("Authorization", format!("Bearer {ANON_TOKEN}"));
    let id = a.to_string();

    let mut attempts = vec![
        ("read secrets", api.from("upstream_keys").select("secret")),
        ("read keys", api.from("upstream_keys").select("*")),
        ("read ids", api.from("upstream_keys").select("id")),
        ("read proxy keys", api.from("proxy_keys").select("*")),
        ("read state", api.from("key_state").select("*")),
        ("read cooldowns", api.from("key_cooldowns").select("*")),
        ("read logs", api.from("request_logs").select("*")),
        ("read usage", api.from("usage_daily").select("*")),
        (
            "insert key",
            api.from("upstream_keys")
                .insert(json!({ "secret": SECRET_B, "name": "evil" }).to_string()),
        ),
        (
            "insert proxy key",
            api.from("proxy_keys")
                .insert(json!({ "secret_hash": hash(9), "name": "evil" }).to_string()),
        ),
        ("insert state", api.from("key_state").insert(json!({ "key_id": a }).to_string())),
        (
            "insert cooldown",
            api.from("key_cooldowns").insert(
                json!({ "key_id": a, "model": "m", "until_at": "2999-01-01T00:00:00Z" }).to_string(),
            ),
        ),
        (
            "insert log",
            api.from("request_logs").insert(
                json!({ "id": "evil", "started_at": "2020-01-01T00:00:00Z", "route": "r", "api": "a", "status": 200 })
                    .to_string(),
            ),
        ),
        (
            "update key",
            api.from("upstream_keys")
                .eq("id", &id)
                .update(json!({ "enabled": false }).to_string()),
        ),
        (
            "update proxy key",
            api.from("proxy_keys")
                .not("is", "id", "null")
                .update(json!({ "revoked": true }).to_string()),
        ),
        (
            "update state",
            api.from("key_state")
                .eq("key_id", &id)
                .update(json!({ "invalid_reason": null }).to_string()),
        ),
        ("delete key", api.from("upstream_keys").eq("id", &id).delete()),
        ("delete proxy keys", api.from("proxy_keys").not("is", "id", "null").delete()),
        ("delete cooldowns", api.from("key_cooldowns").eq("key_id", &id).delete()),
        ("delete logs", api.from("request_logs").not("is", "id", "null").delete()),
    ];
    let calls = [
        ("record_key_state", json!({ "changes": [] })),
        ("insert_request_logs", json!({ "records": [record("evil", 1)] })),
        ("prune_request_logs_before", json!({ "before_at": "infinity" })),
        ("prune_request_logs", json!({ "older_than": "0 seconds" })),
        ("usage_summary", json!({ "since": "1970-01-01T00:00:00Z" })),
    ];
    for (name, args) in calls {
        attempts.push((name, api.rpc(name, args.to_string())));
    }

    for (what, request) in attempts {
        let response = request.execute().await.expect("the server answers");
        let status = response.status().as_u16();
        let body = response.text().await.expect("body");
        assert!(matches!(status, 401 | 403), "{what}: anon got {status}: {body}");
        assert!(body.contains("42501"), "{what}: {body}");
        assert!(!body.contains("TESTtest"), "{what}: {body}");
    }
    assert_eq!(everything(&env.store).await, before);
}

#[tokio::test]
async fn a_token_for_no_role_is_refused() {
    let env = Env::new().await;
    let stranger = store_as(&env.server, "not-a-role");
    assert_refused("load", stranger.load().await);
    assert_refused("add_key", stranger.add_key(SECRET_A, "x").await);
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    // Nothing listens on port 1; the connection is refused at once.
    let store = SupabaseStore::new("http://127.0.0.1:1", "service_role").expect("valid settings");
    match store.load().await {
        Err(StoreError::Unavailable(msg)) => {
            assert!(msg.contains("cannot reach"), "{msg}");
            assert!(!msg.contains("service_role"), "{msg}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_refused("write_logs", store.write_logs(&[record("x", 1)]).await);
}
