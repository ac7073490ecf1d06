//! Upstream keys: masked key, name, status (cooldowns with time left, models off today),
//! usage and cost today, limits (every model and per model) with their edit forms, last
//! used; add (one or many, one per line), enable/disable, re-check, delete.

use leptos::prelude::*;
use proxy_core::admin::{KeyRow, UsageCell};
use proxy_core::keys::{KeyLimits, Limits};

use super::{csrf_field, notice, post_button};
use crate::forms::KeyLimitsForm;
use crate::live::{KeyStatus, KeyToggle, state_class, state_text, usd};
use crate::timefmt;

pub struct KeyView {
    pub row: KeyRow,
    /// Requests this key answered since midnight Pacific, when Gemini's daily quotas reset.
    pub today: UsageCell,
    /// The same per model, for limits of one model.
    pub today_by_model: Vec<UsageCell>,
    /// Requests it answered in the last 60 s, per model: what rpm and tpm count.
    pub last_minute_by_model: Vec<UsageCell>,
}

impl KeyView {
    /// (requests, tokens) in `cells` for `model`, or for every model with `None`.
    fn used(cells: &[UsageCell], model: Option<&str>) -> (u64, u64) {
        cells
            .iter()
            .filter(|c| model.is_none() || c.model.as_deref() == model)
            .fold((0, 0), |(r, t), c| (r + c.requests, t + c.total_tokens))
    }

    /// Each limit with what the log counts against it: "rpm 10 (3 in the last
    /// minute)", "rpd 500 (120 today, 380 left)".
    pub fn limit_use(&self, limits: &Limits, model: Option<&str>) -> String {
        let (minute_requests, minute_tokens) = Self::used(&self.last_minute_by_model, model);
        let (day_requests, _) = Self::used(&self.today_by_model, model);
        let parts: Vec<String> = [
            limits
                .rpm
                .map(|v| format!("rpm {v} ({minute_requests} in the last minute)")),
            limits
                .tpm
                .map(|v| format!("tpm {v} ({minute_tokens} in the last minute)")),
            limits.rpd.map(|v| {
                format!(
                    "rpd {v} ({day_requests} today, {} left)",
                    v.saturating_sub(day_requests)
                )
            }),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(" · ")
        }
    }

    /// One line per scope, each limit with its use: every model's, then each model's own.
    pub fn limit_lines(&self) -> Vec<String> {
        let limits = &self.row.limits;
        let mut lines = vec![format!(
            "all models: {}",
            self.limit_use(&limits.all_models, None)
        )];
        for (model, own) in &limits.models {
            lines.push(format!("{model}: {}", self.limit_use(own, Some(model))));
        }
        lines
    }
}

/// How the keys table is searched and sorted: `?q=` (part of a name, a masked key,
/// `#id` or a state, in any case) and `?sort=`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    pub q: String,
    pub sort: KeySort,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeySort {
    /// As added (by id).
    #[default]
    Added,
    Name,
    /// Invalid and disabled first, then cooling, then usable.
    Status,
    /// Most requests today first.
    Requests,
    /// Highest cost today first.
    Cost,
    /// Most recently used first, never used last.
    LastUsed,
}

impl KeySort {
    pub const ALL: [KeySort; 6] = [
        Self::Added,
        Self::Name,
        Self::Status,
        Self::Requests,
        Self::Cost,
        Self::LastUsed,
    ];

    pub fn parse(text: Option<&str>) -> KeySort {
        Self::ALL
            .into_iter()
            .find(|s| Some(s.name()) == text)
            .unwrap_or_default()
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Name => "name",
            Self::Status => "status",
            Self::Requests => "requests",
            Self::Cost => "cost",
            Self::LastUsed => "last-used",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Added => "as added",
            Self::Name => "name",
            Self::Status => "status (problems first)",
            Self::Requests => "requests today",
            Self::Cost => "cost today",
            Self::LastUsed => "last used",
        }
    }
}

