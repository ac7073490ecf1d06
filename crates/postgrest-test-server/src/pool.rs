//! A handful of reusable connections. Connecting costs a few milliseconds; tests make
//! hundreds of requests, so idle connections are kept and handed out again.

use std::io;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio_postgres::{Client, Config, NoTls};

/// More than the few requests a test has in flight at once; extra connections close.
const MAX_IDLE: usize = 8;

#[derive(Clone)]
pub(crate) struct Pool {
    config: Config,
    idle: Arc<Mutex<Vec<Client>>>,
}

impl Pool {
    pub(crate) fn new(database_url: &str) -> io::Result<Pool> {
        let config = Config::from_str(database_url)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("bad database url: {e}")))?;
        Ok(Pool {
            config,
            idle: Arc::new(Mutex::new(Vec::new())),
        })
    }

    pub(crate) async fn get(&self) -> Result<Lease, tokio_postgres::Error> {
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            std::iter::from_fn(|| idle.pop()).find(|c| !c.is_closed())
        };
        let client = match reused {
            Some(client) => client,
            None => {
                let (client, connection) = self.config.connect(NoTls).await?;
                // The connection future drives the socket; it ends when the client drops.
                tokio::spawn(connection);
                client
            }
        };
        Ok(Lease {
            client: Some(client),
            idle: Arc::clone(&self.idle),
        })
    }
}

/// A connection on loan; it goes back to the pool when dropped, unless it broke.
pub(crate) struct Lease {
    client: Option<Client>,
    idle: Arc<Mutex<Vec<Client>>>,
}

impl Deref for Lease {
    type Target = Client;
    fn deref(&self) -> &Client {
        // Only `drop` takes the client out, so it is always there before.
        self.client
            .as_ref()
            .unwrap_or_else(|| unreachable!("lease used after drop"))
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Client {
        self.client
            .as_mut()
            .unwrap_or_else(|| unreachable!("lease used after drop"))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(client) = self.client.take().filter(|c| !c.is_closed()) {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE {
                idle.push(client);
            }
        }
    }
}
