//! "Why no reward?" (`GET /v1/referrals/{id}/explain`): for every rule of the relation's
//! program, whether it fired (its rewards, their state and why they wait) and if not, exactly
//! why, in a code and in words. Support answers "where is my reward?" with one call.

use serde::Serialize;
use time::OffsetDateTime;

use crate::domain::ledger::{Hold, Reward, RewardStatus};
use crate::domain::program::{CodeTerms, Program, ProgramStatus, RewardRule, Trigger};
use crate::domain::rules::months_after;
use crate::error::Result;
use crate::store::{ProgramStore, ReferralStore};

use super::Referral;

/// The explanation of one relation.
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    pub referral: Referral,
    pub program: ProgramFacts,
    pub rules: Vec<RuleExplanation>,
}

/// The program as it stands now.
#[derive(Clone, Debug, Serialize)]
pub struct ProgramFacts {
    pub id: String,
    pub name: Option<String>,
    pub currency: Option<String>,
    /// Open now (active and not expired): rules fire automatically only then.
    pub open: bool,
    /// Why not, when it is not (`paused`, `archived`, `expired`, `deleted`).
    pub closed_because: Option<&'static str>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RuleExplanation {
    /// The rule's key (`referrer.paid_threshold.5000`).
    pub key: String,
    pub rule: RewardRule,
    pub fired: bool,
    /// What it paid (or pays), with why each waits.
    pub rewards: Vec<RewardExplanation>,
    /// Why it has not fired (or fires no more), when it has not (or will not again).
    pub why_not: Option<Reason>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RewardExplanation {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    pub status: RewardStatus,
    #[serde(with = "crate::clock::rfc3339")]
    pub created: OffsetDateTime,
    /// The invoice it was earned on (per-invoice rules).
    pub invoice_event_id: Option<String>,
    /// What refunds took of it: off before delivery, back after.
    pub reduced: i64,
    pub taken_back: i64,
    /// Why it waits, or why it was reversed, one sentence per hold.
    pub reasons: Vec<Reason>,
}

/// A reason: a stable code and a sentence with the figures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub code: &'static str,
    pub message: String,
}

fn reason(code: &'static str, message: impl Into<String>) -> Reason {
    Reason {
        code,
        message: message.into(),
    }
}

/// `amount` minor units of `currency` in major units (`30.00 USD`; points as they are).
pub fn money(amount: i64, currency: &str) -> String {
    let digits = iso_currency::Currency::from_code(currency)
        .and_then(|c| c.exponent())
        .unwrap_or(0);
    if digits == 0 {
        return format!("{amount} {currency}");
    }
    let scale = 10_i64.pow(u32::from(digits));
    let sign = if amount < 0 { "-" } else { "" };
    let amount = amount.unsigned_abs();
    format!(
        "{sign}{}.{:0width$} {currency}",
        amount / scale.unsigned_abs(),
        amount % scale.unsigned_abs(),
        width = usize::from(digits)
    )
}

/// What the facts read tell about each rule (pure).
pub fn explain(
    relation: Referral,
    program: Option<&Program>,
    rewards: &[Reward],
    qualified: Option<u64>,
    now: OffsetDateTime,
) -> Explanation {
    let Some(program) = program else {
        return Explanation {
            program: ProgramFacts {
                id: relation.program_id.clone(),
                name: None,
                currency: None,
                open: false,
                closed_because: Some("deleted"),
            },
            referral: relation,
            rules: Vec::new(),
        };
    };
    let closed_because = match program.status {
        ProgramStatus::Paused => Some("paused"),
        ProgramStatus::Archived => Some("archived"),
        ProgramStatus::Active if !program.is_open(now) => Some("expired"),
        ProgramStatus::Active => None,
    };
    let rules = program
        .rewards
        .iter()
        .map(|rule| {
            explain_rule(
                rule,
                program,
                &relation,
                rewards,
                qualified,
                closed_because,
                now,
            )
        })
        .collect();
    Explanation {
        program: ProgramFacts {
            id: program.id.clone(),
            name: Some(program.name.clone()),
            currency: Some(program.currency.clone()),
            open: closed_because.is_none(),
            closed_because,
        },
        referral: relation,
        rules,
    }
}

