//! `gemini-proxy keys …`: upstream Gemini keys. Output shows masked keys only.

use std::io::BufRead;

use proxy_core::admin::AdminStore;
use proxy_core::keys::mask_key;

use crate::cli::KeysCommand;
use crate::output::{format_time, opt, print_json, print_table};

pub async fn run(store: &dyn AdminStore, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Add { keys, name } => add(store, keys, name).await,
        KeysCommand::List { json } => list(store, json).await,
        KeysCommand::Remove { id } => done(store.remove_key(id).await?, id, "removed"),
        KeysCommand::Enable { id } => done(store.set_key_enabled(id, true).await?, id, "enabled"),
        KeysCommand::Disable { id } => done(store.set_key_enabled(id, false).await?, id, "disabled"),
    }
}

fn done(found: bool, id: i64, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(found, "no upstream key with id {id}");
    println!("key {id} {what}");
    Ok(())
}

async fn add(store: &dyn AdminStore, args: Vec<String>, name: Option<String>) -> anyhow::Result<()> {
    let mut secrets = Vec::new();
    for arg in args {
        if arg == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                let line = line.trim();
                if !line.is_empty() && !line.starts_with('#') {
                    secrets.push(line.to_string());
                }
            }
        } else {
            secrets.push(arg.trim().to_string());
        }
    }
    anyhow::ensure!(!secrets.is_empty(), "no keys given");
    let many = secrets.len() > 1;
    for (index, secret) in secrets.iter().enumerate() {
        let key_name = match (&name, many) {
            (Some(name), true) => format!("{name}-{}", index + 1),
            (Some(name), false) => name.clone(),
            (None, _) => mask_key(secret),
        };
        match store.add_key(secret, &key_name).await {
            Ok(id) => println!("added key {id} ({})", mask_key(secret)),
            Err(error) => anyhow::bail!("key {} not added: {error}", mask_key(secret)),
        }
    }
    Ok(())
}

async fn list(store: &dyn AdminStore, json: bool) -> anyhow::Result<()> {
    let keys = store.list_keys().await?;
    if json {
        return print_json(&keys);
    }
    let rows: Vec<Vec<String>> = keys
        .into_iter()
        .map(|k| {
            let status = match (k.enabled, &k.invalid_reason) {
                (false, _) => "disabled",
                (true, Some(_)) => "invalid",
                (true, None) => "active",
            };
            let cooldowns: Vec<String> = k
                .cooldowns
                .iter()
                .map(|(model, until)| format!("{model} until {}", format_time(*until)))
                .collect();
            vec![
                k.id.to_string(),
                k.name,
                k.masked,
                status.to_string(),
                opt(k.invalid_reason),
                if cooldowns.is_empty() {
                    "-".into()
                } else {
                    cooldowns.join(", ")
                },
                format_time(k.created_at_ms),
            ]
        })
        .collect();
    print_table(
        &["ID", "NAME", "KEY", "STATUS", "INVALID", "COOLDOWNS", "CREATED"],
        &rows,
    );
    Ok(())
}
