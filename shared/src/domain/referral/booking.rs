//! Booking what the rules made due: ledger entries, counters and balances in the plan; and
//! releasing held rewards whose holds no longer apply.

use time::OffsetDateTime;

use crate::domain::ledger::Reward;
use crate::domain::program::{Program, Recipient, RewardKind};
use crate::domain::rules::{self, Due, Hold};
use crate::store::Plan;

use super::*;

/// Turns due rewards into ledger entries, records them on the relation and in the plan.
pub(crate) fn book(
    dues: Vec<Due>,
    program: &Program,
    relation: &mut Referral,
    referee_promoter: Option<&str>,
    plan: &mut Plan,
    now: OffsetDateTime,
) {
    for due in dues {
        let reward = Reward {
            id: crate::domain::ledger::reward_id(&relation.id, &due.source),
            tenant: relation.tenant.clone(),
            user_id: due.user_id.clone(),
            recipient: due.recipient,
            program_id: relation.program_id.clone(),
            program_name: Some(program.name.clone()),
            referral_id: Some(relation.id.clone()),
            referrer_user_id: Some(relation.referrer_user_id.clone()),
            code: relation.code.clone(),
            kind: due.kind,
            amount: due.amount,
            currency: due.currency.clone(),
            delivery: due.delivery,
            status: due.status(),
            holds: due.holds.clone(),
            reason: due.reason.to_owned(),
            last_error: None,
            attempts: 0,
            created: now,
            updated: now,
        };
        if due.once && !relation.fired_rules.contains(&due.rule_key) {
            relation.fired_rules.push(due.rule_key.clone());
        }
        let cash = if due.kind == RewardKind::Cash {
            due.amount
        } else {
            0
        };
        let code = relation.code.clone().unwrap_or_default();
        let counts = plan.code(&code, &relation.tenant);
        let balance_key = match due.recipient {
            Recipient::Referrer => {
                relation.referrer_earned += cash;
                relation.commission_status = Some(reward.status);
                counts.referrer_earned += cash;
                Some(relation.referrer_promoter_code.clone())
            }
            Recipient::Referee => {
                counts.referee_earned += cash;
                referee_promoter.map(str::to_owned)
            }
        };
        if let Some(key) = balance_key {
            plan.balances.entry(key).or_default().add(&reward);
        }
        plan.rewards.push(reward);
    }
}

/// Releases held rewards into the plan: `lifted` names, per reward, the holds that no longer
/// apply. A reward whose holds are all lifted becomes pending or credited; its replacement is
/// conditioned on it being held still, and the balances follow.
pub(crate) fn release(
    candidates: Vec<Reward>,
    lifted: impl Fn(&Reward) -> Vec<Hold>,
    promoters: (Option<&str>, Option<&str>),
    plan: &mut Plan,
    now: OffsetDateTime,
) {
    let (referrer_promoter, referee_promoter) = promoters;
    for before in candidates {
        let lift = lifted(&before);
        if before.status != crate::domain::ledger::RewardStatus::Held
            || !before.holds.iter().any(|hold| lift.contains(hold))
            || plan.releases.iter().any(|r| r.id == before.id)
        {
            continue;
        }
        let mut after = before.clone();
        after.holds.retain(|hold| !lift.contains(hold));
        after.status = rules::status_for(&after.holds, after.delivery);
        after.updated = now;
        let key = match before.recipient {
            Recipient::Referrer => referrer_promoter,
            Recipient::Referee => referee_promoter,
        };
        if let Some(key) = key {
            plan.balances
                .entry(key.to_owned())
                .or_default()
                .change(&before, &after);
        }
        plan.releases.push(after);
    }
}
