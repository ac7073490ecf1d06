//! Turns a parsed request into one SQL statement that yields a single text column: the
//! JSON to answer with (or NULL when the answer has no body). Identifiers come only
//! from the catalog (see [`crate::catalog`]) and are quoted; every value from the
//! request travels as a text parameter and is cast by PostgreSQL.

use serde_json::{Map, Value as Json};
use tokio_postgres::types::ToSql;

use crate::catalog::{Function, Table};
use crate::error::ApiError;
use crate::prefer::{Prefer, Return};
use crate::query::{Filter, Op, Order, Query, Value};

/// The most rows one read returns, as `max_rows` in `supabase/config.toml`.
pub const MAX_ROWS: u64 = 1000;

pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

pub(crate) struct Statement {
    pub sql: String,
    pub params: Vec<Param>,
}

pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn table_ref(table: &Table) -> String {
    format!("public.{}", ident(&table.name))
}

#[derive(Default)]
struct Params(Vec<Param>);

impl Params {
    /// Adds a value and returns its placeholder.
    fn push(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.0.push(Box::new(value));
        format!("${}", self.0.len())
    }
}

fn column_list(table: &Table, names: &[String]) -> Result<String, ApiError> {
    let quoted = names
        .iter()
        .map(|n| table.column(n).map(|c| ident(&c.name)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(quoted.join(", "))
}

fn select_list(table: &Table, select: Option<&[String]>) -> Result<String, ApiError> {
    match select {
        None => Ok("*".to_string()),
        Some(names) => column_list(table, names),
    }
}

fn comparison(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Neq => "<>",
        Op::Gt => ">",
        Op::Gte => ">=",
        Op::Lt => "<",
        Op::Lte => "<=",
        Op::Cs => "@>",
        Op::Cd => "<@",
        Op::Like => "like",
        Op::Ilike => "ilike",
        Op::Is | Op::In => "",
    }
}

fn filter_sql(table: &Table, filter: &Filter, params: &mut Params) -> Result<String, ApiError> {
    let column = table.column(&filter.column)?;
    let target = format!("_t.{}", ident(&column.name));
    let ty = &column.sql_type;
    let clause = match (filter.op, &filter.value) {
        // The operand was checked to be one of four keywords by the parser.
        (Op::Is, Value::One(keyword)) => format!("{target} is {keyword}"),
        (Op::In, Value::List(items)) => {
            let p = params.push(items.clone());
            format!("{target} = any({p}::text[]::{ty}[])")
        }
        (Op::Like | Op::Ilike, Value::One(pattern)) => {
            let p = params.push(pattern.replace('*', "%"));
            format!("{target}::text {} {p}", comparison(filter.op))
        }
        (op, Value::One(value)) => {
            let p = params.push(value.clone());
            format!("{target} {} {p}::text::{ty}", comparison(op))
        }
        (_, Value::List(_)) => return Err(ApiError::bad_query("a list is only valid with in.")),
    };
    Ok(if filter.negate {
        format!("not ({clause})")
    } else {
        clause
    })
}

fn where_clause(table: &Table, filters: &[Filter], params: &mut Params) -> Result<String, ApiError> {
    let clauses = filters
        .iter()
        .map(|f| filter_sql(table, f, params))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(if clauses.is_empty() {
        String::new()
    } else {
        format!(" where {}", clauses.join(" and "))
    })
}

fn order_by(table: &Table, order: &[Order]) -> Result<String, ApiError> {
    if order.is_empty() {
        return Ok(String::new());
    }
    let terms = order
        .iter()
        .map(|o| {
            let column = table.column(&o.column)?;
            let direction = if o.descending { "desc" } else { "asc" };
            let nulls = match o.nulls_first {
                Some(true) => " nulls first",
                Some(false) => " nulls last",
                None => "",
            };
            Ok(format!("_t.{} {direction}{nulls}", ident(&column.name)))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(format!(" order by {}", terms.join(", ")))
}

/// `GET /<table>`: the matching rows as a JSON array, at most [`MAX_ROWS`].
pub(crate) fn read(table: &Table, query: &Query) -> Result<Statement, ApiError> {
    let mut params = Params::default();
    let columns = select_list(table, query.select.as_deref())?;
    let filters = where_clause(table, &query.filters, &mut params)?;
    let order = order_by(table, &query.order)?;
    let limit = query.limit.unwrap_or(MAX_ROWS).min(MAX_ROWS);
    let offset = query.offset.unwrap_or(0);
    let sql = format!(
        "select coalesce(json_agg(_r), '[]'::json)::text from \
         (select {columns} from {} as _t{filters}{order} limit {limit} offset {offset}) _r",
        table_ref(table)
    );
    Ok(Statement {
        sql,
        params: params.0,
    })
}

/// What a write statement answers with, reading the written rows from the CTE `_w`.
fn write_tail(table: &Table, query: &Query, prefer: Prefer) -> Result<(String, String), ApiError> {
    Ok(match prefer.return_ {
        Return::Representation => (
            " returning _t.*".to_string(),
            format!(
                "select coalesce(json_agg(_r), '[]'::json)::text from (select {} from _w) _r",
                select_list(table, query.select.as_deref())?
            ),
        ),
        // A data-modifying CTE runs even when the outer query does not read it.
        Return::Minimal => (String::new(), "select null::text".to_string()),
    })
}

/// The rows of an insert body: one object or an array of objects, all with the same
/// keys (PostgREST's rule), which become the column list.
fn insert_rows(body: &Json) -> Result<(Vec<String>, usize), ApiError> {
    let rows: Vec<&Map<String, Json>> = match body {
        Json::Object(row) => vec![row],
        Json::Array(items) => items
            .iter()
            .map(|item| {
                item.as_object()
                    .ok_or_else(|| ApiError::bad_body("rows must be JSON objects"))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(ApiError::bad_body("body must be a JSON object or array")),
    };
    let Some(first) = rows.first() else {
        return Ok((Vec::new(), 0));
    };
    let keys: Vec<String> = first.keys().cloned().collect();
    if rows
        .iter()
        .any(|row| row.len() != keys.len() || !keys.iter().all(|k| row.contains_key(k)))
    {
        return Err(ApiError::bad_body("All object keys must match"));
    }
    Ok((keys, rows.len()))
}

/// `POST /<table>`. Only the keys present are inserted, so column defaults (ids,
/// timestamps) apply to the rest.
pub(crate) fn insert(
    table: &Table,
    query: &Query,
    body: &Json,
    prefer: Prefer,
) -> Result<Statement, ApiError> {
    if !query.filters.is_empty() || !query.order.is_empty() {
        return Err(ApiError::bad_query("filters are not allowed on insert"));
    }
    let (keys, count) = insert_rows(body)?;
    if count == 0 {
        let empty = match prefer.return_ {
            Return::Representation => "select '[]'::text",
            Return::Minimal => "select null::text",
        };
        return Ok(Statement {
            sql: empty.to_string(),
            params: Vec::new(),
        });
    }
    let columns = column_list(table, &keys)?;
    let conflict = match (prefer.ignore_duplicates, &query.on_conflict) {
        (true, Some(target)) => format!(" on conflict ({}) do nothing", column_list(table, target)?),
        (true, None) => " on conflict do nothing".to_string(),
        (false, Some(_)) => return Err(ApiError::unsupported("on_conflict without resolution")),
        (false, None) => String::new(),
    };
    let mut params = Params::default();
    // json_populate_recordset wants an array; a single object is wrapped.
    let rows = match body {
        Json::Object(_) => Json::Array(vec![body.clone()]),
        _ => body.clone(),
    };
    let p = params.push(rows.to_string());
    let (returning, tail) = write_tail(table, query, prefer)?;
    let target = table_ref(table);
    let sql = format!(
        "with _w as (insert into {target} as _t ({columns}) \
         select {columns} from json_populate_recordset(null::{target}, {p}::text::json) _s\
         {conflict}{returning}) {tail}"
    );
    Ok(Statement {
        sql,
        params: params.0,
    })
}

/// `PATCH /<table>?filters` with a JSON object of new values.
pub(crate) fn update(
    table: &Table,
    query: &Query,
    body: &Json,
    prefer: Prefer,
) -> Result<Statement, ApiError> {
    let Some(values) = body.as_object().filter(|o| !o.is_empty()) else {
        return Err(ApiError::bad_body("PATCH needs a non-empty JSON object"));
    };
    require_filters(query, "UPDATE")?;
    let mut params = Params::default();
    let p = params.push(body.to_string());
    let set = values
        .keys()
        .map(|k| table.column(k).map(|c| format!("{0} = _x.{0}", ident(&c.name))))
        .collect::<Result<Vec<_>, _>>()?
        .join(", ");
    let filters = where_clause(table, &query.filters, &mut params)?;
    let (returning, tail) = write_tail(table, query, prefer)?;
    let target = table_ref(table);
    let sql = format!(
        "with _w as (update {target} as _t set {set} \
         from json_populate_record(null::{target}, {p}::text::json) as _x{filters}{returning}) {tail}"
    );
    Ok(Statement {
        sql,
        params: params.0,
    })
}

/// `DELETE /<table>?filters`.
pub(crate) fn delete(table: &Table, query: &Query, prefer: Prefer) -> Result<Statement, ApiError> {
    require_filters(query, "DELETE")?;
    let mut params = Params::default();
    let filters = where_clause(table, &query.filters, &mut params)?;
    let (returning, tail) = write_tail(table, query, prefer)?;
    let sql = format!(
        "with _w as (delete from {} as _t{filters}{returning}) {tail}",
        table_ref(table)
    );
    Ok(Statement {
        sql,
        params: params.0,
    })
}

/// Supabase loads `pg-safeupdate` for PostgREST, so an unfiltered UPDATE or DELETE is
/// refused there; refusing it here too catches an adapter that would hit that wall.
fn require_filters(query: &Query, verb: &str) -> Result<(), ApiError> {
    if query.filters.is_empty() {
        let mut err = ApiError::bad_query(format!("{verb} requires a WHERE clause"));
        err.code = "21000".to_string();
        return Err(err);
    }
    Ok(())
}

/// `POST /rpc/<function>` with a JSON object of named arguments. Like PostgREST, the
/// object is unpacked with `json_to_record`, which casts each value to the parameter's
/// type (JSON arrays become SQL arrays, objects stay JSON for `jsonb` parameters).
pub(crate) fn call(function: &Function, args: &Map<String, Json>) -> Statement {
    let given: Vec<_> = function
        .params
        .iter()
        .filter(|p| args.contains_key(&p.name))
        .collect();
    let mut params = Params::default();
    let name = format!("public.{}", ident(&function.name));
    let (call, from) = if given.is_empty() {
        (format!("{name}()"), String::new())
    } else {
        let p = params.push(Json::Object(args.clone()).to_string());
        let definitions = given
            .iter()
            .map(|g| format!("{} {}", ident(&g.name), g.sql_type))
            .collect::<Vec<_>>()
            .join(", ");
        let named = given
            .iter()
            .map(|g| format!("{0} => _a.{0}", ident(&g.name)))
            .collect::<Vec<_>>()
            .join(", ");
        (
            format!("{name}({named})"),
            format!("json_to_record({p}::text::json) as _a({definitions})"),
        )
    };
    let sql = if function.returns_void {
        let from = if from.is_empty() {
            from
        } else {
            format!(" from {from}")
        };
        format!("select null::text from (select {call}{from}) _v")
    } else if function.returns_set {
        let source = if from.is_empty() {
            format!("{call} as _r")
        } else {
            format!("{from} cross join lateral {call} as _r")
        };
        format!("select coalesce(jsonb_agg(_r), '[]'::jsonb)::text from {source}")
    } else {
        let from = if from.is_empty() {
            from
        } else {
            format!(" from {from}")
        };
        format!("select to_jsonb({call})::text{from}")
    };
    Statement {
        sql,
        params: params.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Column;

    fn table() -> Table {
        Table {
            name: "logs".into(),
            columns: vec![
                Column {
                    name: "id".into(),
                    sql_type: "text".into(),
                },
                Column {
                    name: "at".into(),
                    sql_type: "timestamp with time zone".into(),
                },
            ],
        }
    }

    #[test]
    fn unknown_columns_never_reach_sql() {
        let query = crate::query::parse(&[("id; drop table x".into(), "eq.1".into())]).expect("parses");
        let err = read(&table(), &query).err().expect("rejected");
        assert_eq!(err.code, "PGRST204");
    }

    #[test]
    fn values_are_parameters() {
        let query = crate::query::parse(&[
            ("at".into(), "lt.2024-01-01T00:00:00Z".into()),
            ("id".into(), "in.(a,'b)".into()),
        ])
        .expect("parses");
        let statement = read(&table(), &query).expect("builds");
        assert!(
            statement
                .sql
                .contains("_t.\"at\" < $1::text::timestamp with time zone")
        );
        assert!(statement.sql.contains("_t.\"id\" = any($2::text[]::text[])"));
        assert!(!statement.sql.contains("'b"));
        assert_eq!(statement.params.len(), 2);
    }

    #[test]
    fn unfiltered_delete_is_refused() {
        let err = delete(&table(), &Query::default(), Prefer::default())
            .err()
            .expect("refused");
        assert_eq!(err.code, "21000");
    }
}
