//! `gemini-proxy logs …`: the request log.

use proxy_core::admin::{AdminStore, LogQuery, UsageRow, log_stats};
use proxy_core::log_chain;

use crate::cli::LogsCommand;
use crate::output::{format_time, format_usd, opt, parse_age_ms, print_json, print_table};

pub async fn run(store: &dyn AdminStore, command: LogsCommand) -> anyhow::Result<()> {
    let now = proxy_axum::unix_ms();
    match command {
        LogsCommand::List {
            limit,
            since,
            model,
            key,
            proxy_key,
            status,
            prompt_sha256,
            json,
        } => {
            let since_ms = since
                .as_deref()
                .map(parse_age_ms)
                .transpose()?
                .map(|age| now.saturating_sub(age));
            let query = LogQuery {
                since_ms,
                model,
                upstream_key_id: key,
                proxy_key_id: proxy_key,
                status,
                prompt_sha256,
                limit,
                ..LogQuery::default()
            };
            list(store, &query, json).await
        }
        LogsCommand::Stats { since, json } => {
            let stats = log_stats(store, now.saturating_sub(parse_age_ms(&since)?)).await?;
            if json {
                return print_json(&stats);
            }
            let mut rows = vec![usage_row("all", &stats.total)];
            rows.extend(stats.by_model.iter().map(|r| usage_row("model", r)));
            rows.extend(stats.by_key.iter().map(|r| usage_row("key", r)));
            print_table(
                &[
                    "BY", "GROUP", "REQUESTS", "ERRORS", "PROMPT", "OUTPUT", "THOUGHTS", "CACHED", "TOTAL",
                    "AVG_MS", "COST_USD",
                ],
                &rows,
            );
            Ok(())
        }
        LogsCommand::Verify { since, json } => {
            let since_ms = since
                .as_deref()
                .map(parse_age_ms)
                .transpose()?
                .map(|age| now.saturating_sub(age));
            verify(store, since_ms, json).await
        }
        LogsCommand::Prune { older_than } => {
            let deleted = store
                .prune_logs(now.saturating_sub(parse_age_ms(&older_than)?))
                .await?;
            println!("deleted {deleted} log records older than {older_than}");
            Ok(())
        }
    }
}

/// Reads the records (from a day before `since_ms`: a chain of the span may hold
/// records that started earlier), checks their chains, and reports the chains
/// written in the span.
async fn verify(store: &dyn AdminStore, since_ms: Option<u64>, json: bool) -> anyhow::Result<()> {
    const PAGE: u32 = 1000;
    const DAY_MS: u64 = 86_400_000;
    let mut records = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for page in 0u32.. {
        let query = LogQuery {
            since_ms: since_ms.map(|ms| ms.saturating_sub(DAY_MS)),
            limit: PAGE,
            offset: page.saturating_mul(PAGE),
            ..LogQuery::default()
        };
        let batch = store.list_logs(&query).await?;
        let last = batch.len() < PAGE as usize;
        // Paging while `serve` writes can show a record twice.
        records.extend(batch.into_iter().filter(|r| seen.insert(r.id.clone())));
        if last {
            break;
        }
    }
    let mut report = log_chain::verify(records);
    if let Some(since_ms) = since_ms {
        let first_day = log_chain::day_of(since_ms);
        report.keep_chains(|chain_id| log_chain::chain_day(chain_id) >= Some(first_day.as_str()));
    }
    if json {
        print_json(&report)?;
    } else {
        let rows: Vec<Vec<String>> = report
            .chains
            .iter()
            .map(|c| {
                vec![
                    c.chain_id.clone(),
                    c.records.to_string(),
                    format!("{}..{}", c.first_seq, c.last_seq),
                    c.head.clone(),
                ]
            })
            .collect();
        print_table(&["CHAIN", "RECORDS", "SEQ", "HEAD"], &rows);
        for problem in &report.problems {
            println!("{problem}");
        }
        let records: u64 = report.chains.iter().map(|c| c.records).sum();
        let verdict = match report.tampered() {
            true => "BROKEN: records were changed, removed or added after they were written",
            false => "intact",
        };
        println!(
            "{records} records in {} chains ({} without a link): {verdict}",
            report.chains.len(),
            report.unlinked
        );
    }
    match report.tampered() {
        true => anyhow::bail!("the request log's hash chain is broken"),
        false => Ok(()),
    }
}

async fn list(store: &dyn AdminStore, query: &LogQuery, json: bool) -> anyhow::Result<()> {
    let records = store.list_logs(query).await?;
    if json {
        return print_json(&records);
    }
    let rows: Vec<Vec<String>> = records
        .into_iter()
        .map(|r| {
            let tokens = format!(
                "{}/{}/{}/{}",
                opt(r.prompt_tokens),
                opt(r.candidates_tokens),
                opt(r.thoughts_tokens),
                opt(r.total_tokens)
            );
            vec![
                format_time(r.started_at_ms),
                r.route,
                opt(r.model),
                r.status.to_string(),
                opt(r.answered_key_id),
                r.attempts.to_string(),
                format!("{}ms", r.latency_ms),
                tokens,
                opt(r.error_kind),
            ]
        })
        .collect();
    print_table(
        &[
            "TIME",
            "ROUTE",
            "MODEL",
            "STATUS",
            "KEY",
            "TRIES",
            "LATENCY",
            "TOKENS P/O/T/ALL",
            "ERROR",
        ],
        &rows,
    );
    Ok(())
}

fn usage_row(by: &str, row: &UsageRow) -> Vec<String> {
    vec![
        by.to_string(),
        row.group.clone(),
        row.requests.to_string(),
        row.errors.to_string(),
        row.prompt_tokens.to_string(),
        row.candidates_tokens.to_string(),
        row.thoughts_tokens.to_string(),
        row.cached_tokens.to_string(),
        row.total_tokens.to_string(),
        row.avg_latency_ms.to_string(),
        // Records of models without a price carry no cost; a group of only those, none.
        if row.cost_usd > 0.0 {
            format_usd(row.cost_usd)
        } else {
            "-".into()
        },
    ]
}
