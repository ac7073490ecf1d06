//! A stand-in for PostgREST, for tests only.
//!
//! No PostgREST binary can be installed where this project's tests run, yet the
//! Supabase store talks to PostgREST. This server answers exactly the request forms
//! that store uses — table reads with filters, inserts, updates and deletes with
//! `Prefer`, and `POST /rpc/<function>` — by translating each into one SQL statement
//! on a real PostgreSQL, run in its own transaction under the request's role
//! (`set local role anon` / `service_role`), so row level security and grants are
//! exercised for real. Errors come back in PostgREST's JSON shape and status codes.
//!
//! The bearer token is simply the role name: [`SERVICE_ROLE_TOKEN`] or [`ANON_TOKEN`].
//! Forms it does not implement are answered with 400 rather than guessed at.

mod auth;
mod catalog;
mod error;
mod handler;
mod pool;
mod prefer;
mod query;
mod sql;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::http::{Method, Uri};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use crate::auth::Role;
pub use crate::error::ApiError;
pub use crate::sql::MAX_ROWS;

/// The token (and `apikey`) that makes a request run as `service_role`.
pub const SERVICE_ROLE_TOKEN: &str = "service_role";
/// The token (and `apikey`) that makes a request run as `anon`.
pub const ANON_TOKEN: &str = "anon";

#[derive(Clone)]
pub(crate) struct AppState {
    pool: pool::Pool,
    requests: Arc<Mutex<Vec<String>>>,
}

impl AppState {
    fn record(&self, method: &Method, uri: &Uri) {
        let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        requests.push(format!("{method} {}", uri.path()));
    }
}

/// A running server; it stops when dropped.
pub struct PostgrestTestServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for PostgrestTestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgrestTestServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl PostgrestTestServer {
    /// Listens on 127.0.0.1 on a free port, serving the database at `database_url`
    /// (a libpq-style URL; the user must be allowed to `set role` to anon and
    /// service_role, as a superuser is). Fails if the database cannot be reached.
    pub async fn start(database_url: &str) -> io::Result<PostgrestTestServer> {
        let pool = pool::Pool::new(database_url)?;
        // Connect once now so a wrong URL fails here, not as 503s in the middle of a test.
        drop(
            pool.get()
                .await
                .map_err(|e| io::Error::other(format!("cannot connect: {e}")))?,
        );
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let state = AppState {
            pool,
            requests: Arc::clone(&requests),
        };
        let app = Router::new().fallback(handler::handle).with_state(state);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("postgrest-test-server stopped: {e}");
            }
        });
        Ok(PostgrestTestServer { addr, requests, task })
    }

    /// The REST base URL, `http://127.0.0.1:<port>/rest/v1`, as Supabase's
    /// `{project_url}/rest/v1`.
    pub fn rest_url(&self) -> String {
        format!("http://{}/rest/v1", self.addr)
    }

    /// The project URL (without `/rest/v1`), for clients that append it themselves.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many HTTP requests arrived so far, answered or rejected.
    pub fn request_count(&self) -> usize {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Every request so far as `METHOD /path`, oldest first.
    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for PostgrestTestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
