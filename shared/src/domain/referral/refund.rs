//! Refunds and chargebacks (`POST /v1/events/refunds`): the referred user's paid total goes
//! down, and what the refunded money earned is taken back. Idempotent on `event_id` like
//! invoices.
//!
//! - The `each_invoice` rewards of the refunded invoice (`invoice_event_id`) lose their share of
//!   it: `amount × refunded / invoice`, half-even, counted over every refund of that invoice
//!   (so two half refunds take back exactly what one full refund would).
//! - A `paid_threshold` reward earned within the program's `clawback_days` is taken back whole
//!   when the paid total falls below its threshold (the rule stays fired: paying again does not
//!   earn it twice). Rewards an admin granted (`completed_by_admin`) are not taken back.
//! - Before delivery (held, failed) a reward is reduced in place (all of it: `reversed`);
//!   after (pending: on its way to billing; credited) a take-back entry with a negative amount
//!   is written: a payout take-back lowers `current_balance` at once (it may go negative and
//!   is netted by the next earnings), a billing-credit take-back is delivered to billing as a
//!   debit with its own idempotency key (its id).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::ledger::{InvoiceBasis, RefundReason, Reward, RewardStatus};
use crate::domain::money::{MAX_AMOUNT, money_currency, prorate};
use crate::domain::program::{Delivery, Program, Recipient, RewardKind, Trigger};
use crate::error::{Error, Result};
use crate::store::{Adjustment, Plan, ProgramStore, ReferralStore, RelationWrite};

use super::events::{commit_event, fingerprint, relations_of, with_programs};
use super::*;

/// Body of `POST /v1/events/refunds`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refund {
    pub event_id: String,
    /// The referred user whose payment was refunded.
    pub user_id: String,
    /// The invoice refunded (its `event_id`): its per-invoice rewards are taken back in
    /// proportion. Without it only the paid total (and the thresholds) move.
    #[serde(default)]
    pub invoice_event_id: Option<String>,
    /// Minor units.
    pub amount_refunded: i64,
    pub currency: String,
    #[serde(default)]
    pub reason: Option<RefundReason>,
}

/// What a refund did in one relation of the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundEffect {
    /// The paid total went down; what the refunded money earned was taken back.
    Counted,
    /// The program is in another currency: nothing changed.
    CurrencyMismatch,
    /// Nothing was paid in the relation: nothing changed.
    Unchanged,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RefundRelation {
    pub referral_id: String,
    pub program_id: String,
    pub outcome: RefundEffect,
    /// The referred user's paid total in the relation after the refund.
    pub paid_total: i64,
}

/// The answer to a refund.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RefundOutcome {
    pub reason: RefundReason,
    /// The rewards it reduced, reversed or took back from, in their new state.
    pub adjusted: Vec<Reward>,
    /// The take-back entries it wrote (negative amounts).
    pub take_backs: Vec<Reward>,
    pub relations: Vec<RefundRelation>,
}

/// What a refund takes from one reward: `amount` (positive), and the invoice's refunded total
/// after it (per-invoice rewards).
#[derive(Clone, Debug, PartialEq)]
pub struct Clawback {
    pub reward: Reward,
    pub amount: i64,
    pub invoice: Option<InvoiceBasis>,
}

/// The refund as the rules see it.
#[derive(Clone, Copy, Debug)]
pub struct Refunded<'a> {
    pub invoice_event_id: Option<&'a str>,
    pub amount: i64,
    /// The relation's paid total after the refund.
    pub new_total: i64,
    pub now: OffsetDateTime,
}

/// What a refund takes back of a relation's `rewards` (pure).
pub fn clawbacks(program: &Program, rewards: &[Reward], refund: &Refunded) -> Vec<Clawback> {
    let mut taken = Vec::new();
    for reward in rewards {
        if reward.remaining() == 0 {
            continue;
        }
        // A per-invoice reward of the refunded invoice: its share of what was refunded so far.
        if let (Some(invoice), Some(refunded)) = (&reward.invoice, refund.invoice_event_id)
            && invoice.event_id == refunded
        {
            let total = (invoice.refunded + refund.amount).min(invoice.amount);
            let due = prorate(reward.amount, total, invoice.amount);
            let amount = (due - reward.reduced - reward.taken_back).clamp(0, reward.remaining());
            let invoice = InvoiceBasis {
                refunded: total,
                ..invoice.clone()
            };
            if amount > 0 || total != reward.invoice.as_ref().map_or(0, |i| i.refunded) {
                taken.push(Clawback {
                    reward: reward.clone(),
                    amount,
                    invoice: Some(invoice),
                });
            }
            continue;
        }
        // A threshold reward the paid total no longer reaches, within the clawback window.
        let threshold = program.rewards.iter().find(|rule| {
            rule.trigger == Trigger::PaidThreshold
                && reward.referral_id.as_deref().is_some_and(|relation| {
                    reward.id == crate::domain::ledger::reward_id(relation, &rule.key())
                })
        });
        if let Some(rule) = threshold
            && reward.reason == Trigger::PaidThreshold.as_str()
            && program.clawback_days > 0
            && refund.now < reward.created + time::Duration::days(program.clawback_days.into())
            && refund.new_total < rule.threshold_amount.unwrap_or(0)
        {
            taken.push(Clawback {
                reward: reward.clone(),
                amount: reward.remaining(),
                invoice: None,
            });
        }
    }
    taken
}

