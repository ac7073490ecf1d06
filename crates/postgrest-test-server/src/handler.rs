//! One HTTP request: find the table or function, check the role, build the statement,
//! and run it in its own transaction under that role, as PostgREST does.

use axum::body::{Body, Bytes};
use axum::extract::{Query as UrlQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json};
use tokio_postgres::types::ToSql;

use crate::AppState;
use crate::auth;
use crate::catalog;
use crate::error::ApiError;
use crate::prefer::{self, Return};
use crate::query;
use crate::sql::{self, Statement};

const PREFIX: &str = "/rest/v1/";

enum Target<'a> {
    Table(&'a str),
    Rpc(&'a str),
}

fn target(path: &str) -> Result<Target<'_>, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "PGRST125", format!("Invalid path {path}"));
    let rest = path.strip_prefix(PREFIX).ok_or_else(not_found)?;
    let target = match rest.strip_prefix("rpc/") {
        Some(function) => Target::Rpc(function),
        None => Target::Table(rest),
    };
    match target {
        Target::Table(name) | Target::Rpc(name) if name.is_empty() || name.contains('/') => Err(not_found()),
        target => Ok(target),
    }
}

pub(crate) async fn handle(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.record(&method, &uri);
    serve(&state, &method, &uri, &headers, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn serve(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let target = target(uri.path())?;
    let role = auth::role(headers)?;
    reject_unsupported_headers(headers)?;
    let pairs = match uri.query() {
        Some(_) => {
            UrlQuery::<Vec<(String, String)>>::try_from_uri(uri)
                .map_err(|e| ApiError::bad_query(e.body_text()))?
                .0
        }
        None => Vec::new(),
    };
    let prefer = prefer::parse(headers)?;
    let db = |e: tokio_postgres::Error| ApiError::from_db(&e, role);

    let mut client = state.pool.get().await.map_err(db)?;
    let tx = client.transaction().await.map_err(db)?;
    // Catalog lookups run before the role switch, like PostgREST's schema cache.
    let (statement, success) = match target {
        Target::Rpc(name) => {
            if !pairs.is_empty() || *method != Method::POST {
                return Err(ApiError::unsupported("rpc other than POST with a JSON body"));
            }
            let args = rpc_args(body)?;
            let keys: Vec<&str> = args.keys().map(String::as_str).collect();
            let functions = catalog::functions(&tx, name).await.map_err(db)?;
            let function = functions.iter().find(|f| f.accepts(&keys)).ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "PGRST202",
                    format!(
                        "Could not find the function public.{name}({}) in the schema cache",
                        keys.join(", ")
                    ),
                )
            })?;
            let success = if function.returns_void {
                StatusCode::NO_CONTENT
            } else {
                StatusCode::OK
            };
            (sql::call(function, &args), success)
        }
        Target::Table(name) => {
            let table = catalog::table(&tx, name).await.map_err(db)?;
            if table.columns.is_empty() {
                return Err(catalog::table_not_found(name));
            }
            let query = query::parse(&pairs)?;
            let representation = prefer.return_ == Return::Representation;
            match *method {
                Method::GET => (sql::read(&table, &query)?, StatusCode::OK),
                Method::POST => (
                    sql::insert(&table, &query, &json_body(body)?, prefer)?,
                    StatusCode::CREATED,
                ),
                Method::PATCH => (
                    sql::update(&table, &query, &json_body(body)?, prefer)?,
                    if representation {
                        StatusCode::OK
                    } else {
                        StatusCode::NO_CONTENT
                    },
                ),
                Method::DELETE => (
                    sql::delete(&table, &query, prefer)?,
                    if representation {
                        StatusCode::OK
                    } else {
                        StatusCode::NO_CONTENT
                    },
                ),
                _ => {
                    return Err(ApiError::new(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "PGRST117",
                        format!("Unsupported HTTP method: {method}"),
                    ));
                }
            }
        }
    };

    // The role name is one of two constants, never request text.
    tx.batch_execute(&format!("set local role {}", role.name()))
        .await
        .map_err(db)?;
    let claims = serde_json::json!({ "role": role.name() }).to_string();
    tx.execute(
        "select set_config('request.jwt.claims', $1, true), set_config('request.jwt.claim.role', $2, true)",
        &[&claims, &role.name()],
    )
    .await
    .map_err(db)?;
    let answer = run(&tx, &statement).await.map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(respond(success, answer))
}

async fn run(
    tx: &tokio_postgres::Transaction<'_>,
    statement: &Statement,
) -> Result<Option<String>, tokio_postgres::Error> {
    let params: Vec<&(dyn ToSql + Sync)> = statement
        .params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let row = tx.query_one(&statement.sql, &params).await?;
    row.try_get(0)
}

fn respond(status: StatusCode, answer: Option<String>) -> Response {
    if status == StatusCode::NO_CONTENT {
        return StatusCode::NO_CONTENT.into_response();
    }
    let body = match answer {
        Some(json) => Body::from(json),
        // A write without representation has no body; a scalar function returned NULL.
        None if status == StatusCode::CREATED => Body::empty(),
        None => Body::from("null"),
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Headers that change what PostgREST answers in ways this stand-in does not model.
fn reject_unsupported_headers(headers: &HeaderMap) -> Result<(), ApiError> {
    if headers.contains_key(header::RANGE) {
        return Err(ApiError::unsupported("the Range header (use limit and offset)"));
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("vnd.pgrst") || accept.contains("text/csv") {
        return Err(ApiError::unsupported("Accept other than application/json"));
    }
    for profile in ["accept-profile", "content-profile"] {
        if headers.get(profile).is_some_and(|v| v != "public") {
            return Err(ApiError::unsupported("a schema other than public"));
        }
    }
    Ok(())
}

fn json_body(body: &[u8]) -> Result<Json, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_body(format!("body is not JSON: {e}")))
}

/// An empty body calls the function without arguments.
fn rpc_args(body: &[u8]) -> Result<Map<String, Json>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match json_body(body)? {
        Json::Object(args) => Ok(args),
        _ => Err(ApiError::bad_body("rpc arguments must be a JSON object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_one_table_or_function() {
        assert!(matches!(
            target("/rest/v1/upstream_keys"),
            Ok(Target::Table("upstream_keys"))
        ));
        assert!(matches!(target("/rest/v1/rpc/f"), Ok(Target::Rpc("f"))));
        for bad in ["/rest/v1/", "/rest/v1/a/b", "/other/t", "/rest/v1/rpc/"] {
            assert!(target(bad).is_err(), "{bad}");
        }
    }
}
