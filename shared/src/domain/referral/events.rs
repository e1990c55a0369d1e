//! Events from the tenant's backend: invoices (seed 000) and identity checks (seed 002).

use serde::{Deserialize, Serialize};

use crate::domain::ledger::Reward;
use crate::domain::program::{Recipient, RewardKind};
use crate::domain::promoter::{self};
use crate::domain::rules::{self, Context, Event, Hold};
use crate::error::{Error, Result};
use crate::store::{
    Committed, EventRecord, Plan, ProgramStore, Qualification, ReferralStore, RelationWrite,
};

use super::booking::{book, release};
use super::*;

/// Body of `POST /v1/events/invoices` (seed 000's invoice).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invoice {
    pub event_id: String,
    /// The referred user who paid.
    pub user_id: String,
    /// This invoice's amount, minor units.
    #[serde(default)]
    pub amount_paid: Option<i64>,
    /// The user's cumulative paid total (seed 000); only ever raises the stored total.
    #[serde(default)]
    pub total_amount_paid: Option<i64>,
    pub currency: String,
}

/// The answer to an invoice: the referrer credit it unlocked and every reward it produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InvoiceOutcome {
    pub acquired_credit: i64,
    pub rewards: Vec<Reward>,
}

/// Adds an invoice to the referred user's paid total in each of their relations and fires the
/// `paid_threshold` and `each_invoice` rules. Idempotent on `event_id`: the event's record is
/// written with `attribute_not_exists` in the same transaction, so a replay, sequential or
/// concurrent, writes nothing and answers what the record holds. One round of parallel reads
/// (relations, programs, the user's promoter guard) and one `TransactWriteItems`.
pub async fn record_invoice(
    store: &(impl ReferralStore + ProgramStore),
    tenant: &str,
    invoice: &Invoice,
) -> Result<InvoiceOutcome> {
    let event = event_id(&invoice.event_id)?;
    let user = user_id("user_id", &invoice.user_id)?;
    let amount = match (invoice.amount_paid, invoice.total_amount_paid) {
        (Some(amount), None) => Paid::Invoice(amount),
        (None, Some(total)) => Paid::Total(total),
        _ => {
            return Err(Error::invalid(
                "amount_paid",
                "give exactly one of amount_paid and total_amount_paid",
            ));
        }
    };
    let figure = match amount {
        Paid::Invoice(a) | Paid::Total(a) => a,
    };
    if !(0..=crate::domain::money::MAX_AMOUNT).contains(&figure) {
        let field = if matches!(amount, Paid::Invoice(_)) {
            "amount_paid"
        } else {
            "total_amount_paid"
        };
        return Err(Error::invalid(
            field,
            format!("must be between 0 and {}", crate::domain::money::MAX_AMOUNT),
        ));
    }
    let currency = crate::domain::money::money_currency("currency", &invoice.currency)?;
    let mut backoff = Backoff::new();
    loop {
        let (relations, programs, referee_promoter) = tokio::join!(
            store.relations_of_referred(tenant, &user),
            promoter::all_programs(store, tenant),
            store_promoter_code(store, tenant, &user),
        );
        let (relations, programs, referee_promoter) = (relations?, programs?, referee_promoter?);
        let now = crate::clock::now();
        let mut plan = Plan::default();
        // A user is referred once per program: each relation is its own replace in the one
        // transaction; the codes' counters add up.
        for relation in relations {
            let Some(program) = programs.iter().find(|p| p.id == relation.program_id) else {
                continue;
            };
            if program.currency != currency {
                continue;
            }
            let previous_total = relation.paid_total;
            let new_total = match amount {
                Paid::Invoice(a) => previous_total + a,
                Paid::Total(t) => previous_total.max(t),
            };
            if new_total == previous_total {
                continue;
            }
            let referrer_qualified = program.min_referrals == 0
                || store
                    .qualified_referrals(tenant, &relation.referrer_user_id, &program.id)
                    .await?
                    >= u64::from(program.min_referrals);
            let context = Context {
                program,
                relation: &relation,
                verified: relation.verified,
                referrer_qualified,
                now,
            };
            let dues = rules::due_rewards(
                &context,
                &Event::Invoice {
                    event_id: &event,
                    amount: new_total - previous_total,
                    previous_total,
                    new_total,
                },
            );
            let mut next = relation.clone();
            next.paid_total = new_total;
            next.version += 1;
            next.updated = now;
            if matches!(
                next.status,
                ReferralStatus::Signup | ReferralStatus::Verified
            ) {
                next.status = ReferralStatus::Converted;
            }
            book(
                dues,
                program,
                &mut next,
                referee_promoter.as_deref(),
                &mut plan,
                now,
            );
            plan.relations.push(RelationWrite::Replace(next));
        }
        let outcome = InvoiceOutcome {
            acquired_credit: plan
                .rewards
                .iter()
                .filter(|r| r.recipient == Recipient::Referrer && r.kind == RewardKind::Cash)
                .map(|r| r.amount)
                .sum(),
            rewards: plan.rewards.clone(),
        };
        if let Some(answer) = commit_event(store, plan, tenant, "invoice", &event, outcome).await? {
            return Ok(answer);
        }
        backoff.wait().await?;
    }
}

