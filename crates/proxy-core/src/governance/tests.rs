use super::*;
use crate::keys::KeyLimits;

/// 2026-04-01T00:00:10Z: ten seconds into a minute, a day and a month.
const T0: u64 = 1_775_001_610_000;

fn policy() -> ProxyKeyPolicy {
    ProxyKeyPolicy::default()
}

fn answered(
    governor: &Governor,
    proxy_key: i64,
    model: &str,
    prompt: u64,
    output: u64,
    now: u64,
) -> LogRecord {
    let mut record = LogRecord {
        proxy_key_id: Some(proxy_key),
        answered_key_id: Some(1),
        model: Some(model.into()),
        prompt_tokens: Some(prompt),
        candidates_tokens: Some(output),
        total_tokens: Some(prompt + output),
        ..LogRecord::default()
    };
    governor.charge(&mut record, true, None, now);
    record
}

fn refusal(result: Result<(), ProxyError>) -> (String, u16, Option<u64>) {
    let error = result.err().unwrap_or(ProxyError::Internal);
    (error.to_string(), error.status_code(), error.retry_after_secs())
}

#[test]
fn rpm_admits_exactly_its_number_then_429_until_the_minute_ends() {
    let governor = Governor::default();
    let limited = ProxyKeyPolicy {
        rpm: Some(20),
        ..policy()
    };
    for i in 0..20 {
        assert_eq!(governor.admit(1, &limited, T0 + i), Ok(()), "request {i}");
    }
    let (message, status, retry) = refusal(governor.admit(1, &limited, T0 + 20));
    assert_eq!((status, retry), (429, Some(50)));
    assert!(
        message.contains("rpm limit (20 requests per minute)"),
        "{message}"
    );
    assert_eq!(
        governor.admit(2, &limited, T0),
        Ok(()),
        "another key has its own count"
    );
    assert_eq!(
        governor.admit(1, &limited, T0 + 50_000),
        Ok(()),
        "the next minute"
    );
    // A key without limits is never counted.
    for _ in 0..1_000 {
        assert_eq!(governor.admit(3, &policy(), T0), Ok(()));
    }
}

#[test]
fn token_limits_count_what_answers_used_and_refuse_the_next_request() {
    let governor = Governor::default();
    let limited = ProxyKeyPolicy {
        tpm: Some(1_000),
        tokens_per_day: Some(1_500),
        ..policy()
    };
    assert_eq!(governor.admit(1, &limited, T0), Ok(()));
    answered(&governor, 1, "gemini-2.5-flash", 600, 399, T0 + 1);
    assert_eq!(governor.admit(1, &limited, T0 + 2), Ok(()), "999 of 1,000: under");
    // A request that started under may end over; the next is refused.
    answered(&governor, 1, "gemini-2.5-flash", 300, 0, T0 + 3);
    let (message, status, retry) = refusal(governor.admit(1, &limited, T0 + 4));
    assert_eq!((status, retry), (429, Some(50)));
    assert!(
        message.contains("tpm limit (1000 tokens per minute)"),
        "{message}"
    );
    // The next minute: tpm has room, but the day's 1,500 are spent (1,299 + 300).
    answered(&governor, 1, "gemini-2.5-flash", 300, 0, T0 + 60_000);
    let (message, status, retry) = refusal(governor.admit(1, &limited, T0 + 60_001));
    assert_eq!((status, retry), (429, Some((86_400_000 - 70_001) / 1000 + 1)));
    assert!(message.contains("tokens-per-day limit"), "{message}");
    assert_eq!(
        governor.admit(1, &limited, T0 + 86_400_000),
        Ok(()),
        "the next UTC day"
    );
}

#[test]
fn a_budget_is_spent_by_the_price_table_and_then_403() {
    let governor = Governor::default();
    let budget = ProxyKeyPolicy {
        budget_usd: Some(0.01),
        ..policy()
    };
    // gemini-2.5-flash: 1,000 prompt tokens $0.0003, 1,000 output $0.0025.
    let record = answered(&governor, 1, "gemini-2.5-flash", 1_000, 1_000, T0);
    assert_eq!(record.cost_usd, Some(0.0028));
    answered(&governor, 1, "gemini-2.5-flash", 1_000, 1_000, T0);
    answered(&governor, 1, "gemini-2.5-flash", 1_000, 1_000, T0);
    assert_eq!(governor.admit(1, &budget, T0), Ok(()), "$0.0084 of $0.01");
    answered(&governor, 1, "gemini-2.5-flash", 1_000, 1_000, T0); // $0.0112: over
    let (message, status, retry) = refusal(governor.admit(1, &budget, T0));
    assert_eq!((status, retry), (403, None));
    assert!(message.contains("(budget: $0.01 per month, UTC)"), "{message}");
    // Still spent tomorrow (a monthly budget), free again next month.
    assert!(governor.admit(1, &budget, T0 + 86_400_000).is_err());
    let next_month = windows::Window::MonthUtc.end_ms(T0);
    assert_eq!(governor.admit(1, &budget, next_month), Ok(()));
    // A daily budget is free again the next day.
    let daily = ProxyKeyPolicy {
        budget_period: BudgetPeriod::Day,
        ..budget
    };
    assert!(governor.admit(1, &daily, T0).is_err());
    assert_eq!(governor.admit(1, &daily, T0 + 86_400_000), Ok(()));
}

