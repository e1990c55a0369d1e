//! Rewards as admins see them: one by id, the failed ones, a retry of a failed delivery, and
//! the approval or denial of rewards awaiting approval.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::program::{Program, all_programs};
use crate::domain::referral::booking::{count_release, give_back, spent};
use crate::error::{Error, Result};
use crate::page::{Page, PageRequest};
use crate::store::{
    BillingStore, Committed, Plan, ProgramStore, ReferralStore, RelationWrite, Release, Spent,
};

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
    /// `not_found`, `not_awaiting_approval`, `budget_exhausted` / `earnings_cap_reached` (it
    /// does not fit the limit it is held for: raise it first) or `changed` (try again).
    pub reason: &'static str,
}

/// The reward after `decision`, if it waits for an admin (approval, budget, earnings cap).
fn decided(before: &Reward, decision: &Decision, now: time::OffsetDateTime) -> Option<Release> {
    if before.status != RewardStatus::Held || !before.holds.iter().any(|h| h.is_for_admin()) {
        return None;
    }
    let mut after = before.clone();
    match decision {
        Decision::Approve => {
            after.holds.retain(|hold| !hold.is_for_admin());
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

/// Adds a decision to `plan`: the reward's new state and its balance; a denial gives what it
/// counted back to the program's limits; an approval that lifts a budget or earnings-cap hold
/// counts the reward now, under the limits as read in `spent` (`Err`: it does not fit, with
/// the hold that stays).
fn add_decision(
    plan: &mut Plan,
    program: Option<&Program>,
    spent: Spent,
    before: &Reward,
    mut release: Release,
) -> std::result::Result<Release, Hold> {
    let after = &mut release.reward;
    if after.status == RewardStatus::Reversed {
        give_back(plan, before, before.payable());
        crate::domain::stats::earn(plan, before, -before.payable(), after.updated);
    } else if let Some(program) = program {
        let lifts = |hold| before.holds.contains(&hold) && !after.holds.contains(&hold);
        let (budget, cap) = (
            lifts(Hold::BudgetExhausted),
            lifts(Hold::EarningsCapReached),
        );
        if budget || cap {
            let counted = count_release(plan, program, spent, after, after.updated)?;
            after.budget_bucket = counted.0.or(after.budget_bucket.take());
            after.counts_to_cap |= counted.1;
        }
    }
    plan.change(before, &release.reward);
    plan.releases.push(release.clone());
    Ok(release)
}

/// Whether approving `before` into `after` lifts a fraud hold: the admin judged the relation
/// sound, so its flags go (its later rewards are not held for them).
fn clears_flags(before: &Reward, after: &Reward) -> bool {
    after.status != RewardStatus::Reversed && before.holds.iter().any(|hold| hold.is_fraud())
}

/// Clears a relation's fraud flags in `plan` (versioned), once per plan.
fn clear_flags(plan: &mut Plan, relation: &crate::domain::referral::Referral) {
    if relation.flags.is_empty()
        || plan.relations.iter().any(|write| match write {
            RelationWrite::New(r) | RelationWrite::Replace(r) => r.id == relation.id,
        })
    {
        return;
    }
    let mut next = relation.clone();
    next.flags.clear();
    next.version += 1;
    next.updated = crate::clock::now();
    plan.relations.push(RelationWrite::Replace(next));
}

/// Writes one plan; `false` when a condition failed (something changed, or a limit was
/// reached meanwhile).
async fn write(store: &impl ReferralStore, plan: &Plan) -> Result<bool> {
    Ok(store.apply(plan).await? == Committed::Done)
}

/// What a decision about one reward needs read: its program and its counters.
async fn context_of(
    store: &(impl ReferralStore + ProgramStore),
    programs: &[Program],
    reward: &Reward,
) -> Result<(Option<Program>, Spent)> {
    let Some(program) = programs.iter().find(|p| p.id == reward.program_id) else {
        return Ok((None, Spent::default()));
    };
    let lifts_limit = reward.holds.contains(&Hold::BudgetExhausted)
        || reward.holds.contains(&Hold::EarningsCapReached);
    let spent = if lifts_limit {
        spent(store, program, &reward.user_id, crate::clock::now()).await?
    } else {
        Spent::default()
    };
    Ok((Some(program.clone()), spent))
}

fn over_limit(id: &str, hold: Hold) -> Error {
    Error::Conflict(match hold {
        Hold::EarningsCapReached => format!(
            "reward {id} is held for the program's max_earnings_per_promoter, which the referrer has reached: raise it first"
        ),
        _ => format!(
            "reward {id} is held for the program's budget, which it does not fit: raise budget first"
        ),
    })
}

/// An admin approves or denies one reward waiting for them (approval, budget, earnings cap);
/// 409 if it is not (or changed meanwhile, or does not fit the limit it is held for).
/// Approved, it pays once no other hold remains; denied, it is `reversed` and its amount
/// leaves `total_earned` and is given back to the program's limits.
pub async fn decide(
    store: &(impl ReferralStore + ProgramStore),
    tenant: &str,
    id: &str,
    decision: Decision,
) -> Result<Reward> {
    let before = reward_by_id(store, tenant, id).await?;
    let release = decided(&before, &decision, crate::clock::now()).ok_or_else(|| {
        Error::Conflict(format!(
            "reward {id} is {} and not waiting for an admin",
            before.status.as_str()
        ))
    })?;
    let program = store.get_program(tenant, &before.program_id).await?;
    let (program, spent) = context_of(store, program.as_slice(), &before).await?;
    let mut plan = Plan::default();
    let release = add_decision(&mut plan, program.as_ref(), spent, &before, release)
        .map_err(|hold| over_limit(id, hold))?;
    if clears_flags(&before, &release.reward)
        && let Some(relation) = match &before.referral_id {
            Some(relation) => store.relation_by_id(tenant, relation).await?,
            None => None,
        }
    {
        clear_flags(&mut plan, &relation);
    }
    if !write(store, &plan).await? {
        return Err(Error::Conflict(format!(
            "reward {id} changed meanwhile (or its limit was reached); retry"
        )));
    }
    Ok(release.reward)
}

/// Approves up to [`MAX_BULK`] rewards: their relations read once each (3 `Query`s per
/// relation), the programs once, the counters of those held for a limit; the approvals
/// written [`DECISION_CHUNK`] per transaction, each conditioned on the rewards being as read
/// and the limits (a chunk that fails is written reward by reward). Answers what was approved
/// and, per id, why not.
pub async fn approve_many(
    store: &(impl ReferralStore + ProgramStore),
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
    let mut relations = Vec::new();
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
        relations.extend(relation);
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
    let programs = all_programs(store, tenant).await?;
    let now = crate::clock::now();
    let mut decisions = Vec::new();
    for reward in &found {
        match decided(reward, &Decision::Approve, now) {
            Some(release) => {
                let (program, spent) = context_of(store, &programs, reward).await?;
                decisions.push((reward, release, program, spent));
            }
            None => answer.refused.push(Refused {
                id: reward.id.clone(),
                reason: "not_awaiting_approval",
            }),
        }
    }
    let refusal = |hold| match hold {
        Hold::EarningsCapReached => "earnings_cap_reached",
        _ => "budget_exhausted",
    };
    // A relation's flags are cleared by the first approval of one of its fraud-held rewards.
    let mut cleared: Vec<String> = Vec::new();
    let flags_of = |plan: &mut Plan, before: &Reward, after: &Reward, cleared: &[String]| {
        if clears_flags(before, after)
            && let Some(relation) = relations
                .iter()
                .find(|r| before.referral_id.as_deref() == Some(r.id.as_str()))
            && !cleared.contains(&relation.id)
        {
            clear_flags(plan, relation);
        }
    };
    for chunk in decisions.chunks(DECISION_CHUNK) {
        let mut plan = Plan::default();
        let mut approved = Vec::new();
        let mut over = Vec::new();
        for (before, release, program, spent) in chunk {
            match add_decision(&mut plan, program.as_ref(), *spent, before, release.clone()) {
                Ok(release) => {
                    flags_of(&mut plan, before, &release.reward, &cleared);
                    approved.push(release.reward);
                }
                Err(hold) => over.push(Refused {
                    id: before.id.clone(),
                    reason: refusal(hold),
                }),
            }
        }
        if write(store, &plan).await? {
            cleared.extend(written_relations(&plan));
            answer.approved.extend(approved);
            answer.refused.extend(over);
            continue;
        }
        for (before, release, program, spent) in chunk {
            let mut plan = Plan::default();
            let decision =
                add_decision(&mut plan, program.as_ref(), *spent, before, release.clone());
            if let Ok(release) = &decision {
                flags_of(&mut plan, before, &release.reward, &cleared);
            }
            match decision {
                Ok(release) if write(store, &plan).await? => {
                    cleared.extend(written_relations(&plan));
                    answer.approved.push(release.reward);
                }
                Ok(_) => answer.refused.push(Refused {
                    id: release.reward.id.clone(),
                    reason: "changed",
                }),
                Err(hold) => answer.refused.push(Refused {
                    id: before.id.clone(),
                    reason: refusal(hold),
                }),
            }
        }
    }
    Ok(answer)
}

fn written_relations(plan: &Plan) -> Vec<String> {
    plan.relations
        .iter()
        .map(|write| match write {
            RelationWrite::New(r) | RelationWrite::Replace(r) => r.id.clone(),
        })
        .collect()
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
