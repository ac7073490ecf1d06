//! `gemini-proxy proxy-keys …`: the keys clients use. The secret is shown once.

use proxy_core::admin::{AdminStore, KeyUsage, PeriodUsage, ProxyKeyRow, ProxyKeyUpdate, proxy_key_usage};
use proxy_core::auth::{format_proxy_key, hash_proxy_key, secret_prefix};
use proxy_core::policy::ProxyKeyPolicy;
use serde_json::{Value, json};

use crate::cli::{PolicyArgs, ProxyKeyUpdateArgs, ProxyKeysCommand};
use crate::output::{format_time, format_usd, print_json, print_table};

/// What `proxy-keys update` can change, as its flags spell it.
const UPDATE_FLAGS: &str = "--passthrough allow|deny, --models A,B, --rpm N, --tpm N, \
     --tokens-per-day N, --budget-usd X, --budget-period day|month, --expires TIME";

pub async fn run(store: &dyn AdminStore, command: ProxyKeysCommand) -> anyhow::Result<()> {
    match command {
        ProxyKeysCommand::Create {
            name,
            passthrough,
            policy,
            json,
        } => {
            let mut created = ProxyKeyPolicy {
                passthrough: passthrough.allowed(),
                ..ProxyKeyPolicy::default()
            };
            update_of_flags(&policy).apply(&mut created);
            create(store, &name, &created, json).await
        }
        ProxyKeysCommand::List { json } => list(store, json).await,
        ProxyKeysCommand::Update(args) => update(store, &args).await,
        ProxyKeysCommand::Rename { id, name } => {
            let name = name.trim();
            anyhow::ensure!(!name.is_empty(), "the new name must not be empty");
            anyhow::ensure!(
                store.rename_proxy_key(id, name).await?,
                "no proxy key with id {id}"
            );
            println!("proxy key {id} renamed to {name}");
            Ok(())
        }
        ProxyKeysCommand::Delete { id } => {
            anyhow::ensure!(store.delete_proxy_key(id).await?, "no proxy key with id {id}");
            println!("proxy key {id} deleted (its log records stay)");
            Ok(())
        }
        ProxyKeysCommand::Revoke { id } => {
            anyhow::ensure!(store.revoke_proxy_key(id).await?, "no proxy key with id {id}");
            println!("proxy key {id} revoked");
            Ok(())
        }
        ProxyKeysCommand::Usage { id, json } => usage(store, id, json).await,
    }
}

