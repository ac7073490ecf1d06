//! `logs stats`: totals overall, per model and per answering key, folded from one
//! [`AdminStore::usage`] query, so a store implements one aggregate query and every
//! store's totals come out named and ordered the same way.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{AdminStore, KeyRow, UsageCell, UsageQuery};
use crate::keys::KeyId;
use crate::platform::StoreError;

/// Totals for one group of requests (all, one model, one key).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    pub group: String,
    pub requests: u64,
    pub errors: u64,
    pub prompt_tokens: u64,
    pub candidates_tokens: u64,
    pub thoughts_tokens: u64,
    pub cached_tokens: u64,
    pub total_tokens: u64,
    pub avg_latency_ms: u64,
    /// Sum of the records' cost in USD (records of unpriced models count 0).
    pub cost_usd: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogStats {
    pub total: UsageRow,
    pub by_model: Vec<UsageRow>,
    pub by_key: Vec<UsageRow>,
}

/// What [`log_stats`] asks the store: records since `since_ms` in one bucket, split by
/// model and answering key (one query, so the groupings add up to the same total).
pub fn stats_query(since_ms: u64) -> UsageQuery {
    UsageQuery {
        since_ms,
        until_ms: None,
        bucket_ms: 0,
        by_model: true,
        by_upstream_key: true,
        by_proxy_key: false,
    }
}

/// Totals of requests started at or after `since_ms`.
pub async fn log_stats<S: AdminStore + ?Sized>(store: &S, since_ms: u64) -> Result<LogStats, StoreError> {
    let cells = store.usage(&stats_query(since_ms)).await?;
    let keys = store.list_keys().await?;
    Ok(fold_stats(&cells, &keys))
}

/// Folds [`stats_query`]'s cells into totals. A key is named by its current name; an
/// unnamed or removed key shows as `#id`, no model or no key as "(none)". Groups are
/// listed busiest first, then by name (byte order), so the output is stable.
pub fn fold_stats(cells: &[UsageCell], keys: &[KeyRow]) -> LogStats {
    let mut total = UsageCell::default();
    let mut models: BTreeMap<Option<&str>, UsageCell> = BTreeMap::new();
    let mut by_key: BTreeMap<Option<KeyId>, UsageCell> = BTreeMap::new();
    for cell in cells {
        total.add(cell);
        models.entry(cell.model.as_deref()).or_default().add(cell);
        by_key.entry(cell.upstream_key_id).or_default().add(cell);
    }
    let names: BTreeMap<KeyId, &str> = keys.iter().map(|k| (k.id, k.name.as_str())).collect();
    let key_group = |id: Option<KeyId>| match id {
        None => "(none)".to_string(),
        Some(id) => match names.get(&id) {
            Some(name) if !name.is_empty() => (*name).to_string(),
            _ => format!("#{id}"),
        },
    };
    let mut by_model: Vec<UsageRow> = models
        .iter()
        .map(|(model, sum)| row(model.unwrap_or("(none)").to_string(), sum))
        .collect();
    let mut by_key: Vec<UsageRow> = by_key.iter().map(|(id, sum)| row(key_group(*id), sum)).collect();
    sort(&mut by_model);
    sort(&mut by_key);
    LogStats {
        total: row("total".into(), &total),
        by_model,
        by_key,
    }
}

fn row(group: String, sum: &UsageCell) -> UsageRow {
    UsageRow {
        group,
        requests: sum.requests,
        errors: sum.errors,
        prompt_tokens: sum.prompt_tokens,
        candidates_tokens: sum.candidates_tokens,
        thoughts_tokens: sum.thoughts_tokens,
        cached_tokens: sum.cached_tokens,
        total_tokens: sum.total_tokens,
        avg_latency_ms: sum.avg_latency_ms(),
        cost_usd: sum.cost_usd,
    }
}

fn sort(rows: &mut [UsageRow]) {
    rows.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.group.cmp(&b.group)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(
        model: Option<&str>,
        key: Option<KeyId>,
        requests: u64,
        errors: u64,
        latency_sum_ms: u64,
    ) -> UsageCell {
        UsageCell {
            model: model.map(Into::into),
            upstream_key_id: key,
            requests,
            errors,
            prompt_tokens: requests * 10,
            latency_sum_ms,
            cost_usd: requests as f64 * 0.25,
            ..UsageCell::default()
        }
    }

    fn key(id: KeyId, name: &str) -> KeyRow {
        KeyRow {
            id,
            name: name.into(),
            masked: String::new(),
            enabled: true,
            invalid_reason: None,
            cooldowns: Vec::new(),
            created_at_ms: 0,
            last_used_ms: None,
            limits: Default::default(),
            off_models: Vec::new(),
        }
    }

    fn groups(rows: &[UsageRow]) -> Vec<(&str, u64, u64, u64)> {
        rows.iter()
            .map(|r| (r.group.as_str(), r.requests, r.errors, r.avg_latency_ms))
            .collect()
    }

    #[test]
    fn cells_fold_into_totals_by_model_and_by_key() {
        let cells = [
            cell(Some("flash"), Some(1), 2, 1, 401),
            cell(Some("flash"), Some(2), 1, 0, 10),
            cell(Some("pro"), Some(3), 3, 3, 30),
            cell(None, None, 1, 1, 2),
        ];
        let stats = fold_stats(&cells, &[key(1, "alpha"), key(2, "")]);
        assert_eq!(
            groups(std::slice::from_ref(&stats.total)),
            vec![("total", 7, 5, 443 / 7)]
        );
        assert_eq!(stats.total.prompt_tokens, 70);
        assert_eq!(stats.total.cost_usd, 1.75, "cost summed like the counts");
        assert_eq!(stats.by_model[0].cost_usd, 0.75);
        assert_eq!(
            groups(&stats.by_model),
            vec![("flash", 3, 1, 137), ("pro", 3, 3, 10), ("(none)", 1, 1, 2)],
            "busiest first, then by name; latency averaged over the merged cells"
        );
        assert_eq!(
            groups(&stats.by_key),
            vec![
                ("#3", 3, 3, 10),
                ("alpha", 2, 1, 200),
                ("#2", 1, 0, 10),
                ("(none)", 1, 1, 2)
            ],
            "named, unnamed and removed keys, no key"
        );
    }

    #[test]
    fn no_cells_is_a_zero_total_and_no_groups() {
        let stats = fold_stats(&[], &[]);
        assert_eq!(
            stats,
            LogStats {
                total: UsageRow {
                    group: "total".into(),
                    ..UsageRow::default()
                },
                ..LogStats::default()
            }
        );
    }
}