/// The keys `listing` asks for, in its order.
pub fn arrange(keys: Vec<KeyView>, listing: &Listing, now_ms: u64) -> Vec<KeyView> {
    let q = listing.q.trim().to_lowercase();
    let mut keys: Vec<KeyView> = keys
        .into_iter()
        .filter(|k| {
            q.is_empty()
                || k.row.name.to_lowercase().contains(&q)
                || k.row.masked.to_lowercase().contains(&q)
                || format!("#{}", k.row.id) == q
                || state_text(&k.row, now_ms).to_lowercase().contains(&q)
        })
        .collect();
    let rank = |k: &KeyView| match state_class(&state_text(&k.row, now_ms)) {
        "status-bad" => 0u8,
        "status-warn" => 1,
        _ => 2,
    };
    match listing.sort {
        KeySort::Added => keys.sort_by_key(|k| k.row.id),
        KeySort::Name => keys.sort_by_key(|k| k.row.name.to_lowercase()),
        // The state is worded once per key, not once per comparison.
        KeySort::Status => keys.sort_by_cached_key(|k| (rank(k), k.row.id)),
        KeySort::Requests => keys.sort_by_key(|k| (std::cmp::Reverse(k.today.requests), k.row.id)),
        KeySort::Cost => keys.sort_by(|a, b| b.today.cost_usd.total_cmp(&a.today.cost_usd)),
        KeySort::LastUsed => keys.sort_by_key(|k| std::cmp::Reverse(k.row.last_used_ms)),
    }
    keys
}

/// The search box and sort choice above the table (a GET form: works without script).
fn listing_form(listing: &Listing, shown: usize, total: usize) -> AnyView {
    let options = KeySort::ALL
        .into_iter()
        .map(|s| view! { <option value=s.name() selected=s == listing.sort>{s.label()}</option> })
        .collect_view();
    let count = (shown != total).then(|| format!(" {shown} of {total} keys match."));
    view! {
        <form method="get" class="inline" id="key-listing">
            <label>"Search "<input type="search" name="q" value=listing.q.clone() placeholder="name, key, #id or state"/></label>" "
            <label>"Sort by "<select name="sort">{options}</select></label>" "
            <button type="submit">"Show"</button>
            {count}
        </form>
    }
    .into_any()
}

/// A limits form that was refused: shown again with what was posted and why.
pub struct LimitsFailure {
    /// The key whose limits form was refused; `None` for the add form.
    pub key_id: Option<i64>,
    pub error: String,
    pub values: KeyLimitsForm,
}

/// "12 req · 3400 tok · $0.0012" (errors added when there were some).
pub fn usage_text(u: &UsageCell) -> String {
    let errors = if u.errors > 0 {
        format!(" ({} failed)", u.errors)
    } else {
        String::new()
    };
    format!(
        "{} req{errors} · {} tok · {}",
        u.requests,
        u.total_tokens,
        usd(u.cost_usd)
    )
}

/// The status cell: the shared `KeyStatus` component, which the browser bundle (when
/// loaded) keeps current from the `key_rows` server function and counts down.
pub fn status_cell(k: &KeyRow, now_ms: u64) -> AnyView {
    let id = k.id.to_string();
    view! { <td data-live-key=id data-label="Status"><KeyStatus row=k.clone() now_ms=now_ms/></td> }
        .into_any()
}

