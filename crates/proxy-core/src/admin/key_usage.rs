//! What a proxy key used and what its limits leave: requests, tokens and cost today
//! (UTC day) and this month (UTC), and for each limit its policy sets, how much is
//! left. Pure: folded from [`AdminStore::usage`] cells (two queries for every key at
//! once), for `proxy-keys usage` and the dashboard.
//!
//! Per-minute limits are counted by the governor in fixed minute windows it does not
//! store; what is reported for them is the limit and the requests and tokens of the
//! last 60 seconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{AdminStore, ProxyKeyRow, UsageCell, UsageQuery};
use crate::civil::{civil_from_days, days_from_civil};
use crate::platform::StoreError;
use crate::policy::{BudgetPeriod, ProxyKeyPolicy};

const DAY_MS: u64 = 86_400_000;
const MINUTE_MS: u64 = 60_000;

/// Requests, tokens and cost over one period.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PeriodUsage {
    /// Where the period starts (unix ms); it runs until now.
    pub since_ms: u64,
    pub requests: u64,
    /// Total tokens, as the governor counts them.
    pub tokens: u64,
    pub cost_usd: f64,
}

/// One limit of a policy and what is left of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LimitLeft {
    /// Requests per minute; what the last 60 seconds used.
    Rpm { limit: u64, last_minute: u64 },
    /// Tokens per minute; what the last 60 seconds used.
    Tpm { limit: u64, last_minute: u64 },
    /// Tokens per UTC day.
    TokensPerDay {
        limit: u64,
        used: u64,
        left: u64,
        resets_at_ms: u64,
    },
    /// USD per day or month (UTC).
    Budget {
        limit_usd: f64,
        period: BudgetPeriod,
        used_usd: f64,
        left_usd: f64,
        resets_at_ms: u64,
    },
    /// The key is refused from `at_ms` on.
    Expires { at_ms: u64, expired: bool, left_ms: u64 },
}

/// A proxy key's usage and what its limits leave, at `now_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyUsage {
    pub now_ms: u64,
    pub today: PeriodUsage,
    pub month: PeriodUsage,
    pub last_minute: PeriodUsage,
    /// In the order rpm, tpm, tokens per day, budget, expiry; only the ones set.
    pub limits: Vec<LimitLeft>,
}

/// The start of the UTC day holding `now_ms`.
pub fn day_start_ms(now_ms: u64) -> u64 {
    now_ms / DAY_MS * DAY_MS
}

/// The start of the UTC month holding `now_ms`.
pub fn month_start_ms(now_ms: u64) -> u64 {
    let (year, month, _) = civil_from_days((now_ms / DAY_MS) as i64);
    days_from_civil(year, month, 1).max(0) as u64 * DAY_MS
}

