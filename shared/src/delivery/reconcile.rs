//! The reconciler: re-sends billing credits whose message was lost, found through the sparse
//! index of undelivered rewards (never a scan).

use crate::delivery::queue::BillingQueue;
use crate::error::Result;
use crate::store::BillingStore;

/// How many undelivered rewards one reconciler pass re-sends at most.
pub const RECONCILE_BATCH: usize = 500;

/// Re-sends rewards left `pending` for longer than `age` (a send lost after the database write,
/// or a message that expired). Duplicates are harmless: delivery claims the reward first.
pub async fn reconcile(
    store: &impl BillingStore,
    queue: &BillingQueue,
    age: time::Duration,
) -> Result<usize> {
    let stale = store
        .undelivered_before(crate::clock::now() - age, RECONCILE_BATCH)
        .await?;
    let sent = queue.enqueue(&stale).await;
    tracing::info!(found = stale.len(), sent, "reconciled undelivered rewards");
    Ok(sent)
}
