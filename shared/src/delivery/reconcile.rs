//! The reconciler: releases rewards whose holding period ended, found through the sparse index
//! of held rewards by due time; re-sends billing credits whose message was lost, found through
//! the sparse index of undelivered rewards; and finishes release jobs an operation left
//! unfinished (its chunks cut short), found through theirs: never a scan.

use crate::delivery::queue::BillingQueue;
use crate::error::Result;
use crate::store::{BillingStore, ReferralStore};

/// How many unfinished release jobs one pass runs at most.
pub const RELEASE_JOBS_BATCH: usize = 50;

/// Runs the release jobs recorded more than `age` ago and not finished; answers the rewards
/// they released (the `pending` ones are then sent to billing). A job that fails again stays
/// for the next pass.
pub async fn resume_release_jobs(
    store: &impl ReferralStore,
    age: time::Duration,
) -> Result<Vec<crate::domain::ledger::Reward>> {
    let jobs = store
        .release_jobs_before(crate::clock::now() - age, RELEASE_JOBS_BATCH)
        .await?;
    let mut released = Vec::new();
    for job in &jobs {
        match crate::domain::referral::booking::run_release_job(store, job).await {
            Ok(rewards) => released.extend(rewards),
            Err(error) => tracing::warn!(%error, user = %job.user_id, "release job failed again"),
        }
    }
    tracing::info!(
        jobs = jobs.len(),
        released = released.len(),
        "resumed release jobs"
    );
    Ok(released)
}

/// How many rewards one pass releases from their holding period at most (the rest: the next
/// pass, five minutes later).
pub const DUE_BATCH: usize = 400;

/// Releases the rewards whose holding period ended by `now`; answers them (those now `pending`
/// reach billing through the stream, like any change).
pub async fn release_due(
    store: &impl ReferralStore,
    now: time::OffsetDateTime,
) -> Result<Vec<crate::domain::ledger::Reward>> {
    let released = crate::domain::referral::booking::release_due(store, now, DUE_BATCH).await?;
    tracing::info!(
        released = released.len(),
        "released rewards whose holding period ended"
    );
    Ok(released)
}

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