/// The start of the next UTC month after `now_ms`.
fn next_month_start_ms(now_ms: u64) -> u64 {
    let (year, month, _) = civil_from_days((now_ms / DAY_MS) as i64);
    let (year, month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    days_from_civil(year, month, 1).max(0) as u64 * DAY_MS
}

/// The two queries [`proxy_key_usage`] asks: this month by UTC day and proxy key, and
/// the last 60 seconds by proxy key.
pub fn key_usage_queries(now_ms: u64) -> [UsageQuery; 2] {
    let month = UsageQuery {
        since_ms: month_start_ms(now_ms),
        until_ms: None,
        bucket_ms: DAY_MS,
        by_model: false,
        by_upstream_key: false,
        by_proxy_key: true,
    };
    let minute = UsageQuery {
        since_ms: now_ms.saturating_sub(MINUTE_MS),
        bucket_ms: 0,
        ..month.clone()
    };
    [month, minute]
}

fn add(period: &mut PeriodUsage, cell: &UsageCell) {
    period.requests = period.requests.saturating_add(cell.requests);
    period.tokens = period.tokens.saturating_add(cell.total_tokens);
    period.cost_usd += cell.cost_usd;
}

/// `policy`'s usage and limits, from one key's cells: `month_cells` by UTC day since
/// the month started (those of today make today), `minute_cells` the last 60 seconds.
pub fn key_usage(
    policy: &ProxyKeyPolicy,
    month_cells: &[&UsageCell],
    minute_cells: &[&UsageCell],
    now_ms: u64,
) -> KeyUsage {
    let day_start = day_start_ms(now_ms);
    let mut today = PeriodUsage {
        since_ms: day_start,
        ..PeriodUsage::default()
    };
    let mut month = PeriodUsage {
        since_ms: month_start_ms(now_ms),
        ..PeriodUsage::default()
    };
    let mut last_minute = PeriodUsage {
        since_ms: now_ms.saturating_sub(MINUTE_MS),
        ..PeriodUsage::default()
    };
    for cell in month_cells {
        add(&mut month, cell);
        if cell.bucket_start_ms >= day_start {
            add(&mut today, cell);
        }
    }
    for cell in minute_cells {
        add(&mut last_minute, cell);
    }
    let mut limits = Vec::new();
    if let Some(limit) = policy.rpm {
        limits.push(LimitLeft::Rpm {
            limit,
            last_minute: last_minute.requests,
        });
    }
    if let Some(limit) = policy.tpm {
        limits.push(LimitLeft::Tpm {
            limit,
            last_minute: last_minute.tokens,
        });
    }
    if let Some(limit) = policy.tokens_per_day {
        limits.push(LimitLeft::TokensPerDay {
            limit,
            used: today.tokens,
            left: limit.saturating_sub(today.tokens),
            resets_at_ms: day_start + DAY_MS,
        });
    }
    if let Some(limit_usd) = policy.budget_usd {
        let (used_usd, resets_at_ms) = match policy.budget_period {
            BudgetPeriod::Day => (today.cost_usd, day_start + DAY_MS),
            BudgetPeriod::Month => (month.cost_usd, next_month_start_ms(now_ms)),
        };
        limits.push(LimitLeft::Budget {
            limit_usd,
            period: policy.budget_period,
            used_usd,
            left_usd: (limit_usd - used_usd).max(0.0),
            resets_at_ms,
        });
    }
    if let Some(at_ms) = policy.expires_at_ms {
        limits.push(LimitLeft::Expires {
            at_ms,
            expired: now_ms >= at_ms,
            left_ms: at_ms.saturating_sub(now_ms),
        });
    }
    KeyUsage {
        now_ms,
        today,
        month,
        last_minute,
        limits,
    }
}

/// Every proxy key with its usage at `now_ms`, in [`AdminStore::list_proxy_keys`]'s
/// order: two usage queries whatever the number of keys.
pub async fn proxy_key_usage<S: AdminStore + ?Sized>(
    store: &S,
    now_ms: u64,
) -> Result<Vec<(ProxyKeyRow, KeyUsage)>, StoreError> {
    let [month_query, minute_query] = key_usage_queries(now_ms);
    let keys = store.list_proxy_keys().await?;
    let month = store.usage(&month_query).await?;
    let minute = store.usage(&minute_query).await?;
    let by_key = |cells: &[UsageCell]| {
        let mut out: BTreeMap<i64, Vec<UsageCell>> = BTreeMap::new();
        for cell in cells {
            if let Some(id) = cell.proxy_key_id {
                out.entry(id).or_default().push(cell.clone());
            }
        }
        out
    };
    let (month, minute) = (by_key(&month), by_key(&minute));
    let none = Vec::new();
    Ok(keys
        .into_iter()
        .map(|key| {
            let month_cells: Vec<&UsageCell> = month.get(&key.id).unwrap_or(&none).iter().collect();
            let minute_cells: Vec<&UsageCell> = minute.get(&key.id).unwrap_or(&none).iter().collect();
            let usage = key_usage(&key.policy, &month_cells, &minute_cells, now_ms);
            (key, usage)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-15T12:00:00Z
    const NOW: u64 = 1_797_336_000_000;

    fn cell(bucket_start_ms: u64, requests: u64, tokens: u64, cost_usd: f64) -> UsageCell {
        UsageCell {
            bucket_start_ms,
            proxy_key_id: Some(1),
            requests,
            total_tokens: tokens,
            cost_usd,
            ..UsageCell::default()
        }
    }

    #[test]
    fn calendar_edges_are_utc() {
        assert_eq!(crate::civil::format_utc(NOW), "2026-12-15T12:00:00Z");
        assert_eq!(
            crate::civil::format_utc(day_start_ms(NOW)),
            "2026-12-15T00:00:00Z"
        );
        assert_eq!(
            crate::civil::format_utc(month_start_ms(NOW)),
            "2026-12-01T00:00:00Z"
        );
        assert_eq!(
            crate::civil::format_utc(next_month_start_ms(NOW)),
            "2027-01-01T00:00:00Z"
        );
        let [month, minute] = key_usage_queries(NOW);
        assert_eq!((month.since_ms, month.bucket_ms), (month_start_ms(NOW), DAY_MS));
        assert!(month.by_proxy_key && !month.by_model && !month.by_upstream_key);
        assert_eq!((minute.since_ms, minute.bucket_ms), (NOW - 60_000, 0));
    }

    #[test]
    fn days_fold_into_today_and_the_month_and_limits_say_what_is_left() {
        let earlier = cell(month_start_ms(NOW), 10, 1_000, 0.5);
        let today = cell(day_start_ms(NOW), 3, 300, 0.25);
        let minute = cell(NOW - 60_000, 2, 120, 0.01);
        let policy = ProxyKeyPolicy {
            rpm: Some(5),
            tpm: Some(1_000),
            tokens_per_day: Some(1_000),
            budget_usd: Some(1.0),
            expires_at_ms: Some(NOW + 3_600_000),
            ..ProxyKeyPolicy::default()
        };
        let usage = key_usage(&policy, &[&earlier, &today], &[&minute], NOW);
        assert_eq!((usage.today.requests, usage.today.tokens), (3, 300));
        assert_eq!((usage.month.requests, usage.month.tokens), (13, 1_300));
        assert!((usage.month.cost_usd - 0.75).abs() < 1e-9);
        assert_eq!(
            usage.limits,
            vec![
                LimitLeft::Rpm {
                    limit: 5,
                    last_minute: 2
                },
                LimitLeft::Tpm {
                    limit: 1_000,
                    last_minute: 120
                },
                LimitLeft::TokensPerDay {
                    limit: 1_000,
                    used: 300,
                    left: 700,
                    resets_at_ms: day_start_ms(NOW) + DAY_MS
                },
                LimitLeft::Budget {
                    limit_usd: 1.0,
                    period: BudgetPeriod::Month,
                    used_usd: 0.75,
                    left_usd: 0.25,
                    resets_at_ms: next_month_start_ms(NOW)
                },
                LimitLeft::Expires {
                    at_ms: NOW + 3_600_000,
                    expired: false,
                    left_ms: 3_600_000
                },
            ]
        );

        let daily = ProxyKeyPolicy {
            budget_usd: Some(0.1),
            budget_period: BudgetPeriod::Day,
            tokens_per_day: Some(100),
            expires_at_ms: Some(NOW),
            ..ProxyKeyPolicy::default()
        };
        let usage = key_usage(&daily, &[&earlier, &today], &[], NOW);
        assert_eq!(
            usage.limits,
            vec![
                LimitLeft::TokensPerDay {
                    limit: 100,
                    used: 300,
                    left: 0,
                    resets_at_ms: day_start_ms(NOW) + DAY_MS
                },
                LimitLeft::Budget {
                    limit_usd: 0.1,
                    period: BudgetPeriod::Day,
                    used_usd: 0.25,
                    left_usd: 0.0,
                    resets_at_ms: day_start_ms(NOW) + DAY_MS
                },
                LimitLeft::Expires {
                    at_ms: NOW,
                    expired: true,
                    left_ms: 0
                },
            ],
            "spent limits leave 0, never less"
        );
        assert!(
            key_usage(&ProxyKeyPolicy::default(), &[], &[], NOW)
                .limits
                .is_empty(),
            "no limit set, none reported"
        );
    }
}
