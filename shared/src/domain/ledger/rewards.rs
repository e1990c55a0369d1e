//! Rewards as admins see them: one by id, the failed ones, and a retry of a failed delivery.

use crate::error::{Error, Result};
use crate::page::{Page, PageRequest};
use crate::store::{BillingStore, ReferralStore};

use super::{Reward, RewardStatus};

/// A reward of the tenant by id: through its relation (ids are `{relation}.{rule}…`). Two
/// `Query`s (the relation, then the rewards of its two users).
pub async fn reward_by_id(store: &impl ReferralStore, tenant: &str, id: &str) -> Result<Reward> {
    let not_found = || Error::NotFound(format!("no reward {id}"));
    let relation_id = id.split('.').next().unwrap_or_default();
    if !crate::id::is_id(relation_id) {
        return Err(not_found());
    }
    let relation = store
        .relation_by_id(tenant, relation_id)
        .await?
        .ok_or_else(not_found)?;
    store
        .relation_rewards(&relation)
        .await?
        .into_iter()
        .find(|reward| reward.id == id)
        .ok_or_else(not_found)
}

/// An admin sends a failed reward to billing again; a credited one is 409.
pub async fn retry_reward(
    store: &(impl ReferralStore + BillingStore),
    tenant: &str,
    id: &str,
) -> Result<Reward> {
    let reward = reward_by_id(store, tenant, id).await?;
    if reward.status != RewardStatus::Failed {
        return Err(Error::Conflict(format!(
            "reward {id} is {}; only failed rewards are retried",
            reward.status.as_str()
        )));
    }
    let now = crate::clock::now();
    if !store.requeue(&reward, now).await? {
        return Err(Error::Conflict(format!(
            "reward {id} changed meanwhile; retry"
        )));
    }
    Ok(Reward {
        status: RewardStatus::Pending,
        updated: now,
        ..reward
    })
}

/// The tenant's rewards of one status (`?status=`, required), latest change first: one `Query`
/// of the rewards-by-status index.
pub async fn rewards_by_status(
    store: &impl BillingStore,
    tenant: &str,
    status: Option<&str>,
    page: &PageRequest,
) -> Result<Page<Reward>> {
    let status = match status.filter(|s| !s.is_empty()) {
        Some(status) => RewardStatus::parse(status)?,
        None => {
            return Err(Error::invalid(
                "status",
                "is required: one of held, pending, credited, failed, reversed",
            ));
        }
    };
    store.rewards_by_status(tenant, status, page).await
}

/// A page of a relation's rewards: the referrer's, then the referred user's, each by id. The
/// relation (1 `Query`), then 1 `Query` per side the page reaches.
pub async fn relation_rewards(
    store: &impl ReferralStore,
    tenant: &str,
    relation_id: &str,
    page: &PageRequest,
) -> Result<Page<Reward>> {
    let relation = crate::domain::referral::get_referral(store, tenant, relation_id).await?;
    store.relation_rewards_page(&relation, page).await
}
