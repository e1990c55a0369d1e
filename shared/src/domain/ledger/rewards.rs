//! Rewards as admins see them: one by id, the failed ones, a retry of a failed delivery, and
//! the approval or denial of rewards awaiting approval.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::page::{Page, PageRequest};
use crate::store::{BillingStore, Committed, Plan, ReferralStore, Release};

use super::{Hold, Reward, RewardStatus};

/// The most rewards one bulk approval names.
pub const MAX_BULK: usize = 100;
/// Decisions written per transaction (each: the reward and its balance).
const DECISION_CHUNK: usize = 40;
const MAX_DENIAL: usize = 500;

/// What an admin decides about a reward awaiting approval.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// It pays once no other hold remains.
    Approve,
    /// It never pays: `reversed`, with the reason.
    Deny(String),
}

/// The body of `POST /v1/rewards/{id}/deny`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Denial {
    #[serde(default)]
    pub reason: Option<String>,
}

impl Denial {
    pub fn decision(self) -> Result<Decision> {
        let reason = self.reason.unwrap_or_default();
        let reason = reason.trim();
        if reason.is_empty()
            || reason.chars().count() > MAX_DENIAL
            || reason.chars().any(char::is_control)
        {
            return Err(Error::invalid(
                "reason",
                format!("is required: 1-{MAX_DENIAL} characters without control characters"),
            ));
        }
        Ok(Decision::Deny(reason.to_owned()))
    }
}

/// The body of `POST /v1/rewards/approve`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkApproval {
    pub ids: Vec<String>,
}

/// What a bulk approval did with each id.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BulkApproved {
    pub approved: Vec<Reward>,
    pub refused: Vec<Refused>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Refused {
    pub id: String,
    /// `not_found`, `not_awaiting_approval` or `changed` (try again).
    pub reason: &'static str,
}

/// The reward after `decision`, if it is awaiting approval.
fn decided(before: &Reward, decision: &Decision, now: time::OffsetDateTime) -> Option<Release> {
    if before.status != RewardStatus::Held || !before.holds.contains(&Hold::AwaitingApproval) {
        return None;
    }
    let mut after = before.clone();
    match decision {
        Decision::Approve => {
            after.holds.retain(|hold| *hold != Hold::AwaitingApproval);
            after.status = crate::domain::rules::status_for(&after.holds, after.delivery);
        }
        Decision::Deny(reason) => {
            after.holds.clear();
            after.status = RewardStatus::Reversed;
            after.denial = Some(reason.clone());
        }
    }
    after.updated = now;
    Some(Release {
        holds_before: before.holds.len(),
        reward: after,
    })
}

/// Writes `releases` (of rewards read as `before`) in one transaction.
async fn write(
    store: &impl ReferralStore,
    releases: &[Release],
    before: &[Reward],
) -> Result<bool> {
    let mut plan = Plan::default();
    for release in releases {
        if let Some(was) = before.iter().find(|r| r.id == release.reward.id) {
            plan.change(was, &release.reward);
        }
        plan.releases.push(release.clone());
    }
    Ok(store.apply(&plan).await? == Committed::Done)
}

/// An admin approves or denies one reward awaiting approval; 409 if it is not (or changed
/// meanwhile). Approved, it pays once no other hold remains; denied, it is `reversed` and its
/// amount leaves `total_earned`.
pub async fn decide(
    store: &impl ReferralStore,
    tenant: &str,
    id: &str,
    decision: Decision,
) -> Result<Reward> {
    let before = reward_by_id(store, tenant, id).await?;
    let release = decided(&before, &decision, crate::clock::now()).ok_or_else(|| {
        Error::Conflict(format!(
            "reward {id} is {} and not awaiting approval",
            before.status.as_str()
        ))
    })?;
    if !write(store, std::slice::from_ref(&release), &[before]).await? {
        return Err(Error::Conflict(format!(
            "reward {id} changed meanwhile; retry"
        )));
    }
    Ok(release.reward)
}

/// Approves up to [`MAX_BULK`] rewards: their relations read once each (3 `Query`s per
/// relation), the approvals written [`DECISION_CHUNK`] per transaction, each conditioned on the
/// rewards being as read (a chunk that fails is written reward by reward). Answers what was
/// approved and, per id, why not.
pub async fn approve_many(
    store: &impl ReferralStore,
    tenant: &str,
    input: BulkApproval,
) -> Result<BulkApproved> {
    if input.ids.is_empty() || input.ids.len() > MAX_BULK {
        return Err(Error::invalid(
            "ids",
            format!("must name 1 to {MAX_BULK} rewards"),
        ));
    }
    let mut ids = input.ids;
    ids.sort();
    ids.dedup();
    let mut by_relation: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for id in &ids {
        let relation = id.split('.').next().unwrap_or_default().to_owned();
        by_relation.entry(relation).or_default().push(id.clone());
    }
    let mut answer = BulkApproved::default();
    let mut found = Vec::new();
    for (relation_id, wanted) in by_relation {
        let relation = if crate::id::is_id(&relation_id) {
            store.relation_by_id(tenant, &relation_id).await?
        } else {
            None
        };
        let rewards = match &relation {
            Some(relation) => store.relation_rewards(relation).await?,
            None => Vec::new(),
        };
        for id in wanted {
            match rewards.iter().find(|reward| reward.id == id) {
                Some(reward) => found.push(reward.clone()),
                None => answer.refused.push(Refused {
                    id,
                    reason: "not_found",
                }),
            }
        }
    }
    let now = crate::clock::now();
    let mut releases = Vec::new();
    for reward in &found {
        match decided(reward, &Decision::Approve, now) {
            Some(release) => releases.push(release),
            None => answer.refused.push(Refused {
                id: reward.id.clone(),
                reason: "not_awaiting_approval",
            }),
        }
    }
    for chunk in releases.chunks(DECISION_CHUNK) {
        if write(store, chunk, &found).await? {
            answer
                .approved
                .extend(chunk.iter().map(|r| r.reward.clone()));
            continue;
        }
        for release in chunk {
            if write(store, std::slice::from_ref(release), &found).await? {
                answer.approved.push(release.reward.clone());
            } else {
                answer.refused.push(Refused {
                    id: release.reward.id.clone(),
                    reason: "changed",
                });
            }
        }
    }
    Ok(answer)
}

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
