//! Client keys: the schema stores nothing but a hash (the rest is the shared suite).

use proxy_core::admin::AdminStore;
use proxy_core::platform::StoreError;

use crate::harness::Env;

#[tokio::test]
async fn proxy_keys_refuse_anything_but_a_hash() {
    let env = Env::new().await;
    // The schema refuses anything but a SHA-256 in hex: a raw key cannot be stored.
    for bad in ["", "gp-not-a-hash"] {
        assert!(
            matches!(
                env.store.create_proxy_key("raw", bad).await,
                Err(StoreError::Invalid(_))
            ),
            "{bad:?}"
        );
    }
}