fn explain_rule(
    rule: &RewardRule,
    program: &Program,
    relation: &Referral,
    rewards: &[Reward],
    qualified: Option<u64>,
    closed: Option<&'static str>,
    now: OffsetDateTime,
) -> RuleExplanation {
    let key = rule.key();
    let once = format!("{}.{key}", relation.id);
    let per_invoice = format!("{once}.");
    let mine: Vec<&Reward> = rewards
        .iter()
        .filter(|r| {
            r.reverses.is_none()
                && (r.id == once
                    || (rule.trigger == Trigger::EachInvoice && r.id.starts_with(&per_invoice)))
        })
        .collect();
    let explained: Vec<RewardExplanation> = mine
        .iter()
        .map(|r| explain_reward(r, program, qualified))
        .collect();
    let fired = !mine.is_empty() || relation.fired_rules.contains(&key);
    let closed_now = || {
        closed.map(|why| {
            reason(
                "program_closed",
                format!("the program is {why}: rules fire only while it is active and unexpired"),
            )
        })
    };
    let why_not = match rule.trigger {
        Trigger::Signup | Trigger::Verified | Trigger::PaidThreshold if fired => None,
        Trigger::Signup => {
            let amount = program.fixed_amount(
                rule,
                CodeTerms {
                    referrer_amount: relation.code_referrer_amount,
                    referee_amount: relation.code_referee_amount,
                },
                relation.country.as_deref(),
            );
            Some(if amount == Some(0) {
                reason(
                    "amount_zero",
                    format!(
                        "the amount for this relation is 0 (the code's or the country {}'s override)",
                        relation.country.as_deref().unwrap_or("-")
                    ),
                )
            } else {
                reason(
                    "rule_added_after_relation",
                    "the rule was not in the program when the user signed up (sign-up rules fire at sign-up only)",
                )
            })
        }
        Trigger::Verified if !relation.verified => Some(reason(
            "not_verified",
            "the referred user has not passed the identity check yet",
        )),
        Trigger::Verified => Some(closed_now().unwrap_or_else(|| {
            reason(
                "rule_added_after_relation",
                "the rule was not in the program when the referred user was verified",
            )
        })),
        Trigger::PaidThreshold => {
            let threshold = rule.threshold_amount.unwrap_or(0);
            Some(if relation.paid_total < threshold {
                reason(
                    "threshold_not_reached",
                    format!(
                        "{} of {} paid",
                        money(relation.paid_total, &program.currency),
                        money(threshold, &program.currency)
                    ),
                )
            } else {
                closed_now().unwrap_or_else(|| {
                    reason(
                        "fires_on_next_invoice",
                        format!(
                            "{} paid reaches the threshold of {}, but it was reached while the program was closed or before the rule was added: the next invoice fires it",
                            money(relation.paid_total, &program.currency),
                            money(threshold, &program.currency)
                        ),
                    )
                })
            })
        }
        Trigger::EachInvoice => {
            let paid = relation.invoice_counts.get(&key).copied().unwrap_or(0);
            if rule.max_invoices.is_some_and(|most| paid >= most) {
                Some(reason(
                    "max_invoices_reached",
                    format!(
                        "{paid} invoices paid a commission: the rule's max_invoices ({})",
                        rule.max_invoices.unwrap_or(0)
                    ),
                ))
            } else if let Some(months) = rule.max_months
                && now >= months_after(relation.created, months)
            {
                Some(reason(
                    "commission_period_ended",
                    format!(
                        "invoices paid commissions for {months} months from the relation's start, until {}",
                        crate::clock::format(months_after(relation.created, months))
                    ),
                ))
            } else if let Some(closed) = closed_now() {
                Some(closed)
            } else if mine.is_empty() {
                Some(if relation.paid_total == 0 {
                    reason(
                        "no_invoice_yet",
                        format!(
                            "no invoice in {} has been recorded for the referred user (invoices in another currency do not count)",
                            program.currency
                        ),
                    )
                } else {
                    reason(
                        "no_invoice_since_rule_added",
                        "invoices were paid, but none since the rule was added",
                    )
                })
            } else {
                None
            }
        }
    };
    RuleExplanation {
        key,
        rule: rule.clone(),
        fired,
        rewards: explained,
        why_not,
    }
}

fn explain_reward(reward: &Reward, program: &Program, qualified: Option<u64>) -> RewardExplanation {
    let mut reasons: Vec<Reason> = Vec::new();
    if reward.status == RewardStatus::Held {
        reasons.extend(
            reward
                .holds
                .iter()
                .map(|hold| hold_reason(*hold, reward, program, qualified)),
        );
    }
    if reward.status == RewardStatus::Reversed {
        reasons.push(match (&reward.denial, reward.refund_reason) {
            (Some(denial), _) => reason("denied", format!("an admin denied it: {denial}")),
            (None, Some(refund)) => reason(
                "refunded",
                format!("a {} took it back whole", refund.as_str()),
            ),
            _ => reason("reversed", "it was reversed"),
        });
    }
    if reward.status == RewardStatus::Failed {
        reasons.push(reason(
            "delivery_failed",
            format!(
                "billing refused it or retries ran out: {}",
                reward.last_error.as_deref().unwrap_or("no error recorded")
            ),
        ));
    }
    if reward.reduced > 0 || reward.taken_back > 0 {
        reasons.push(reason(
            "refunded_in_part",
            format!(
                "refunds took {} off before delivery and {} back after",
                money(reward.reduced, &reward.currency),
                money(reward.taken_back, &reward.currency)
            ),
        ));
    }
    RewardExplanation {
        id: reward.id.clone(),
        amount: reward.amount,
        currency: reward.currency.clone(),
        status: reward.status,
        created: reward.created,
        invoice_event_id: reward.invoice.as_ref().map(|i| i.event_id.clone()),
        reduced: reward.reduced,
        taken_back: reward.taken_back,
        reasons,
    }
}

