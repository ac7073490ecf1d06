//! From a connection string to a pool of connections, and single connections for
//! LISTEN and migrations, all with the same settings.
//!
//! Which connection string: a direct connection (`db.<ref>.supabase.co:5432`) or
//! Supabase's *session* pooler (`…pooler.supabase.com:5432`). The transaction pooler
//! (port 6543) is not supported: it cannot hold LISTEN, and it may run a statement's
//! prepare and execute on different server connections.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use proxy_core::platform::StoreError;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, Config, Connection, Socket};

use crate::error::{DbResult, describe};
use crate::tls::{MakeRustlsConnect, RustlsStream};

/// How to reach the database beyond its URL.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// CA certificates (PEM) trusted for `sslmode=require` besides the public web roots;
    /// Supabase's database certificates need Supabase's root CA here.
    pub ca_certificates_pem: Option<String>,
    /// Most pooled connections open at once. LISTEN uses one more of its own.
    pub max_connections: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            ca_certificates_pem: None,
            // Log batches, state batches, refreshes and CLI calls rarely overlap more.
            max_connections: 4,
        }
    }
}

/// A fresh connection's time to connect; a database that is down should make a call
/// fail in seconds, not hang the background writers.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a call waits for a free pooled connection.
const POOL_WAIT: Duration = Duration::from_secs(10);
/// TCP keepalive, so a peer that vanished without closing (a NAT dropping the flow) is
/// noticed in about a minute rather than after the two-hour system default.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

/// Parsed settings and the TLS connector, shared by every way of connecting.
#[derive(Clone)]
pub(crate) struct Connector {
    config: Config,
    tls: MakeRustlsConnect,
}

impl Connector {
    pub(crate) fn new(database_url: &str, options: &ConnectOptions) -> Result<Self, StoreError> {
        // tokio-postgres's parse errors name the option at fault, never its value, so no
        // password leaks into the message.
        let mut config = Config::from_str(database_url)
            .map_err(|e| StoreError::Invalid(format!("invalid database URL: {}", describe(&e))))?;
        if config.get_ssl_mode() == SslMode::Prefer {
            // See tls.rs: only `require` encrypts, and then it verifies.
            config.ssl_mode(SslMode::Disable);
            if !is_local(&config) {
                tracing::warn!(
                    "connecting to PostgreSQL without TLS; add sslmode=require to the URL unless the \
                     network is private"
                );
            }
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.keepalives_idle(KEEPALIVE_IDLE);
        if config.get_application_name().is_none() {
            config.application_name("gemini-proxy");
        }
        let tls = MakeRustlsConnect::new(options.ca_certificates_pem.as_deref())?;
        Ok(Self { config, tls })
    }

    /// One connection outside the pool; the caller must drive (spawn or poll) the
    /// `Connection`, which performs all IO.
    pub(crate) async fn connect(&self) -> Result<(Client, Connection<Socket, RustlsStream>), StoreError> {
        self.config.connect(self.tls.clone()).await.db()
    }

    /// A pool whose connections are checked on the way out (`is_closed`, no round trip):
    /// a connection the server dropped is replaced by a new one on the next call.
    pub(crate) fn pool(&self, max_connections: usize) -> Result<Pool, StoreError> {
        let manager = Manager::from_config(
            self.config.clone(),
            self.tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .timeouts(Timeouts {
                wait: Some(POOL_WAIT),
                create: Some(CONNECT_TIMEOUT * 2),
                recycle: Some(CONNECT_TIMEOUT),
            })
            .build()
            .map_err(|e| StoreError::Unavailable(format!("postgres pool: {e}")))
    }
}

/// Loopback and unix sockets: the only places plaintext is unremarkable.
fn is_local(config: &Config) -> bool {
    config.get_hosts().iter().all(|host| match host {
        Host::Tcp(name) => name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()),
        #[cfg(unix)]
        Host::Unix(_) => true,
    })
}
