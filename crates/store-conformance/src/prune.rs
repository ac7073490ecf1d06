//! Pruning old request logs.

use proxy_core::admin::LogQuery;
use proxy_core::log::LogRecord;

use crate::Store;
use crate::fixtures::{ids, list, record};

/// `prune_logs` deletes rows started before the cutoff and counts them. Leaves two rows
/// behind (started at 300 and 400).
pub async fn prune_deletes_only_older_rows<S: Store + ?Sized>(store: &S) {
    let batch: Vec<LogRecord> = [100u64, 200, 300, 400]
        .iter()
        .map(|t| record(&format!("t{t}"), *t))
        .collect();
    store.write_logs(&batch).await.expect("write");
    assert_eq!(store.prune_logs(300).await.expect("prune"), 2, "rows before 300");
    let listed = list(store, LogQuery::default()).await;
    assert_eq!(ids(&listed), vec!["t400", "t300"], "what is left");
    assert_eq!(
        store.prune_logs(300).await.expect("prune again"),
        0,
        "nothing left to prune"
    );
}
