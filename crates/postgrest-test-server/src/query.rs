//! The query string of a table request, parsed the way PostgREST reads it: `select`,
//! `order`, `limit`, `offset`, `on_conflict`, and every other key a column filter
//! `op.value`. Only the operators the Supabase store uses (and their close relatives)
//! are known; anything else is rejected so a test cannot pass on an untested form.

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    Like,
    Ilike,
    Is,
    In,
    /// Array contains (`@>`).
    Cs,
    /// Array contained in (`<@`).
    Cd,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    One(String),
    List(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    pub column: String,
    pub negate: bool,
    pub op: Op,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Order {
    pub column: String,
    pub descending: bool,
    pub nulls_first: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Query {
    /// `None` is `*`.
    pub select: Option<Vec<String>>,
    pub filters: Vec<Filter>,
    pub order: Vec<Order>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub on_conflict: Option<Vec<String>>,
}

pub(crate) fn parse(pairs: &[(String, String)]) -> Result<Query, ApiError> {
    let mut query = Query::default();
    for (key, value) in pairs {
        match key.as_str() {
            "select" => query.select = parse_select(value)?,
            "order" => query.order = parse_order(value)?,
            "limit" => query.limit = Some(parse_number("limit", value)?),
            "offset" => query.offset = Some(parse_number("offset", value)?),
            "on_conflict" => query.on_conflict = Some(names(value)?),
            "columns" => return Err(ApiError::unsupported("the columns parameter")),
            column => query.filters.push(parse_filter(column, value)?),
        }
    }
    Ok(query)
}

fn names(value: &str) -> Result<Vec<String>, ApiError> {
    let list: Vec<String> = value.split(',').map(|s| s.trim().to_string()).collect();
    if list.iter().any(String::is_empty) {
        return Err(ApiError::bad_query(format!("empty name in \"{value}\"")));
    }
    Ok(list)
}

fn parse_select(value: &str) -> Result<Option<Vec<String>>, ApiError> {
    if value.trim() == "*" {
        return Ok(None);
    }
    let list = names(value)?;
    // Renames (`a:b`), casts (`a::text`) and embeds (`t(*)`) are real PostgREST
    // features the store does not use.
    if list.iter().any(|c| c.contains([':', '(', ')', '*'])) {
        return Err(ApiError::unsupported("select with renames, casts or embeds"));
    }
    Ok(Some(list))
}

fn parse_order(value: &str) -> Result<Vec<Order>, ApiError> {
    let mut out = Vec::new();
    for term in names(value)? {
        let mut parts = term.split('.');
        let column = parts.next().unwrap_or_default().to_string();
        let mut order = Order {
            column,
            descending: false,
            nulls_first: None,
        };
        for modifier in parts {
            match modifier {
                "asc" => order.descending = false,
                "desc" => order.descending = true,
                "nullsfirst" => order.nulls_first = Some(true),
                "nullslast" => order.nulls_first = Some(false),
                other => return Err(ApiError::bad_query(format!("unknown order modifier \"{other}\""))),
            }
        }
        out.push(order);
    }
    Ok(out)
}

fn parse_number(what: &str, value: &str) -> Result<u64, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::bad_query(format!("{what} must be a non-negative integer")))
}

fn parse_filter(column: &str, value: &str) -> Result<Filter, ApiError> {
    let (negate, rest) = match value.strip_prefix("not.") {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let (op, operand) = rest
        .split_once('.')
        .ok_or_else(|| ApiError::bad_query(format!("filter on \"{column}\" has no operator")))?;
    let op = match op {
        "eq" => Op::Eq,
        "neq" => Op::Neq,
        "gt" => Op::Gt,
        "gte" => Op::Gte,
        "lt" => Op::Lt,
        "lte" => Op::Lte,
        "like" => Op::Like,
        "ilike" => Op::Ilike,
        "is" => Op::Is,
        "in" => Op::In,
        "cs" => Op::Cs,
        "cd" => Op::Cd,
        other => return Err(ApiError::bad_query(format!("unknown operator \"{other}\""))),
    };
    let value = match op {
        Op::In => Value::List(parse_list(operand)?),
        Op::Is if !matches!(operand, "null" | "true" | "false" | "unknown") => {
            return Err(ApiError::bad_query("is. takes null, true, false or unknown"));
        }
        _ => Value::One(operand.to_string()),
    };
    Ok(Filter {
        column: column.to_string(),
        negate,
        op,
        value,
    })
}

/// `(a,b,"c,d")`: comma-separated, double quotes protect commas and parentheses, and
/// a backslash inside quotes escapes the next character.
fn parse_list(operand: &str) -> Result<Vec<String>, ApiError> {
    let inner = operand
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| ApiError::bad_query("in. needs a list in parentheses"))?;
    let mut items = Vec::new();
    if inner.is_empty() {
        return Ok(items);
    }
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => current.extend(chars.next()),
            ',' if !quoted => items.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if quoted {
        return Err(ApiError::bad_query("unterminated quote in in. list"));
    }
    items.push(current);
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_the_forms_the_store_uses() {
        let query = parse(&pairs(&[
            ("select", "id,name"),
            ("id", "in.(1,2,\"a,b\")"),
            ("started_at", "gte.2024-01-01T00:00:00Z"),
            ("upstream_key_ids", "cs.{7}"),
            ("model", "not.is.null"),
            ("order", "started_at.desc,id.desc.nullslast"),
            ("limit", "50"),
            ("offset", "10"),
        ]))
        .expect("parses");
        assert_eq!(query.select, Some(vec!["id".to_string(), "name".to_string()]));
        assert_eq!(
            query.filters[0].value,
            Value::List(vec!["1".into(), "2".into(), "a,b".into()])
        );
        assert_eq!(query.filters[1].op, Op::Gte);
        assert_eq!(query.filters[2].value, Value::One("{7}".into()));
        assert!(query.filters[3].negate && query.filters[3].op == Op::Is);
        assert!(query.order[0].descending && query.order[1].nulls_first == Some(false));
        assert_eq!((query.limit, query.offset), (Some(50), Some(10)));
    }

    #[test]
    fn rejects_what_it_does_not_know() {
        assert!(parse(&pairs(&[("id", "5")])).is_err());
        assert!(parse(&pairs(&[("id", "fts.x")])).is_err());
        assert!(parse(&pairs(&[("limit", "-1")])).is_err());
        assert!(parse(&pairs(&[("select", "a:b")])).is_err());
        assert!(parse(&pairs(&[("order", "a.sideways")])).is_err());
        assert!(parse(&pairs(&[("id", "in.(\"open)")])).is_err());
    }
}
