//! Opt-in: the same store against a real Supabase project, to prove real PostgREST
//! (and Supabase's gateway) accept every request form the stand-in was taught. Runs
//! only with `SUPABASE_URL` and `SUPABASE_SERVICE_ROLE_KEY` set; `SUPABASE_ANON_KEY`
//! adds the anonymous checks. See the crate README for setting a project up.
//!
//! It leaves the project as it found it: its key is removed again (state, cooldowns
//! and counters go with it), and its log rows are dated 1970 and pruned with a 1970
//! cutoff, which no real request log can fall under. It creates no proxy key, since
//! those can only be revoked, not deleted, through the store.

use proxy_core::admin::{AdminStore, LogQuery, log_stats};
use proxy_core::log::LogRecord;
use proxy_core::platform::{KeyStore, LogSink, StoreError};
use proxy_core::pool::StateChange;
use store_supabase::SupabaseStore;

use crate::fixtures::{now_ms, record};

fn settings() -> Option<(String, String)> {
    let url = std::env::var("SUPABASE_URL").ok().filter(|v| !v.is_empty());
    let key = std::env::var("SUPABASE_SERVICE_ROLE_KEY")
        .ok()
        .filter(|v| !v.is_empty());
    url.zip(key)
}

#[tokio::test]
async fn against_a_real_supabase_project() {
    let Some((url, key)) = settings() else {
        eprintln!("skipped: set SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY to run against a real project");
        return;
    };
    let store = SupabaseStore::new(&url, &key).expect("valid settings");
    let run = now_ms();
    // Unique per run, key-shaped, and obviously not a real key.
    let secret = format!("AIzaLIVEtestLIVEtestLIVEtest{run:013}");
    let id = store
        .add_key(&secret, &format!("live-test-{run}"))
        .await
        .expect("add key");
    let outcome = exercise(&store, id, &secret, run).await;
    // Clean up whether or not the checks passed.
    let removed = store.remove_key(id).await;
    let pruned = store.prune_logs(LIVE_LOG_CUTOFF).await;
    outcome.unwrap_or_else(|e| panic!("{e}"));
    assert!(removed.expect("remove key"));
    assert!(pruned.expect("prune") >= 200);

    if let Ok(anon_key) = std::env::var("SUPABASE_ANON_KEY") {
        let anon = SupabaseStore::new(&url, &anon_key).expect("valid settings");
        assert!(anon.load().await.is_err(), "anon could load keys");
        assert!(
            anon.list_logs(&LogQuery::default()).await.is_err(),
            "anon could read logs"
        );
        assert!(
            anon.write_logs(&[record("live-anon", 1)]).await.is_err(),
            "anon could write"
        );
    }
}

/// Every live log row starts before this (1970-01-01T00:00:02Z).
const LIVE_LOG_CUTOFF: u64 = 2_000;

async fn exercise(store: &SupabaseStore, id: i64, secret: &str, run: u64) -> Result<(), String> {
    let found = |snapshot: &proxy_core::platform::KeySnapshot| {
        snapshot
            .keys
            .iter()
            .find(|(k, _)| k.id == id)
            .map(|(k, s)| (k.clone(), s.clone()))
    };
    let (key, _) = found(&store.load().await.map_err(show)?).ok_or("added key not loaded")?;
    check(key.secret.expose() == secret, "secret round trip")?;
    match store.add_key(secret, "dup").await {
        Err(StoreError::Invalid(msg)) => check(!msg.contains(secret), "duplicate message hides the secret")?,
        other => return Err(format!("duplicate add: {other:?}")),
    }

    let until = now_ms() + 600_000;
    let changes = [
        StateChange::Cooldown {
            key_id: id,
            model: "live-model".into(),
            until_ms: until,
        },
        StateChange::Invalid {
            key_id: id,
            reason: "LIVE_TEST".into(),
        },
    ];
    store.save_state(&changes).await.map_err(show)?;
    let (_, state) = found(&store.load().await.map_err(show)?).ok_or("key gone")?;
    check(
        state.invalid_reason.as_deref() == Some("LIVE_TEST"),
        "invalid mark",
    )?;
    check(state.cooldowns.get("live-model") == Some(&until), "cooldown")?;
    check(store.set_key_enabled(id, true).await.map_err(show)?, "enable")?;
    let (_, state) = found(&store.load().await.map_err(show)?).ok_or("key gone")?;
    check(
        state.invalid_reason.is_none() && state.cooldowns.is_empty(),
        "enable clears state",
    )?;

    let batch: Vec<LogRecord> = (0..200u64)
        .map(|i| {
            let mut r = record(&format!("live-{run}-{i:03}"), 1_000 + i);
            r.upstream_key_ids = vec![id];
            r.answered_key_id = Some(id);
            r
        })
        .collect();
    store.write_logs(&batch).await.map_err(show)?;
    store.write_logs(&batch).await.map_err(show)?;
    let mine = LogQuery {
        upstream_key_id: Some(id),
        until_ms: Some(LIVE_LOG_CUTOFF),
        limit: 1000,
        ..LogQuery::default()
    };
    let listed = store.list_logs(&mine).await.map_err(show)?;
    check(listed.len() == 200, "a retried batch keeps one copy")?;
    check(listed[0] == batch[199], "newest first, every field")?;
    let stats = log_stats(store, 0).await.map_err(show)?;
    check(stats.total.requests >= 200, "stats")?;
    store.list_keys().await.map_err(show)?;
    store.list_proxy_keys().await.map_err(show)?;
    Ok(())
}

fn show(e: StoreError) -> String {
    e.to_string()
}

fn check(ok: bool, what: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("live check failed: {what}"))
    }
}
