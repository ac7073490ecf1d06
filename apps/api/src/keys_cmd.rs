//! `gemini-proxy keys …`: upstream Gemini keys. Output shows masked keys only.

use std::io::BufRead;

use proxy_core::admin::{AdminStore, KeyRow};
use proxy_core::keys::{KeyLimits, Limits, mask_key};

use crate::cli::{KeyLimitArgs, KeysCommand};
use crate::output::{format_time, opt, print_json, print_table};

/// What `keys update` can change, as its flags spell it.
const UPDATE_FLAGS: &str = "--rpm N, --tpm N, --rpd N (with --model M for one model)";

pub async fn run(store: &dyn AdminStore, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Add { keys, name, limits } => add(store, keys, name, &limits).await,
        KeysCommand::Update { id, limits } => update(store, id, &limits).await,
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

/// Refuses, before any store is opened, a command that could do nothing.
pub fn check(command: &KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Update { id, limits } if !limits.any() => {
            anyhow::bail!("nothing to change for key {id}: give at least one of {UPDATE_FLAGS}")
        }
        KeysCommand::Add { limits, .. } if limits.model.is_some() && !limits.any() => {
            anyhow::bail!("--model names the model the limits are for: give --rpm, --tpm or --rpd with it")
        }
        _ => Ok(()),
    }
}

/// `flags` applied to `limits` (0 clears).
fn apply(limits: &mut KeyLimits, flags: &KeyLimitArgs) {
    limits.update(flags.model.as_deref(), flags.rpm, flags.tpm, flags.rpd);
}

async fn update(store: &dyn AdminStore, id: i64, flags: &KeyLimitArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        flags.any(),
        "nothing to change for key {id}: give at least one of {UPDATE_FLAGS}"
    );
    let Some(key) = store.list_keys().await?.into_iter().find(|k| k.id == id) else {
        anyhow::bail!("no upstream key with id {id}");
    };
    let mut limits = key.limits;
    apply(&mut limits, flags);
    anyhow::ensure!(
        store.set_key_limits(id, &limits).await?,
        "no upstream key with id {id}"
    );
    println!("key {id} limits: {}", limits_text(&limits));
    Ok(())
}

fn one_limits_text(limits: &Limits) -> String {
    let parts: Vec<String> = [("rpm", limits.rpm), ("tpm", limits.tpm), ("rpd", limits.rpd)]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| format!("{name}={v}")))
        .collect();
    parts.join(",")
}

/// `rpm=10,rpd=500; gemini-2.5-pro: rpm=2`, or `none`.
fn limits_text(limits: &KeyLimits) -> String {
    let mut parts = Vec::new();
    if !limits.all_models.is_empty() {
        parts.push(one_limits_text(&limits.all_models));
    }
    for (model, model_limits) in &limits.models {
        parts.push(format!("{model}: {}", one_limits_text(model_limits)));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join("; ")
    }
}

/// Running cooldowns, a model that is off for the key said so.
fn cooldowns_text(key: &KeyRow) -> String {
    let cooldowns: Vec<String> = key
        .cooldowns
        .iter()
        .map(|(model, until)| {
            if key.off_models.contains(model) {
                format!("off today: {model} (quota 0) until {}", format_time(*until))
            } else {
                format!("{model} until {}", format_time(*until))
            }
        })
        .collect();
    if cooldowns.is_empty() {
        "-".into()
    } else {
        cooldowns.join(", ")
    }
}

async fn add(
    store: &dyn AdminStore,
    args: Vec<String>,
    name: Option<String>,
    flags: &KeyLimitArgs,
) -> anyhow::Result<()> {
    let mut limits = KeyLimits::default();
    apply(&mut limits, flags);
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
        match store.add_key_with_limits(secret, &key_name, &limits).await {
            Ok(id) if limits.is_empty() => println!("added key {id} ({})", mask_key(secret)),
            Ok(id) => println!(
                "added key {id} ({}, limits {})",
                mask_key(secret),
                limits_text(&limits)
            ),
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
            let cooldowns = cooldowns_text(&k);
            vec![
                k.id.to_string(),
                k.name,
                k.masked,
                status.to_string(),
                opt(k.invalid_reason),
                limits_text(&k.limits),
                cooldowns,
                format_time(k.created_at_ms),
            ]
        })
        .collect();
    print_table(
        &[
            "ID",
            "NAME",
            "KEY",
            "STATUS",
            "INVALID",
            "LIMITS",
            "COOLDOWNS",
            "CREATED",
        ],
        &rows,
    );
    Ok(())
}
