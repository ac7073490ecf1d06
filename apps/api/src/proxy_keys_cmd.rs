//! `gemini-proxy proxy-keys …`: the keys clients use. The secret is shown once.

use proxy_core::admin::{AdminStore, ProxyKeyUpdate};
use proxy_core::auth::{format_proxy_key, hash_proxy_key};
use proxy_core::policy::ProxyKeyPolicy;
use serde_json::json;

use crate::cli::{ProxyKeyUpdateArgs, ProxyKeysCommand};
use crate::output::{format_time, print_json, print_table};

/// What `proxy-keys update` can change, as its flags spell it.
const UPDATE_FLAGS: &str = "--passthrough allow|deny";

pub async fn run(store: &dyn AdminStore, command: ProxyKeysCommand) -> anyhow::Result<()> {
    match command {
        ProxyKeysCommand::Create {
            name,
            passthrough,
            json,
        } => {
            let policy = ProxyKeyPolicy {
                passthrough: passthrough.allowed(),
                ..ProxyKeyPolicy::default()
            };
            create(store, &name, &policy, json).await
        }
        ProxyKeysCommand::List { json } => list(store, json).await,
        ProxyKeysCommand::Update(args) => update(store, &args).await,
        ProxyKeysCommand::Revoke { id } => {
            anyhow::ensure!(store.revoke_proxy_key(id).await?, "no proxy key with id {id}");
            println!("proxy key {id} revoked");
            Ok(())
        }
    }
}

/// Refuses, before any store is opened, a command that could do nothing.
pub fn check(command: &ProxyKeysCommand) -> anyhow::Result<()> {
    if let ProxyKeysCommand::Update(args) = command {
        update_of(args)?;
    }
    Ok(())
}

/// The change the flags ask for; an error naming what can be changed when none.
fn update_of(args: &ProxyKeyUpdateArgs) -> anyhow::Result<ProxyKeyUpdate> {
    let update = ProxyKeyUpdate {
        passthrough: args.passthrough.map(|access| access.allowed()),
    };
    anyhow::ensure!(
        !update.is_empty(),
        "nothing to change for proxy key {}: give at least one of {UPDATE_FLAGS}",
        args.id
    );
    Ok(update)
}

async fn update(store: &dyn AdminStore, args: &ProxyKeyUpdateArgs) -> anyhow::Result<()> {
    let id = args.id;
    let update = update_of(args)?;
    anyhow::ensure!(
        store.update_proxy_key(id, &update).await?,
        "no proxy key with id {id}"
    );
    if let Some(allowed) = update.passthrough {
        println!("proxy key {id}: pass-through {}", permission(allowed));
    }
    Ok(())
}

fn permission(allowed: bool) -> &'static str {
    if allowed { "allowed" } else { "denied" }
}

async fn create(
    store: &dyn AdminStore,
    name: &str,
    policy: &ProxyKeyPolicy,
    json: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(!name.trim().is_empty(), "--name must not be empty");
    let mut random = [0u8; 24];
    getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    let secret = format_proxy_key(&random);
    let id = store
        .create_proxy_key_with_policy(name.trim(), &hash_proxy_key(&secret), policy)
        .await?;
    if json {
        return print_json(&json!({
            "id": id,
            "name": name.trim(),
            "key": secret,
            "passthrough": policy.passthrough,
        }));
    }
    println!("{secret}");
    eprintln!(
        "proxy key {id} ({name}, pass-through {}) created. Store the key above now: it is not shown again.",
        permission(policy.passthrough)
    );
    Ok(())
}

async fn list(store: &dyn AdminStore, json: bool) -> anyhow::Result<()> {
    let keys = store.list_proxy_keys().await?;
    if json {
        return print_json(&keys);
    }
    let rows: Vec<Vec<String>> = keys
        .into_iter()
        .map(|k| {
            let status = if k.revoked { "revoked" } else { "active" };
            vec![
                k.id.to_string(),
                k.name,
                status.to_string(),
                permission(k.policy.passthrough).to_string(),
                format_time(k.created_at_ms),
            ]
        })
        .collect();
    print_table(&["ID", "NAME", "STATUS", "PASSTHROUGH", "CREATED"], &rows);
    Ok(())
}
