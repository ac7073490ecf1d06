//! `gemini-proxy proxy-keys …`: the keys clients use. The secret is shown once.

use proxy_core::admin::AdminStore;
use proxy_core::auth::{format_proxy_key, hash_proxy_key};
use serde_json::json;

use crate::cli::ProxyKeysCommand;
use crate::output::{format_time, print_json, print_table};

pub async fn run(store: &dyn AdminStore, command: ProxyKeysCommand) -> anyhow::Result<()> {
    match command {
        ProxyKeysCommand::Create { name, json } => create(store, &name, json).await,
        ProxyKeysCommand::List { json } => list(store, json).await,
        ProxyKeysCommand::Revoke { id } => {
            anyhow::ensure!(store.revoke_proxy_key(id).await?, "no proxy key with id {id}");
            println!("proxy key {id} revoked");
            Ok(())
        }
    }
}

async fn create(store: &dyn AdminStore, name: &str, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(!name.trim().is_empty(), "--name must not be empty");
    let mut random = [0u8; 24];
    getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    let secret = format_proxy_key(&random);
    let id = store
        .create_proxy_key(name.trim(), &hash_proxy_key(&secret))
        .await?;
    if json {
        return print_json(&json!({"id": id, "name": name.trim(), "key": secret}));
    }
    println!("{secret}");
    eprintln!("proxy key {id} ({name}) created. Store the key above now: it is not shown again.");
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
                format_time(k.created_at_ms),
            ]
        })
        .collect();
    print_table(&["ID", "NAME", "STATUS", "CREATED"], &rows);
    Ok(())
}