/// Applies an event's plan with the event's record holding `answer`. `Some(answer)` when it was
/// written; for a replay, `Some` of the answer the record holds; `None` when something read has
/// changed (decide again).
async fn commit_event<T: Serialize + serde::de::DeserializeOwned>(
    store: &impl ReferralStore,
    mut plan: Plan,
    tenant: &str,
    kind: &'static str,
    event: &str,
    answer: T,
) -> Result<Option<T>> {
    plan.event = Some(EventRecord {
        tenant: tenant.to_owned(),
        kind,
        event_id: event.to_owned(),
        response: serde_json::to_string(&answer).map_err(Error::internal)?,
    });
    match store.apply(&plan).await? {
        Committed::Done => Ok(Some(answer)),
        // A replay: the event's record holds the first answer.
        Committed::EventSeen => {
            let stored = store
                .event_response(tenant, kind, event)
                .await?
                .ok_or_else(|| Error::internal(format!("{kind} event {event} has no record")))?;
            serde_json::from_str(&stored)
                .map(Some)
                .map_err(Error::internal)
        }
        Committed::Stale => Ok(None),
        Committed::RelationTaken | Committed::CodeRefused => {
            Err(Error::internal(format!("a {kind} plan was refused")))
        }
    }
}

enum Paid {
    Invoice(i64),
    Total(i64),
}

async fn store_promoter_code(
    store: &impl ReferralStore,
    tenant: &str,
    user: &str,
) -> Result<Option<String>> {
    store.promoter_code_of(tenant, user).await
}

/// Body of `POST /v1/events/verifications` (seed 002's identity check).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verification {
    pub event_id: String,
    /// The referred user whose identity was checked.
    pub user_id: String,
    pub outcome: VerificationOutcome,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationOutcome {
    /// The user started the check: one more attempt on the code.
    Attempted,
    /// The check passed: one more success; `verified` rules fire and held rewards are released.
    Succeeded,
    /// The check failed: recorded, nothing changes.
    Failed,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VerificationResult {
    pub user_id: String,
    pub outcome: VerificationOutcome,
    /// Rewards the check produced (`verified` rules).
    pub rewards: Vec<Reward>,
    /// Held rewards it released.
    pub released: Vec<Reward>,
}

/// Records an identity-check outcome for the referred user in each of their relations.
/// Idempotent on `event_id`.
pub async fn record_verification(
    store: &(impl ReferralStore + ProgramStore),
    tenant: &str,
    check: &Verification,
) -> Result<VerificationResult> {
    let event = event_id(&check.event_id)?;
    let user = user_id("user_id", &check.user_id)?;
    let mut backoff = Backoff::new();
    loop {
        let (relations, programs, referee_promoter) = tokio::join!(
            store.relations_of_referred(tenant, &user),
            promoter::all_programs(store, tenant),
            store.promoter_code_of(tenant, &user),
        );
        let (relations, programs, referee_promoter) = (relations?, programs?, referee_promoter?);
        let now = crate::clock::now();
        let mut plan = Plan::default();
        for relation in relations {
            let Some(program) = programs.iter().find(|p| p.id == relation.program_id) else {
                continue;
            };
            if let Some(code) = &relation.code {
                let counts = plan.code(code, tenant);
                match check.outcome {
                    VerificationOutcome::Attempted => counts.verification_attempts += 1,
                    VerificationOutcome::Succeeded => counts.verification_successes += 1,
                    VerificationOutcome::Failed => {}
                }
            }
            if check.outcome != VerificationOutcome::Succeeded || relation.verified {
                continue;
            }
            // The first success: the relation is verified; it may now qualify its referrer.
            let min = u64::from(program.min_referrals);
            let newly_qualifies = program.requires_verification && min > 0;
            let seen = if min > 0 {
                store
                    .qualified_referrals(tenant, &relation.referrer_user_id, &program.id)
                    .await?
            } else {
                0
            };
            let referrer_qualified = min == 0 || seen + u64::from(newly_qualifies) >= min;
            let mut next = relation.clone();
            next.verified = true;
            next.version += 1;
            next.updated = now;
            if next.status == ReferralStatus::Signup {
                next.status = ReferralStatus::Verified;
            }
            let context = Context {
                program,
                relation: &relation,
                verified: true,
                referrer_qualified,
                now,
            };
            let dues = rules::due_rewards(&context, &Event::Verified);
            book(
                dues,
                program,
                &mut next,
                referee_promoter.as_deref(),
                &mut plan,
                now,
            );
            let promoters = (
                Some(relation.referrer_promoter_code.as_str()),
                referee_promoter.as_deref(),
            );
            // This relation's rewards wait for the check no more; if it brings the referrer to
            // `min_referrals`, their held rewards in the program wait no more either.
            let reaches_min = newly_qualifies && seen < min && seen + 1 >= min;
            let mut candidates = store.relation_rewards(&relation).await?;
            if reaches_min {
                let held = store
                    .held_referrer_rewards(tenant, &relation.referrer_user_id, &program.id)
                    .await?;
                // A reward in both lists is released once (`release` skips repeats).
                candidates.extend(held);
            }
            let relation_id = relation.id.clone();
            let lift = |reward: &Reward| {
                let mut lift = Vec::new();
                if reward.referral_id.as_deref() == Some(relation_id.as_str()) {
                    lift.push(Hold::Verification);
                }
                if reaches_min && reward.recipient == Recipient::Referrer {
                    lift.push(Hold::MinReferrals);
                }
                lift
            };
            release(candidates, lift, promoters, &mut plan, now);
            if newly_qualifies {
                plan.qualified = Some(Qualification {
                    tenant: tenant.to_owned(),
                    referrer: relation.referrer_user_id.clone(),
                    program_id: program.id.clone(),
                    seen,
                });
            }
            plan.relations.push(RelationWrite::Replace(next));
        }
        let result = VerificationResult {
            user_id: user.clone(),
            outcome: check.outcome,
            rewards: plan.rewards.clone(),
            released: plan.releases.clone(),
        };
        if let Some(answer) =
            commit_event(store, plan, tenant, "verification", &event, result).await?
        {
            return Ok(answer);
        }
        backoff.wait().await?;
    }
}