fn hold_reason(hold: Hold, reward: &Reward, program: &Program, qualified: Option<u64>) -> Reason {
    match hold {
        Hold::Verification => reason(
            "held_for_verification",
            "held until the referred user passes the identity check",
        ),
        Hold::MinReferrals => reason(
            "held_for_min_referrals",
            format!(
                "held until the referrer has {} qualified referrals in the program (has {})",
                program.min_referrals,
                qualified.unwrap_or(0)
            ),
        ),
        Hold::HoldingPeriod => reason(
            "holding_period",
            format!(
                "held for the program's holding period, until {}",
                reward
                    .due_at
                    .map(crate::clock::format)
                    .unwrap_or_else(|| "-".into())
            ),
        ),
        Hold::AwaitingApproval => reason(
            "awaiting_approval",
            "the program's approval is manual: an admin approves or denies it",
        ),
        Hold::BudgetExhausted => reason(
            "budget_exhausted",
            format!(
                "the program's budget ({} per {}) was spent when it was earned: an admin releases it after raising the budget",
                program
                    .budget
                    .map(|b| money(b, &program.currency))
                    .unwrap_or_else(|| "none now".into()),
                match program.budget_period {
                    crate::domain::program::BudgetPeriod::Total => "program",
                    crate::domain::program::BudgetPeriod::Month => "month",
                }
            ),
        ),
        Hold::EarningsCapReached => reason(
            "earnings_cap_reached",
            format!(
                "the referrer had earned the program's max_earnings_per_promoter ({})",
                program
                    .max_earnings_per_promoter
                    .map(|b| money(b, &program.currency))
                    .unwrap_or_else(|| "none now".into())
            ),
        ),
        Hold::PromoterSuspended => reason(
            "promoter_suspended",
            "the referrer is suspended: released when an admin reactivates them",
        ),
        Hold::SameMailbox => reason(
            "same_mailbox",
            "fraud rule: the referred email is the referrer's own mailbox",
        ),
        Hold::DisposableEmail => reason(
            "disposable_email",
            "fraud rule: the referred email is at a disposable-mail domain",
        ),
        Hold::DuplicatePayoutAddress => reason(
            "duplicate_payout_address",
            "fraud rule: another promoter of the tenant has the referrer's payout address",
        ),
        Hold::Velocity => reason(
            "velocity",
            "fraud rule: more sign-ups through the referrer than the program allows in its window",
        ),
        Hold::SameDevice => reason(
            "same_device",
            "fraud rule: the sign-up came from an IP or device the referrer used",
        ),
    }
}

/// Explains a relation of the tenant: the relation (1 `Query`), then its program and its
/// rewards (2 `Query`s) in parallel, and the referrer's qualified count when a reward waits
/// for it (1 `GetItem`).
pub async fn explain_referral(
    store: &(impl ReferralStore + ProgramStore),
    tenant: &str,
    id: &str,
) -> Result<Explanation> {
    let relation = super::get_referral(store, tenant, id).await?;
    let (program, rewards) = tokio::join!(
        store.get_program(tenant, &relation.program_id),
        store.relation_rewards(&relation),
    );
    let (program, rewards) = (program?, rewards?);
    let qualified = if rewards
        .iter()
        .any(|r| r.holds.contains(&Hold::MinReferrals))
    {
        Some(
            store
                .qualified_referrals(tenant, &relation.referrer_user_id, &relation.program_id)
                .await?,
        )
    } else {
        None
    };
    Ok(explain(
        relation,
        program.as_ref(),
        &rewards,
        qualified,
        crate::clock::now(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_shown_in_major_units() {
        assert_eq!(money(300_000, "USD"), "3000.00 USD");
        assert_eq!(money(5, "EUR"), "0.05 EUR");
        assert_eq!(money(-1250, "BRL"), "-12.50 BRL");
        assert_eq!(money(500, "JPY"), "500 JPY");
        assert_eq!(money(40, "POINTS"), "40 POINTS");
    }
}