#[test]
fn an_unknown_model_costs_nothing_and_is_remembered() {
    let governor = Governor::default();
    let record = answered(&governor, 1, "my-tuned-model", 10, 10, T0);
    assert_eq!(record.cost_usd, None);
    assert_eq!(governor.unpriced_models(), vec!["my-tuned-model".to_string()]);
    let budget = ProxyKeyPolicy {
        budget_usd: Some(0.000_001),
        ..policy()
    };
    assert_eq!(governor.admit(1, &budget, T0), Ok(()), "counted as 0");
    // Without usage nothing is priced or counted.
    let mut empty = LogRecord {
        model: Some("gemini-2.5-flash".into()),
        ..LogRecord::default()
    };
    governor.charge(&mut empty, true, None, T0);
    assert_eq!(empty.cost_usd, None);
}

#[test]
fn an_upstream_keys_tpm_counts_the_tokens_of_its_answers() {
    let governor = Governor::default();
    let mut limits = KeyLimits::default();
    limits.update(None, None, Some(100), None);
    let key = |id| {
        (
            UpstreamKey {
                id,
                name: format!("k{id}"),
                secret: crate::keys::Secret::new(format!("secret-{id}-0000000000")),
                enabled: true,
                limits: limits.clone(),
            },
            crate::pool::KeyState::default(),
        )
    };
    let mut pool = KeyPool::new(vec![key(1), key(2)]);
    let picked = |pick: Pick| match pick {
        Pick::Key { id, .. } => id,
        other => panic!("{other:?}"),
    };
    assert_eq!(picked(governor.pick(&mut pool, "gemini-2.5-flash", T0, &[])), 1);
    answered(&governor, 9, "gemini-2.5-flash", 60, 40, T0); // key 1 answered: 100
    assert_eq!(picked(governor.pick(&mut pool, "gemini-2.5-flash", T0, &[])), 2);
    assert_eq!(
        picked(governor.pick(&mut pool, "gemini-2.5-flash", T0, &[])),
        2,
        "1 is full"
    );
    assert_eq!(
        picked(governor.pick(&mut pool, "gemini-2.5-pro", T0, &[])),
        1,
        "per model"
    );
    // No model (the model list): no limit applies.
    assert_eq!(picked(governor.pick(&mut pool, "*", T0, &[2])), 1);
}

#[test]
fn crossing_80_and_100_percent_of_a_budget_leaves_one_alert_each() {
    let governor = Governor::default();
    let record = |prompt: u64| LogRecord {
        proxy_key_id: Some(9),
        model: Some("gemini-2.5-flash".into()),
        prompt_tokens: Some(prompt),
        total_tokens: Some(prompt),
        ..LogRecord::default()
    };
    // What 1 000 prompt tokens cost, so the budget is 2 500 tokens' worth.
    let mut probe = record(1_000);
    Governor::default().charge(&mut probe, true, None, T0);
    let per_thousand = usd_to_nanos(probe.cost_usd.unwrap_or(0.0));
    assert!(per_thousand > 0);
    let budget = Some((per_thousand * 5 / 2, BudgetPeriod::Day));
    let percents = |r: &LogRecord| -> Vec<u8> {
        r.alerts
            .iter()
            .filter_map(|a| match a {
                AlertEvent::Budget {
                    percent,
                    proxy_key_id: 9,
                    ..
                } => Some(*percent),
                _ => None,
            })
            .collect()
    };
    let mut charged = Vec::new();
    for _ in 0..3 {
        let mut r = record(1_000);
        governor.charge(&mut r, true, budget, T0);
        charged.push(percents(&r));
    }
    // 40%, 80%, 120%: the second crosses 80, the third 100.
    assert_eq!(charged, vec![vec![], vec![80], vec![100]]);
    let mut after = record(1_000);
    governor.charge(&mut after, true, budget, T0);
    assert!(percents(&after).is_empty(), "each threshold once");
}