/// Refuses, before any store is opened, a command that could do nothing.
pub fn check(command: &ProxyKeysCommand) -> anyhow::Result<()> {
    match command {
        ProxyKeysCommand::Update(args) => update_of(args).map(|_| ()),
        ProxyKeysCommand::Create { name, .. } => {
            anyhow::ensure!(!name.trim().is_empty(), "--name must not be empty");
            Ok(())
        }
        ProxyKeysCommand::Rename { name, .. } => {
            anyhow::ensure!(!name.trim().is_empty(), "the new name must not be empty");
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The policy fields the flags give (passthrough aside).
fn update_of_flags(flags: &PolicyArgs) -> ProxyKeyUpdate {
    ProxyKeyUpdate {
        passthrough: None,
        models: flags.models.as_ref().map(|m| m.0.clone()),
        rpm: flags.rpm.map(|l| l.0),
        tpm: flags.tpm.map(|l| l.0),
        tokens_per_day: flags.tokens_per_day.map(|l| l.0),
        budget_usd: flags.budget_usd.map(|b| b.0),
        budget_period: flags.budget_period,
        expires_at_ms: flags.expires.map(|e| e.0),
    }
}

/// The change the flags ask for; an error naming what can be changed when none.
fn update_of(args: &ProxyKeyUpdateArgs) -> anyhow::Result<ProxyKeyUpdate> {
    let update = ProxyKeyUpdate {
        passthrough: args.passthrough.map(|access| access.allowed()),
        ..update_of_flags(&args.policy)
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
    let rest = ProxyKeyUpdate {
        passthrough: None,
        ..update.clone()
    };
    if !rest.is_empty() {
        // Said as the store now holds it.
        let policy = store
            .list_proxy_keys()
            .await?
            .into_iter()
            .find(|k| k.id == id)
            .map(|k| k.policy)
            .unwrap_or_default();
        println!(
            "proxy key {id}: models {}; limits {}; expires {}",
            models_text(&policy),
            limits_text(&policy),
            expiry_text(&policy)
        );
    }
    Ok(())
}

fn permission(allowed: bool) -> &'static str {
    if allowed { "allowed" } else { "denied" }
}

/// `any`, or the patterns.
fn models_text(policy: &ProxyKeyPolicy) -> String {
    if policy.models.is_empty() {
        "any".into()
    } else {
        policy.models.join(",")
    }
}

/// `rpm=60,tpm=1000,tokens/day=5000,budget=$2.50/month`, or `none`; no spaces, so a
/// table keeps one word per cell.
fn limits_text(policy: &ProxyKeyPolicy) -> String {
    let mut parts = Vec::new();
    if let Some(rpm) = policy.rpm {
        parts.push(format!("rpm={rpm}"));
    }
    if let Some(tpm) = policy.tpm {
        parts.push(format!("tpm={tpm}"));
    }
    if let Some(tokens) = policy.tokens_per_day {
        parts.push(format!("tokens/day={tokens}"));
    }
    if let Some(budget) = policy.budget_usd {
        parts.push(format!(
            "budget={}/{}",
            format_usd(budget),
            policy.budget_period.as_str()
        ));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(",")
    }
}

fn expiry_text(policy: &ProxyKeyPolicy) -> String {
    policy.expires_at_ms.map_or_else(|| "never".into(), format_time)
}

/// The policy's fields as JSON (beside a row's own), expiry also as RFC 3339.
fn policy_json(policy: &ProxyKeyPolicy) -> Value {
    let mut value = serde_json::to_value(policy).unwrap_or(Value::Null);
    if let Some(fields) = value.as_object_mut() {
        fields.insert(
            "expires_at".into(),
            policy
                .expires_at_ms
                .map(format_time)
                .map_or(Value::Null, Value::from),
        );
    }
    value
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
        .create_proxy_key_with_policy(
            name.trim(),
            &hash_proxy_key(&secret),
            Some(&secret_prefix(&secret)),
            policy,
        )
        .await?;
    if json {
        let mut out = json!({
            "id": id,
            "name": name.trim(),
            "secret": secret,
            // The name earlier builds printed it under.
            "key": secret,
        });
        if let (Some(out), Value::Object(fields)) = (out.as_object_mut(), policy_json(policy)) {
            out.extend(fields);
        }
        return print_json(&out);
    }
    println!("{secret}");
    eprintln!(
        "proxy key {id} ({name}, pass-through {}, models {}, limits {}, expires {}) created. \
         Store the key above now: it is not shown again.",
        permission(policy.passthrough),
        models_text(policy),
        limits_text(policy),
        expiry_text(policy),
    );
    Ok(())
}

async fn list(store: &dyn AdminStore, json: bool) -> anyhow::Result<()> {
    let keys = store.list_proxy_keys().await?;
    if json {
        let rows: Vec<Value> = keys
            .iter()
            .map(|k| {
                let mut row = serde_json::to_value(k).unwrap_or(Value::Null);
                if let (Some(row), Value::Object(fields)) = (row.as_object_mut(), policy_json(&k.policy)) {
                    row.extend(fields);
                }
                row
            })
            .collect();
        return print_json(&rows);
    }
    let now = proxy_axum::unix_ms();
    let rows: Vec<Vec<String>> = keys
        .into_iter()
        .map(|k| {
            vec![
                k.id.to_string(),
                k.name.clone(),
                k.prefix.clone().map_or_else(|| "-".into(), |p| format!("{p}…")),
                status(&k, now).to_string(),
                permission(k.policy.passthrough).to_string(),
                models_text(&k.policy),
                limits_text(&k.policy),
                expiry_text(&k.policy),
                format_time(k.created_at_ms),
            ]
        })
        .collect();
    print_table(
        &[
            "ID",
            "NAME",
            "PREFIX",
            "STATUS",
            "PASSTHROUGH",
            "MODELS",
            "LIMITS",
            "EXPIRES",
            "CREATED",
        ],
        &rows,
    );
    Ok(())
}

fn status(key: &ProxyKeyRow, now_ms: u64) -> &'static str {
    if key.revoked {
        "revoked"
    } else if key.policy.check_expiry(now_ms).is_err() {
        "expired"
    } else {
        "active"
    }
}

async fn usage(store: &dyn AdminStore, id: Option<i64>, json: bool) -> anyhow::Result<()> {
    let now = proxy_axum::unix_ms();
    let mut keys = proxy_key_usage(store, now).await?;
    if let Some(id) = id {
        keys.retain(|(key, _)| key.id == id);
        anyhow::ensure!(!keys.is_empty(), "no proxy key with id {id}");
    }
    if json {
        let rows: Vec<Value> = keys
            .iter()
            .map(|(key, usage)| {
                json!({
                    "id": key.id,
                    "name": key.name,
                    "status": status(key, now),
                    "today": usage.today,
                    "month": usage.month,
                    "last_minute": usage.last_minute,
                    "limits": usage.limits,
                })
            })
            .collect();
        return match (id, rows.as_slice()) {
            (Some(_), [one]) => print_json(one),
            _ => print_json(&rows),
        };
    }
    for (index, (key, usage)) in keys.iter().enumerate() {
        if index > 0 {
            println!();
        }
        print!("{}", usage_text(key, usage, now));
    }
    Ok(())
}

fn period_text(what: &str, period: &PeriodUsage) -> String {
    format!(
        "  {what} (since {}): {} requests, {} tokens, {}\n",
        format_time(period.since_ms),
        period.requests,
        period.tokens,
        format_usd(period.cost_usd)
    )
}

/// One key's usage as `proxy-keys usage` prints it.
fn usage_text(key: &ProxyKeyRow, usage: &KeyUsage, now_ms: u64) -> String {
    let name = crate::output::escape_control(&key.name);
    let mut out = format!("proxy key {} ({name}): {}\n", key.id, status(key, now_ms));
    out.push_str(&period_text("today", &usage.today));
    out.push_str(&period_text("this month", &usage.month));
    if usage.limits.is_empty() {
        out.push_str("  no limits\n");
    }
    for limit in &usage.limits {
        let line = limit.describe(format_time);
        out.push_str("  ");
        out.push_str(&line);
        out.push('\n');
    }
    out
}
