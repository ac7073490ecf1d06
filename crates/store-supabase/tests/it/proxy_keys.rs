//! Client keys: only hashes are stored, and revoking is a flag.

use proxy_core::admin::AdminStore;
use proxy_core::platform::StoreError;
use store_conformance as conformance;

use crate::harness::Env;

#[tokio::test]
async fn proxy_keys_round_trip() {
    let env = Env::new().await;
    conformance::proxy_keys_round_trip(&env.store).await;
}

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
