//! What the dashboard's handlers share.

use std::sync::Arc;

use proxy_axum::ProxyState;
use proxy_core::admin::AdminStore;
use proxy_core::platform::KeyStore;
use tokio::sync::Notify;

use crate::bundle::Bundle;
use crate::login_limit::LoginLimiter;
use crate::password::AdminPassword;
use crate::session::Sessions;

pub struct AppState {
    pub admin: Arc<dyn AdminStore>,
    /// Where a re-check's invalid mark is saved, as the proxy saves its own.
    pub key_store: Arc<dyn KeyStore>,
    /// The proxy this process serves: its key pool answers "re-check now".
    pub proxy: Arc<ProxyState>,
    /// Wakes the proxy's key refresher so dashboard changes apply at once.
    pub refresh: Arc<Notify>,
    pub password: AdminPassword,
    pub sessions: Sessions,
    pub limiter: LoginLimiter,
    pub secure_cookies: bool,
    /// The browser bundle, when `scripts/build-web.sh` built one.
    pub bundle: Option<Bundle>,
}

/// The stores and the proxy the dashboard works on.
pub struct Backing {
    pub admin: Arc<dyn AdminStore>,
    pub key_store: Arc<dyn KeyStore>,
    pub proxy: Arc<ProxyState>,
    pub refresh: Arc<Notify>,
}

impl AppState {
    pub fn new(
        backing: Backing,
        password: Option<&str>,
        secure_cookies: bool,
        bundle: Option<Bundle>,
    ) -> Arc<AppState> {
        let Backing {
            admin,
            key_store,
            proxy,
            refresh,
        } = backing;
        Arc::new(AppState {
            admin,
            key_store,
            proxy,
            refresh,
            password: AdminPassword::new(password),
            sessions: Sessions::default(),
            limiter: LoginLimiter::default(),
            secure_cookies,
            bundle,
        })
    }
}