/// A reward after a refund took `clawback.amount` of it, and the take-back entry when it was
/// delivered already (or is on its way).
pub fn claw(
    clawback: &Clawback,
    event: &str,
    reason: RefundReason,
    now: OffsetDateTime,
) -> (Reward, Option<Reward>) {
    let before = &clawback.reward;
    let mut after = before.clone();
    after.updated = now;
    after.invoice = clawback.invoice.clone().or(after.invoice);
    if clawback.amount == 0 {
        return (after, None);
    }
    after.refund_reason = Some(reason);
    match before.status {
        RewardStatus::Held | RewardStatus::Failed => {
            after.reduced += clawback.amount;
            if after.reduced >= after.amount {
                after.status = RewardStatus::Reversed;
                after.holds.clear();
                after.due_at = None;
            }
            (after, None)
        }
        RewardStatus::Pending | RewardStatus::Credited => {
            after.taken_back += clawback.amount;
            let entry = Reward {
                id: format!("{}.takeback.{event}", before.id),
                amount: -clawback.amount,
                status: match before.delivery {
                    Delivery::Payout => RewardStatus::Credited,
                    Delivery::BillingCredit => RewardStatus::Pending,
                },
                holds: Vec::new(),
                due_at: None,
                denial: None,
                invoice: None,
                reduced: 0,
                taken_back: 0,
                reverses: Some(before.id.clone()),
                refund_reason: Some(reason),
                // What it takes back is given back to the limits through the reward itself.
                budget_bucket: None,
                counts_to_cap: false,
                reason: reason.as_str().to_owned(),
                last_error: None,
                attempts: 0,
                created: now,
                updated: now,
                ..before.clone()
            };
            (after, Some(entry))
        }
        RewardStatus::Reversed => (before.clone(), None),
    }
}

/// Records a refund of the referred user's payments in each of their relations in its currency:
/// lowers the paid total and takes back what the refunded money earned (see the module).
/// Reads: the relations and programs in parallel, then each relation's rewards in parallel;
/// then one `TransactWriteItems` (relations versioned, every reward conditioned on being as
/// read: a concurrent invoice, release or delivery makes it decide again).
pub async fn record_refund(
    store: &(impl ReferralStore + ProgramStore),
    tenant: &str,
    refund: &Refund,
) -> Result<RefundOutcome> {
    let event = event_id(&refund.event_id)?;
    let user = user_id("user_id", &refund.user_id)?;
    let invoice = match &refund.invoice_event_id {
        Some(id) => Some(event_id(id).map_err(|_| {
            Error::invalid(
                "invoice_event_id",
                "must be 1-128 letters, digits, '.', '_', ':' or '-'",
            )
        })?),
        None => None,
    };
    if !(1..=MAX_AMOUNT).contains(&refund.amount_refunded) {
        return Err(Error::invalid(
            "amount_refunded",
            format!("must be between 1 and {MAX_AMOUNT}"),
        ));
    }
    let currency = money_currency("currency", &refund.currency)?;
    let reason = refund.reason.unwrap_or_default();
    let print = fingerprint(&[
        "refund",
        &event,
        &user,
        invoice.as_deref().unwrap_or(""),
        &refund.amount_refunded.to_string(),
        &currency,
        reason.as_str(),
    ]);
    let mut backoff = Backoff::new();
    loop {
        let (relations, programs) = relations_of(store, tenant, &user).await?;
        let relations = with_programs(relations, &programs);
        let rewards = futures::future::join_all(relations.iter().map(|(relation, program)| {
            // An invoice named is looked for even after the paid total fell to 0 (a refund
            // that named none took the total, not the invoice's rewards).
            let reads =
                program.currency == currency && (relation.paid_total > 0 || invoice.is_some());
            async move {
                if reads {
                    store.relation_rewards(relation).await
                } else {
                    Ok(Vec::new())
                }
            }
        }))
        .await;
        let now = crate::clock::now();
        let mut plan = Plan::default();
        let mut effects = Vec::new();
        let mut take_backs = Vec::new();
        for ((relation, program), rewards) in relations.into_iter().zip(rewards) {
            let rewards = rewards?;
            let new_total = (relation.paid_total - refund.amount_refunded).max(0);
            let refunded = Refunded {
                invoice_event_id: invoice.as_deref(),
                amount: refund.amount_refunded,
                new_total,
                now,
            };
            let taken = if program.currency == currency {
                clawbacks(program, &rewards, &refunded)
            } else {
                Vec::new()
            };
            let outcome = if program.currency != currency {
                RefundEffect::CurrencyMismatch
            } else if relation.paid_total == 0 && taken.is_empty() {
                RefundEffect::Unchanged
            } else {
                RefundEffect::Counted
            };
            let new_total = if outcome == RefundEffect::Counted {
                new_total
            } else {
                relation.paid_total
            };
            effects.push(RefundRelation {
                referral_id: relation.id.clone(),
                program_id: program.id.clone(),
                outcome,
                paid_total: new_total,
            });
            if outcome != RefundEffect::Counted {
                continue;
            }
            let mut next = relation.clone();
            next.paid_total = new_total;
            next.version += 1;
            next.updated = now;
            for clawback in taken {
                let (after, entry) = claw(&clawback, &event, reason, now);
                plan.change(&clawback.reward, &after);
                take_back_counts(&mut plan, &mut next, &clawback, now);
                plan.adjustments.push(Adjustment {
                    before: clawback.reward,
                    after,
                });
                if let Some(entry) = entry {
                    plan.earn(&entry);
                    take_backs.push(entry.clone());
                    plan.rewards.push(entry);
                }
            }
            plan.relations.push(RelationWrite::Replace(next));
        }
        let outcome = RefundOutcome {
            reason,
            adjusted: plan
                .adjustments
                .iter()
                .filter(|a| {
                    a.after.reduced + a.after.taken_back != a.before.reduced + a.before.taken_back
                })
                .map(|a| a.after.clone())
                .collect(),
            take_backs,
            relations: effects,
        };
        if let Some(answer) =
            commit_event(store, plan, tenant, "refund", &event, &print, outcome).await?
        {
            return Ok(answer);
        }
        backoff.wait().await?;
    }
}

