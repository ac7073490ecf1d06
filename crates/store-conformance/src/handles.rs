//! Two handles on the same data, as the `serve` process and the CLI hold them.

use proxy_core::pool::StateChange;

use crate::Store;
use crate::fixtures::SECRET_A;

/// Two handles on the same data (the `serve` process and the CLI) see each other's
/// writes.
pub async fn two_handles_see_each_others_writes<S: Store + ?Sized, T: Store + ?Sized>(serve: &S, cli: &T) {
    let id = cli.add_key(SECRET_A, "from-cli").await.expect("cli adds");
    let seen = serve.load().await.expect("serve loads").keys;
    assert_eq!(
        seen.iter().map(|(k, _)| k.id).collect::<Vec<_>>(),
        vec![id],
        "serve sees the key the CLI added"
    );

    serve
        .save_state(&[StateChange::Invalid {
            key_id: id,
            reason: "PERMISSION_DENIED".into(),
        }])
        .await
        .expect("serve saves");
    let rows = cli.list_keys().await.expect("cli lists");
    assert_eq!(
        rows[0].invalid_reason.as_deref(),
        Some("PERMISSION_DENIED"),
        "the CLI sees the state serve saved"
    );
}
