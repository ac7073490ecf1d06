//! What the dashboard's handlers share.

use std::sync::Arc;

use proxy_core::admin::AdminStore;
use tokio::sync::Notify;

use crate::bundle::Bundle;
use crate::login_limit::LoginLimiter;
use crate::password::AdminPassword;
use crate::session::Sessions;

pub struct AppState {
    pub admin: Arc<dyn AdminStore>,
    /// Wakes the proxy's key refresher so dashboard changes apply at once.
    pub refresh: Arc<Notify>,
    pub password: AdminPassword,
    pub sessions: Sessions,
    pub limiter: LoginLimiter,
    pub secure_cookies: bool,
    /// The browser bundle, when `scripts/build-web.sh` built one.
    pub bundle: Option<Bundle>,
}

impl AppState {
    pub fn new(
        admin: Arc<dyn AdminStore>,
        refresh: Arc<Notify>,
        password: Option<&str>,
        secure_cookies: bool,
        bundle: Option<Bundle>,
    ) -> Arc<AppState> {
        Arc::new(AppState {
            admin,
            refresh,
            password: AdminPassword::new(password),
            sessions: Sessions::default(),
            limiter: LoginLimiter::default(),
            secure_cookies,
            bundle,
        })
    }
}