/// What a clawback takes off the counters of the relation and its code.
fn take_back_counts(
    plan: &mut Plan,
    relation: &mut Referral,
    clawback: &Clawback,
    now: OffsetDateTime,
) {
    let reward = &clawback.reward;
    if clawback.amount == 0 {
        return;
    }
    if let Some(code) = &relation.code {
        let counts = plan.code(code, &relation.tenant);
        let earned = match reward.recipient {
            Recipient::Referrer => &mut counts.referrer_earned,
            Recipient::Referee => &mut counts.referee_earned,
        };
        *earned.entry(reward.currency.clone()).or_default() -= clawback.amount;
    }
    if reward.recipient == Recipient::Referrer && reward.kind == RewardKind::Cash {
        relation.referrer_earned -= clawback.amount;
    }
    super::booking::give_back(plan, reward, clawback.amount);
    crate::domain::stats::earn(plan, reward, -clawback.amount, now);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::program::ProgramInput;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-24 12:00 UTC);

    fn program(clawback_days: u32) -> Program {
        let input: ProgramInput = crate::json::parse(
            serde_json::json!({"name": "P", "currency": "USD", "clawback_days": clawback_days,
                "rewards": [
                {"recipient": "referrer", "trigger": "paid_threshold", "threshold_amount": 5000,
                 "kind": "cash", "amount": 2500, "delivery": "payout"}]})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        Program::create("P1".into(), "acme", &input, NOW).unwrap()
    }

    fn threshold_reward(created: OffsetDateTime, reason: &str) -> Reward {
        let json = serde_json::json!({
            "id": "R1.referrer.paid_threshold.5000", "tenant": "acme", "user_id": "alice",
            "recipient": "referrer", "program_id": "P1", "referral_id": "R1", "code": "ALICE",
            "kind": "cash", "amount": 2500, "currency": "USD", "delivery": "payout",
            "status": "credited", "holds": [], "reason": reason, "last_error": null,
            "created": crate::clock::format(created), "updated": crate::clock::format(created)});
        serde_json::from_value(json).unwrap()
    }

    fn refund(new_total: i64) -> Refunded<'static> {
        Refunded {
            invoice_event_id: None,
            amount: 1000,
            new_total,
            now: NOW,
        }
    }

    #[test]
    fn a_threshold_is_taken_back_only_below_it_within_the_window_and_not_an_admins_grant() {
        let recent = threshold_reward(NOW - time::Duration::days(10), "paid_threshold");
        let taken = clawbacks(&program(60), std::slice::from_ref(&recent), &refund(4999));
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].amount, 2500);
        assert!(clawbacks(&program(60), std::slice::from_ref(&recent), &refund(5000)).is_empty());
        assert!(clawbacks(&program(0), std::slice::from_ref(&recent), &refund(0)).is_empty());
        let old = threshold_reward(NOW - time::Duration::days(61), "paid_threshold");
        assert!(clawbacks(&program(60), &[old], &refund(0)).is_empty());
        let granted = threshold_reward(NOW, "completed_by_admin");
        assert!(clawbacks(&program(60), &[granted], &refund(0)).is_empty());

        // Delivered: a credited take-back entry of its own, the reward's status kept.
        let (after, entry) = claw(&taken[0], "re-1", RefundReason::Refund, NOW);
        let entry = entry.unwrap();
        assert_eq!(
            (after.status, after.taken_back),
            (RewardStatus::Credited, 2500)
        );
        assert_eq!(
            (entry.amount, entry.status, entry.reverses.as_deref()),
            (-2500, RewardStatus::Credited, Some(recent.id.as_str()))
        );
        assert_eq!(entry.id, "R1.referrer.paid_threshold.5000.takeback.re-1");
        assert_eq!(after.remaining(), 0);
        assert_eq!(entry.remaining(), 0);
    }
}