pub fn page(
    csrf: &str,
    keys: Vec<KeyView>,
    listing: &Listing,
    now_ms: u64,
    added_keys: Option<String>,
    msg: Option<&str>,
    failure: Option<&LimitsFailure>,
) -> String {
    let error = failure.map(|f| view! { <p class="error" id="form-error">{f.error.clone()}</p> });
    let added = failure
        .filter(|f| f.key_id.is_none())
        .map_or_else(KeyLimitsForm::default, |f| f.values.clone());
    let total = keys.len();
    let enabled_ids = keys
        .iter()
        .filter(|k| k.row.enabled)
        .map(|k| k.row.id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let keys = arrange(keys, listing, now_ms);
    let listing_form = listing_form(listing, keys.len(), total);
    let rows = keys
        .into_iter()
        .map(|k| {
            let id = k.row.id;
            // The bundle mounts the same component here and keeps it to the key's state.
            let enabled = k.row.enabled;
            let toggle = view! {
                <span data-live-toggle=id.to_string() data-csrf=csrf.to_string()>
                    <KeyToggle id=id enabled=enabled csrf=csrf.to_string()/>
                </span>
            };
            let recheck = post_button(format!("/keys/{id}/recheck"), "Re-check", csrf, None);
            let delete = post_button(
                format!("/keys/{id}/delete"),
                "Delete",
                csrf,
                Some("Delete this upstream key? The proxy stops using it; its log records stay."),
            );
            let last_used = k
                .row
                .last_used_ms
                .map_or_else(|| "never".to_string(), timefmt::date_time);
            let limits = k
                .limit_lines()
                .into_iter()
                .map(|line| view! { <li>{line}</li> })
                .collect_view();
            let failed = failure.filter(|f| f.key_id == Some(id));
            let edit = limits_forms(id, &k.row.limits, failed, csrf);
            view! {
                <tr data-key-id=id.to_string()>
                    <td data-label="#">{id.to_string()}</td>
                    <td data-label="Name">{k.row.name.clone()}</td>
                    <td data-label="Key"><code>{k.row.masked.clone()}</code></td>
                    {status_cell(&k.row, now_ms)}
                    <td class="num" data-label="Today (Pacific)">{usage_text(&k.today)}</td>
                    <td class="limits" data-label="Limits"><ul>{limits}</ul>{edit}</td>
                    <td data-label="Last used (UTC)">{last_used}</td>
                    <td data-label="Added (UTC)">{timefmt::date_time(k.row.created_at_ms)}</td>
                    <td>{toggle}" "{recheck}" "{delete}</td>
                </tr>
            }
        })
        .collect_view();
    let body = view! {
        <h1>"Upstream keys"</h1>
        {notice(msg)}
        {added_keys.map(|text| view! { <p class="notice" id="added-keys">{text}</p> })}
        {error}
        {listing_form}
        <form method="post" action="/keys/recheck-all" id="recheck-all" class="inline" data-ids=enabled_ids>
            {csrf_field(csrf)}
            <button type="submit">"Re-check all enabled keys"</button>
            " "<span id="recheck-progress" role="status"></span>
        </form>
        <table id="keys">
            <tr><th>"#"</th><th>"Name"</th><th>"Key"</th><th>"Status"</th><th title="Since midnight Pacific, when Google resets daily quotas">"Today (Pacific)"</th><th>"Limits"</th>
                <th>"Last used (UTC)"</th><th>"Added (UTC)"</th><th></th></tr>
            {rows}
        </table>
        <h2>"Add keys"</h2>
        <form method="post" action="/keys">
            {csrf_field(csrf)}
            <p><label>"Name (optional) " <input type="text" name="name"/></label></p>
            <p><label>"Gemini API keys, one per line"<br/>
                <textarea name="keys" rows="5" required=true autocomplete="off"></textarea></label></p>
            <p class="limits-form">"Limits (optional): "
                <label>"model "<input type="text" name="model" value=added.model.clone() placeholder="every model" size="18"/></label>
                {count_inputs(&added)}
            </p>
            <button type="submit">"Add"</button>
        </form>
    }
    .into_any();
    super::layout::document("Upstream keys", "/keys", Some(csrf), body)
}

/// The key's limits forms, folded away unless one of them was refused: every model's,
/// each model's own, and one for a model without limits yet. Each sets rpm, tpm and
/// rpd for its scope; empty or 0 clears one.
fn limits_forms(id: i64, limits: &KeyLimits, failed: Option<&LimitsFailure>, csrf: &str) -> AnyView {
    let failed_model = failed.map(|f| f.values.model.trim().trim_start_matches("models/").to_string());
    let mut scopes: Vec<(Option<String>, Limits)> = vec![(None, limits.all_models)];
    scopes.extend(limits.models.iter().map(|(m, l)| (Some(m.clone()), *l)));
    let mut used_failure = false;
    let mut forms: Vec<AnyView> = scopes
        .into_iter()
        .map(|(model, own)| {
            let this = model.clone().unwrap_or_default();
            let values = match (failed, &failed_model) {
                (Some(f), Some(m)) if *m == this => {
                    used_failure = true;
                    f.values.clone()
                }
                _ => KeyLimitsForm::of(model.as_deref(), &own),
            };
            let label = model.map_or_else(|| "All models".to_string(), |m| format!("Model {m}"));
            let model_field = view! { <input type="hidden" name="model" value=values.model.clone()/> };
            limits_form(id, label, model_field.into_any(), &values, csrf)
        })
        .collect();
    let values = match failed {
        Some(f) if !used_failure => f.values.clone(),
        _ => KeyLimitsForm::default(),
    };
    let model_field = view! { <label>"Model"<input type="text" name="model" value=values.model.clone() required=true/></label> };
    forms.push(limits_form(
        id,
        "Another model".to_string(),
        model_field.into_any(),
        &values,
        csrf,
    ));
    view! {
        <details class="edit" open=failed.is_some()>
            <summary>"Edit limits"</summary>
            {forms}
            <p class="hint">"Empty or 0 clears a limit. Requests per day reset at midnight Pacific."</p>
        </details>
    }
    .into_any()
}

fn limits_form(id: i64, label: String, model_field: AnyView, v: &KeyLimitsForm, csrf: &str) -> AnyView {
    let action = format!("/keys/{id}/limits");
    view! {
        <form method="post" action=action class="limits-form">
            {csrf_field(csrf)}
            <b>{label}</b>
            {model_field}
            {count_inputs(v)}
            <button type="submit">"Set"</button>
        </form>
    }
    .into_any()
}

/// The rpm, tpm and rpd inputs, filled from `v`: the add form's and each limits form's.
fn count_inputs(v: &KeyLimitsForm) -> AnyView {
    view! {
        <label>"rpm"<input type="text" inputmode="numeric" name="rpm" value=v.rpm.clone() size="6"/></label>
        <label>"tpm"<input type="text" inputmode="numeric" name="tpm" value=v.tpm.clone() size="8"/></label>
        <label>"rpd"<input type="text" inputmode="numeric" name="rpd" value=v.rpd.clone() size="6"/></label>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(model: &str, requests: u64, tokens: u64) -> UsageCell {
        UsageCell {
            model: Some(model.into()),
            requests,
            total_tokens: tokens,
            ..UsageCell::default()
        }
    }

    fn row(id: i64, name: &str) -> KeyRow {
        KeyRow {
            id,
            name: name.into(),
            masked: format!("AIza…000{id}"),
            enabled: true,
            invalid_reason: None,
            cooldowns: Vec::new(),
            created_at_ms: 0,
            last_used_ms: None,
            limits: KeyLimits::default(),
            off_models: Vec::new(),
        }
    }

    fn key(row: KeyRow, requests: u64) -> KeyView {
        KeyView {
            row,
            today: UsageCell {
                requests,
                ..UsageCell::default()
            },
            today_by_model: Vec::new(),
            last_minute_by_model: Vec::new(),
        }
    }

    #[test]
    fn keys_are_searched_and_sorted_as_asked() {
        let mut broken = row(3, "Beta");
        broken.invalid_reason = Some("API_KEY_INVALID".into());
        let keys = || {
            vec![
                key(row(1, "alpha"), 5),
                key(row(2, "gamma"), 9),
                key(broken.clone(), 1),
            ]
        };
        let ids = |listing: Listing| {
            arrange(keys(), &listing, 0)
                .iter()
                .map(|k| k.row.id)
                .collect::<Vec<_>>()
        };
        let sorted = |sort| Listing {
            q: String::new(),
            sort,
        };
        let found = |q: &str| Listing {
            q: q.into(),
            sort: KeySort::Added,
        };
        assert_eq!(ids(sorted(KeySort::Added)), vec![1, 2, 3]);
        assert_eq!(ids(sorted(KeySort::Name)), vec![1, 3, 2], "names in any case");
        assert_eq!(
            ids(sorted(KeySort::Status)),
            vec![3, 1, 2],
            "the invalid key first"
        );
        assert_eq!(ids(sorted(KeySort::Requests)), vec![2, 1, 3]);
        assert_eq!(ids(found("ALP")), vec![1]);
        assert_eq!(ids(found("#2")), vec![2]);
        assert_eq!(ids(found("0003")), vec![3], "the masked key");
        assert_eq!(ids(found("invalid")), vec![3], "the state");
        assert_eq!(KeySort::parse(Some("last-used")), KeySort::LastUsed);
        assert_eq!(KeySort::parse(Some("nonsense")), KeySort::Added);
    }

    #[test]
    fn limits_read_with_what_the_log_counts_against_them() {
        let mut row = row(1, "k");
        row.limits.all_models = Limits {
            rpm: Some(10),
            tpm: None,
            rpd: Some(500),
        };
        row.limits.models.insert(
            "pro".into(),
            Limits {
                rpm: None,
                tpm: Some(1000),
                rpd: None,
            },
        );
        let view = KeyView {
            row,
            today: UsageCell::default(),
            today_by_model: vec![cell("flash", 100, 0), cell("pro", 20, 0)],
            last_minute_by_model: vec![cell("flash", 2, 50), cell("pro", 1, 300)],
        };
        assert_eq!(
            view.limit_lines(),
            vec![
                "all models: rpm 10 (3 in the last minute) · rpd 500 (120 today, 380 left)".to_string(),
                "pro: tpm 1000 (300 in the last minute)".to_string(),
            ]
        );
        assert_eq!(view.limit_use(&Limits::default(), None), "none");
    }
}
