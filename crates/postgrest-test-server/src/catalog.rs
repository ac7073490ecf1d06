//! What exists in the `public` schema, read from the catalog for every request. Names
//! from the URL and body are only ever put into SQL after they were found here, which
//! is what makes interpolating them (quoted) safe. Lookups run as the connecting
//! superuser, like PostgREST's schema cache; permissions are checked when the statement
//! runs under the request's role.

use axum::http::StatusCode;
use tokio_postgres::GenericClient;

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    pub name: String,
    /// As `format_type` prints it, e.g. `bigint[]` or `timestamp with time zone`.
    pub sql_type: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub name: String,
    pub columns: Vec<Column>,
}

impl Table {
    pub fn column(&self, name: &str) -> Result<&Column, ApiError> {
        self.columns.iter().find(|c| c.name == name).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "PGRST204",
                format!(
                    "Could not find the '{name}' column of '{}' in the schema cache",
                    self.name
                ),
            )
        })
    }
}

pub(crate) async fn table(client: &impl GenericClient, name: &str) -> Result<Table, tokio_postgres::Error> {
    let rows = client
        .query(
            "select a.attname::text, format_type(a.atttypid, a.atttypmod)
             from pg_attribute a
             join pg_class c on c.oid = a.attrelid
             join pg_namespace n on n.oid = c.relnamespace
             where n.nspname = 'public' and c.relname = $1
               and c.relkind in ('r', 'v', 'm', 'p', 'f')
               and a.attnum > 0 and not a.attisdropped
             order by a.attnum",
            &[&name],
        )
        .await?;
    let columns = rows
        .iter()
        .map(|row| {
            Ok(Column {
                name: row.try_get(0)?,
                sql_type: row.try_get(1)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    Ok(Table {
        name: name.to_string(),
        columns,
    })
}

pub(crate) fn table_not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "PGRST205",
        format!("Could not find the table 'public.{name}' in the schema cache"),
    )
}

/// One input parameter of a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Param {
    pub name: String,
    pub sql_type: String,
    pub has_default: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Function {
    pub name: String,
    pub params: Vec<Param>,
    pub returns_set: bool,
    pub returns_void: bool,
}

impl Function {
    /// Whether a call naming exactly `keys` fits: every key is a parameter, and every
    /// parameter without a default is given.
    pub fn accepts(&self, keys: &[&str]) -> bool {
        keys.iter().all(|k| self.params.iter().any(|p| p.name == *k))
            && self
                .params
                .iter()
                .all(|p| p.has_default || keys.contains(&p.name.as_str()))
    }
}

/// Every overload of `name` callable with named arguments.
pub(crate) async fn functions(
    client: &impl GenericClient,
    name: &str,
) -> Result<Vec<Function>, tokio_postgres::Error> {
    let rows = client
        .query(
            "select p.proretset, p.pronargdefaults::int4, p.prorettype = 'void'::regtype,
                    coalesce(p.proargnames, '{}')::text[],
                    coalesce(p.proargmodes::text[], '{}'),
                    array(select format_type(x.t, null)
                          from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]))
                               with ordinality as x(t, n)
                          order by x.n)
             from pg_proc p join pg_namespace n on n.oid = p.pronamespace
             where n.nspname = 'public' and p.proname = $1 and p.prokind = 'f'",
            &[&name],
        )
        .await?;
    let mut out = Vec::new();
    for row in rows {
        let returns_set: bool = row.try_get(0)?;
        let defaults: i32 = row.try_get(1)?;
        let returns_void: bool = row.try_get(2)?;
        let names: Vec<String> = row.try_get(3)?;
        let modes: Vec<String> = row.try_get(4)?;
        let types: Vec<String> = row.try_get(5)?;
        if let Some(params) = input_params(&names, &modes, &types, defaults) {
            out.push(Function {
                name: name.to_string(),
                params,
                returns_set,
                returns_void,
            });
        }
    }
    Ok(out)
}

/// The input parameters, or `None` when one is unnamed (such a function cannot be
/// called with a JSON object of named arguments). Defaults belong to the last inputs.
fn input_params(names: &[String], modes: &[String], types: &[String], defaults: i32) -> Option<Vec<Param>> {
    let mut params = Vec::new();
    for (index, sql_type) in types.iter().enumerate() {
        let mode = modes.get(index).map_or("i", String::as_str);
        if !matches!(mode, "i" | "b" | "v") {
            continue;
        }
        let name = names.get(index).filter(|n| !n.is_empty())?;
        params.push(Param {
            name: name.clone(),
            sql_type: sql_type.clone(),
            has_default: false,
        });
    }
    let defaults = usize::try_from(defaults).unwrap_or(0).min(params.len());
    let first_default = params.len() - defaults;
    for param in &mut params[first_default..] {
        param.has_default = true;
    }
    Some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn out_params_are_skipped_and_defaults_are_last() {
        let params = input_params(
            &strings(&["a", "b", "out_c"]),
            &strings(&["i", "i", "o"]),
            &strings(&["jsonb", "integer", "bigint"]),
            1,
        )
        .expect("named");
        let summary: Vec<(&str, bool)> = params.iter().map(|p| (p.name.as_str(), p.has_default)).collect();
        assert_eq!(summary, vec![("a", false), ("b", true)]);
        let f = Function {
            name: "f".into(),
            params,
            returns_set: false,
            returns_void: false,
        };
        assert!(f.accepts(&["a"]) && f.accepts(&["a", "b"]));
        assert!(!f.accepts(&["b"]) && !f.accepts(&["a", "x"]));
    }

    #[test]
    fn unnamed_params_cannot_be_called() {
        assert!(input_params(&[], &[], &strings(&["integer"]), 0).is_none());
    }
}
