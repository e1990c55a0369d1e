//! The reward-rules engine: given a program, a referral relation and an event, which rewards are
//! due, to whom, how much, and in which state. Pure: no I/O, no clock; every input is explicit.
//!
//! - `signup` rules fire at sign-up, `verified` rules when the referred user passes the identity
//!   check, `paid_threshold` rules once, on the first invoice (while the program is open) that
//!   finds the referred user's paid total at or past the threshold (seed 000's `target_value`),
//!   `each_invoice` rules on every invoice (seed 001's commission).
//! - Amounts: a fixed `amount` (sign-up rules take the code's own amounts, then the country's
//!   override), or a `percent` of the invoice rounded half-even to minor units. A per-relation
//!   commission rate (the promoter's own, an admin sets it) replaces the percent of the
//!   referrer's invoice rules.
//! - A reward is held while the referred user's identity check is outstanding in a program that
//!   requires it, and a referrer's reward while the referrer has fewer qualified referrals than
//!   `min_referrals`. Unheld rewards are `pending` (delivery `billing_credit`: to be sent to the
//!   billing system) or `credited` (delivery `payout`: added to the promoter's balance).
//! - Only open programs (active, unexpired) pay automatically; an admin completion pays in any
//!   program that is not archived.

use time::OffsetDateTime;

use crate::domain::ledger::RewardStatus;
use crate::domain::money::{POINTS, percent_of};
use crate::domain::program::{
    CodeTerms, Delivery, Program, ProgramStatus, Recipient, RewardKind, RewardRule, Trigger,
};
use crate::domain::referral::Referral;

/// What happened to a relation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Signup,
    Verified,
    /// An invoice of `amount` took the paid total from `previous_total` to `new_total`.
    Invoice {
        event_id: &'a str,
        amount: i64,
        previous_total: i64,
        new_total: i64,
    },
    /// An admin completed the relation (seed 004): the referrer is rewarded now.
    Completion,
}

pub use crate::domain::ledger::Hold;

/// The facts the engine decides on.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub program: &'a Program,
    pub relation: &'a Referral,
    /// The referred user has passed the identity check.
    pub verified: bool,
    /// The referrer has at least `min_referrals` qualified referrals in this program.
    pub referrer_qualified: bool,
    /// The referrer's own commission rate (percent), replacing the percent of the program's
    /// referrer invoice rules (seed 001's `commission_rate`, set by an admin).
    pub referrer_rate: Option<f64>,
    /// What holds every reward of the referrer now: `promoter_suspended`,
    /// `duplicate_payout_address`.
    pub referrer_holds: &'a [Hold],
    pub now: OffsetDateTime,
}

/// A reward the event makes due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// Unique per relation and source: the rule's key, plus the invoice's event id for
    /// `each_invoice` rules. With the relation id it makes the reward's deterministic id.
    pub source: String,
    /// The rule's key, to record once-only rules as fired.
    pub rule_key: String,
    pub once: bool,
    pub recipient: Recipient,
    pub user_id: String,
    pub kind: RewardKind,
    pub amount: i64,
    pub currency: String,
    pub delivery: Delivery,
    pub holds: Vec<Hold>,
    pub reason: &'static str,
    /// The invoice a per-invoice reward is earned on (what its refunds are measured against).
    pub invoice: Option<crate::domain::ledger::InvoiceBasis>,
}

impl Due {
    pub fn status(&self) -> RewardStatus {
        status_for(&self.holds, self.delivery)
    }
}

/// The state of a reward with `holds` and `delivery`.
pub fn status_for(holds: &[Hold], delivery: Delivery) -> RewardStatus {
    if !holds.is_empty() {
        RewardStatus::Held
    } else {
        match delivery {
            Delivery::BillingCredit => RewardStatus::Pending,
            Delivery::Payout => RewardStatus::Credited,
        }
    }
}

/// Whether a relation counts towards its referrer's `min_referrals`: signed up, and verified
/// when the program requires it.
pub fn qualifies(program: &Program, verified: bool) -> bool {
    !program.requires_verification || verified
}

/// The rewards `event` makes due for the relation in `context`.
pub fn due_rewards(context: &Context, event: &Event) -> Vec<Due> {
    let program = context.program;
    let pays = match event {
        Event::Completion => program.status != ProgramStatus::Archived,
        _ => program.is_open(context.now),
    };
    if !pays {
        return Vec::new();
    }
    program
        .rewards
        .iter()
        .filter(|rule| fires(rule, context, event))
        .filter_map(|rule| due(rule, context, event))
        .collect()
}

/// `months` calendar months after `start` (the day clamped to the month's last: 31 January
/// plus one month is 28 or 29 February).
pub fn months_after(start: OffsetDateTime, months: u32) -> OffsetDateTime {
    let index =
        i64::from(start.year()) * 12 + i64::from(u8::from(start.month())) - 1 + i64::from(months);
    let year = i32::try_from(index.div_euclid(12)).unwrap_or(i32::MAX);
    let month = time::Month::try_from(u8::try_from(index.rem_euclid(12) + 1).unwrap_or(1))
        .unwrap_or(time::Month::January);
    let day = start.day().min(time::util::days_in_month(month, year));
    time::Date::from_calendar_date(year, month, day)
        .map(|date| start.replace_date(date))
        .unwrap_or(start)
}

/// Whether `rule` fires on `event` for the relation.
fn fires(rule: &RewardRule, context: &Context, event: &Event) -> bool {
    let fired = context.relation.fired_rules.contains(&rule.key());
    match (rule.trigger, event) {
        (Trigger::Signup, Event::Signup) => !fired,
        (Trigger::Verified, Event::Verified) => !fired,
        (Trigger::PaidThreshold, Event::Invoice { new_total, .. }) => {
            // At or past the threshold and not fired yet: an invoice while the program was closed
            // counts towards the total, and the reward fires on the first invoice after.
            let threshold = rule.threshold_amount.unwrap_or(i64::MAX);
            !fired && *new_total >= threshold
        }
        (Trigger::EachInvoice, Event::Invoice { amount, .. }) => {
            let paid = context
                .relation
                .invoice_counts
                .get(&rule.key())
                .copied()
                .unwrap_or(0);
            *amount > 0
                && rule.max_invoices.is_none_or(|most| paid < most)
                && rule.max_months.is_none_or(|months| {
                    context.now < months_after(context.relation.created, months)
                })
        }
        // An admin completion grants the referrer every fixed reward still outstanding.
        (Trigger::Signup | Trigger::Verified | Trigger::PaidThreshold, Event::Completion) => {
            !fired && rule.recipient == Recipient::Referrer && rule.amount.is_some()
        }
        _ => false,
    }
}

fn due(rule: &RewardRule, context: &Context, event: &Event) -> Option<Due> {
    let relation = context.relation;
    let program = context.program;
    let terms = CodeTerms {
        referrer_amount: relation.code_referrer_amount,
        referee_amount: relation.code_referee_amount,
    };
    let amount = match (rule.percent, event) {
        (Some(percent), Event::Invoice { amount, .. }) => {
            let percent = match (rule.recipient, context.referrer_rate) {
                (Recipient::Referrer, Some(own)) => own,
                _ => percent,
            };
            percent_of(*amount, percent)
        }
        (Some(_), _) => return None,
        (None, _) => program.fixed_amount(rule, terms, relation.country.as_deref())?,
    };
    if amount <= 0 {
        return None;
    }
    let key = rule.key();
    let (source, once, invoice) = match event {
        Event::Invoice {
            event_id, amount, ..
        } if rule.trigger == Trigger::EachInvoice => (
            format!("{key}.{event_id}"),
            false,
            Some(crate::domain::ledger::InvoiceBasis {
                event_id: (*event_id).to_owned(),
                amount: *amount,
                refunded: 0,
            }),
        ),
        _ => (key.clone(), true, None),
    };
    let mut holds = Vec::new();
    if program.requires_verification && !context.verified && *event != Event::Completion {
        holds.push(Hold::Verification);
    }
    if rule.recipient == Recipient::Referrer
        && program.min_referrals > 0
        && !context.referrer_qualified
        && *event != Event::Completion
    {
        holds.push(Hold::MinReferrals);
    }
    // An admin's completion pays at once; every other reward waits out the holding period.
    if program.hold_days > 0 && *event != Event::Completion {
        holds.push(Hold::HoldingPeriod);
    }
    if program.approval == crate::domain::program::Approval::Manual && *event != Event::Completion {
        holds.push(Hold::AwaitingApproval);
    }
    if *event != Event::Completion {
        if rule.recipient == Recipient::Referrer {
            holds.extend(context.referrer_holds.iter().copied());
        }
        // What the relation was flagged for at sign-up (fraud rules) holds all its rewards.
        for flag in &relation.flags {
            if !holds.contains(flag) {
                holds.push(*flag);
            }
        }
    }
    Some(Due {
        source,
        rule_key: key,
        once,
        recipient: rule.recipient,
        user_id: match rule.recipient {
            Recipient::Referrer => relation.referrer_user_id.clone(),
            Recipient::Referee => relation.referred_user_id.clone(),
        },
        kind: rule.kind,
        amount,
        currency: match rule.kind {
            RewardKind::Cash => program.currency.clone(),
            RewardKind::Points => POINTS.to_owned(),
        },
        delivery: rule.delivery,
        holds,
        reason: match event {
            Event::Completion => "completed_by_admin",
            _ => rule.trigger.as_str(),
        },
        invoice,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::program::ProgramInput;
    use crate::domain::referral::{InvitationMethod, ReferralStatus};
    use serde_json::json;
    use time::macros::datetime;

    #[test]
    fn months_are_calendar_months_clamped_to_the_last_day() {
        assert_eq!(
            months_after(datetime!(2026-01-31 10:00 UTC), 1),
            datetime!(2026-02-28 10:00 UTC)
        );
        assert_eq!(
            months_after(datetime!(2027-12-15 00:00 UTC), 12),
            datetime!(2028-12-15 00:00 UTC)
        );
        assert_eq!(
            months_after(datetime!(2027-11-30 23:59 UTC), 3),
            datetime!(2028-02-29 23:59 UTC)
        );
    }

    const NOW: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);

    fn program(value: serde_json::Value) -> Program {
        let input: ProgramInput = crate::json::parse(value.to_string().as_bytes()).unwrap();
        Program::create("P1".into(), "acme", &input, NOW - time::Duration::days(1)).unwrap()
    }

    /// Seed 000: `credit_value` 1000 for the referee at sign-up, `target_value` 5000 for the
    /// referrer when the referee's paid total reaches 5000.
    fn seed_000() -> Program {
        program(json!({"name": "Seed 000", "currency": "BRL", "rewards": [
            {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1000},
            {"recipient": "referrer", "trigger": "paid_threshold", "threshold_amount": 5000,
             "kind": "cash", "amount": 5000}
        ]}))
    }

    fn relation() -> Referral {
        Referral {
            id: "R1".into(),
            tenant: "acme".into(),
            program_id: "P1".into(),
            code: Some("CODE2345".into()),
            code_referrer_amount: None,
            code_referee_amount: None,
            referrer_user_id: "alice".into(),
            referrer_promoter_code: "CODE2345".into(),
            referred_user_id: "bob".into(),
            referred_email: None,
            country: None,
            invitation_method: InvitationMethod::Code,
            status: ReferralStatus::Signup,
            paid_total: 0,
            referrer_earned: 0,
            commission_rate: None,
            commission_status: None,
            commission_reward_id: None,
            verified: false,
            redeemed_at: None,
            version: 1,
            fired_rules: Vec::new(),
            flags: Vec::new(),
            invoice_counts: Default::default(),
            created: NOW,
            updated: NOW,
        }
    }

    fn context<'a>(program: &'a Program, relation: &'a Referral) -> Context<'a> {
        Context {
            program,
            relation,
            verified: false,
            referrer_qualified: true,
            referrer_rate: None,
            referrer_holds: &[],
            now: NOW,
        }
    }

    fn invoice(amount: i64, previous_total: i64) -> Event<'static> {
        Event::Invoice {
            event_id: "inv-1",
            amount,
            previous_total,
            new_total: previous_total + amount,
        }
    }

    fn summary(dues: &[Due]) -> Vec<(&str, Recipient, i64, RewardStatus)> {
        dues.iter()
            .map(|d| (d.user_id.as_str(), d.recipient, d.amount, d.status()))
            .collect()
    }

    #[test]
    fn seed_000_credits_the_referee_at_signup_and_the_referrer_at_the_threshold() {
        let program = seed_000();
        let relation = relation();
        let ctx = context(&program, &relation);
        let signup = due_rewards(&ctx, &Event::Signup);
        assert_eq!(
            summary(&signup),
            [("bob", Recipient::Referee, 1000, RewardStatus::Pending)]
        );
        assert_eq!(signup[0].currency, "BRL");
        assert_eq!(signup[0].reason, "signup");
        assert!(signup[0].once);

        assert!(
            due_rewards(&ctx, &invoice(3000, 0)).is_empty(),
            "3000 < 5000"
        );
        let crossing = due_rewards(&ctx, &invoice(2500, 3000));
        assert_eq!(
            summary(&crossing),
            [("alice", Recipient::Referrer, 5000, RewardStatus::Pending)]
        );
        assert_eq!(crossing[0].source, "referrer.paid_threshold.5000");
        let exact = due_rewards(&ctx, &invoice(5000, 0));
        assert_eq!(exact.len(), 1, "reaching the threshold exactly fires");
    }

    #[test]
    fn a_threshold_fires_once() {
        let program = seed_000();
        let mut relation = relation();
        relation
            .fired_rules
            .push("referrer.paid_threshold.5000".into());
        let ctx = context(&program, &relation);
        assert!(due_rewards(&ctx, &invoice(2500, 3000)).is_empty());
        // Past the threshold without having fired (the program was paused when the total got
        // there): the next invoice of an open program fires it.
        let mut fresh = crate::domain::rules::tests::relation();
        fresh.paid_total = 6000;
        let ctx = context(&program, &fresh);
        assert_eq!(due_rewards(&ctx, &invoice(1000, 6000)).len(), 1);
    }

    #[test]
    fn seed_001_commission_is_a_percent_of_each_invoice_rounded_half_even() {
        let program = program(json!({"name": "Seed 001", "currency": "USD", "rewards": [
            {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "percent": 15.0,
             "delivery": "payout"}
        ]}));
        let relation = relation();
        let ctx = context(&program, &relation);
        let dues = due_rewards(&ctx, &invoice(10_000, 0));
        assert_eq!(
            summary(&dues),
            [("alice", Recipient::Referrer, 1500, RewardStatus::Credited)]
        );
        assert_eq!(dues[0].source, "referrer.each_invoice.inv-1");
        assert!(!dues[0].once);
        assert_eq!(
            due_rewards(&ctx, &invoice(10_000, 10_000)).len(),
            1,
            "every invoice"
        );
        assert!(due_rewards(&ctx, &invoice(0, 10_000)).is_empty());

        let ctx = Context {
            referrer_rate: Some(20.0),
            referrer_holds: &[],
            ..context(&program, &relation)
        };
        assert_eq!(due_rewards(&ctx, &invoice(10_000, 0))[0].amount, 2000);
    }

    #[test]
    fn seed_002_code_amounts_then_country_overrides_apply_to_signup() {
        let program = program(json!({"name": "Seed 002", "currency": "USD",
        "country_overrides": {"BR": {"referee_amount": 100, "referrer_amount": 0}},
        "rewards": [
            {"recipient": "referrer", "trigger": "signup", "kind": "cash", "amount": 500, "delivery": "payout"},
            {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 2500}
        ]}));
        let mut relation = relation();
        relation.code_referrer_amount = Some(700);
        relation.code_referee_amount = Some(3000);
        let ctx = context(&program, &relation);
        let amounts: Vec<i64> = due_rewards(&ctx, &Event::Signup)
            .iter()
            .map(|d| d.amount)
            .collect();
        assert_eq!(amounts, [700, 3000]);
        relation.country = Some("BR".into());
        let ctx = context(&program, &relation);
        let brazil = due_rewards(&ctx, &Event::Signup);
        assert_eq!(
            summary(&brazil),
            [("bob", Recipient::Referee, 100, RewardStatus::Pending)],
            "0 pays nothing"
        );
    }

    #[test]
    fn seed_002_verification_holds_rewards_and_verified_rules_fire_on_success() {
        let program = program(
            json!({"name": "Seed 002", "currency": "USD", "requires_verification": true,
            "rewards": [
                {"recipient": "referrer", "trigger": "signup", "kind": "cash", "amount": 500, "delivery": "payout"},
                {"recipient": "referee", "trigger": "verified", "kind": "cash", "amount": 2500}
            ]}),
        );
        let relation = relation();
        let ctx = context(&program, &relation);
        let signup = due_rewards(&ctx, &Event::Signup);
        assert_eq!(
            summary(&signup),
            [("alice", Recipient::Referrer, 500, RewardStatus::Held)]
        );
        assert_eq!(signup[0].holds, [Hold::Verification]);
        let verified = Context {
            verified: true,
            ..ctx
        };
        let on_success = due_rewards(&verified, &Event::Verified);
        assert_eq!(
            summary(&on_success),
            [("bob", Recipient::Referee, 2500, RewardStatus::Pending)]
        );
        assert!(qualifies(&program, true) && !qualifies(&program, false));
    }

    #[test]
    fn seed_003_points_both_sides_min_referrals_and_expiry() {
        let mut program = program(
            json!({"name": "Seed 003", "currency": "POINTS", "min_referrals": 2,
            "expires_at": "2027-01-01T00:00:00Z",
            "rewards": [
                {"recipient": "referrer", "trigger": "signup", "kind": "points", "amount": 100, "delivery": "payout"},
                {"recipient": "referee", "trigger": "signup", "kind": "points", "amount": 50}
            ]}),
        );
        let relation = relation();
        let unqualified = Context {
            referrer_qualified: false,
            ..context(&program, &relation)
        };
        let dues = due_rewards(&unqualified, &Event::Signup);
        assert_eq!(
            summary(&dues),
            [
                ("alice", Recipient::Referrer, 100, RewardStatus::Held),
                ("bob", Recipient::Referee, 50, RewardStatus::Pending)
            ]
        );
        assert_eq!(dues[0].holds, [Hold::MinReferrals]);
        assert_eq!(dues[0].currency, "POINTS");
        let qualified = context(&program, &relation);
        assert_eq!(
            due_rewards(&qualified, &Event::Signup)[0].status(),
            RewardStatus::Credited
        );

        let expired = Context {
            now: datetime!(2027-01-02 00:00 UTC),
            ..qualified
        };
        assert!(due_rewards(&expired, &Event::Signup).is_empty());
        program.status = ProgramStatus::Paused;
        assert!(due_rewards(&context(&program, &relation), &Event::Signup).is_empty());
    }

    #[test]
    fn seed_004_completion_grants_the_referrers_outstanding_fixed_rewards() {
        let program = seed_000();
        let relation = relation();
        let unverified = context(&program, &relation);
        let dues = due_rewards(&unverified, &Event::Completion);
        assert_eq!(
            summary(&dues),
            [("alice", Recipient::Referrer, 5000, RewardStatus::Pending)]
        );
        assert_eq!(dues[0].reason, "completed_by_admin");
        assert_eq!(
            dues[0].source, "referrer.paid_threshold.5000",
            "the same id an invoice would make"
        );

        let mut paused = program.clone();
        paused.status = ProgramStatus::Paused;
        assert_eq!(
            due_rewards(&context(&paused, &relation), &Event::Completion).len(),
            1
        );
        paused.status = ProgramStatus::Archived;
        assert!(due_rewards(&context(&paused, &relation), &Event::Completion).is_empty());

        let mut fired = relation.clone();
        fired
            .fired_rules
            .push("referrer.paid_threshold.5000".into());
        assert!(due_rewards(&context(&program, &fired), &Event::Completion).is_empty());
    }

    #[test]
    fn one_invoice_can_cross_several_thresholds_for_either_side() {
        let program = program(json!({"name": "Tiers", "currency": "USD", "rewards": [
            {"recipient": "referrer", "trigger": "paid_threshold", "threshold_amount": 1000, "kind": "cash", "amount": 100},
            {"recipient": "referrer", "trigger": "paid_threshold", "threshold_amount": 5000, "kind": "cash", "amount": 700},
            {"recipient": "referee", "trigger": "paid_threshold", "threshold_amount": 2000, "kind": "points", "amount": 25},
            {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "amount": 50},
            {"recipient": "referee", "trigger": "each_invoice", "kind": "points", "percent": 1.0}
        ]}));
        let relation = relation();
        let ctx = context(&program, &relation);
        let dues = due_rewards(&ctx, &invoice(6000, 0));
        let got: Vec<(&str, i64, &str)> = dues
            .iter()
            .map(|d| (d.source.as_str(), d.amount, d.currency.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("referrer.paid_threshold.1000", 100, "USD"),
                ("referrer.paid_threshold.5000", 700, "USD"),
                ("referee.paid_threshold.2000.points", 25, "POINTS"),
                ("referrer.each_invoice.inv-1", 50, "USD"),
                ("referee.each_invoice.points.inv-1", 60, "POINTS"),
            ]
        );
        let sources: std::collections::HashSet<_> = dues.iter().map(|d| &d.source).collect();
        assert_eq!(sources.len(), dues.len(), "every due reward has its own id");
        let small = due_rewards(&ctx, &invoice(40, 0));
        assert_eq!(
            small.iter().map(|d| d.amount).collect::<Vec<_>>(),
            [50],
            "1 % of 40 rounds to 0: nothing"
        );
    }

    #[test]
    fn verified_and_signup_rules_fire_once() {
        let program = program(json!({"name": "Once", "currency": "USD", "rewards": [
            {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 100},
            {"recipient": "referrer", "trigger": "verified", "kind": "cash", "amount": 200}
        ]}));
        let mut relation = relation();
        relation.fired_rules = vec!["referee.signup".into(), "referrer.verified".into()];
        let ctx = Context {
            verified: true,
            ..context(&program, &relation)
        };
        assert!(due_rewards(&ctx, &Event::Signup).is_empty());
        assert!(due_rewards(&ctx, &Event::Verified).is_empty());
        assert!(
            due_rewards(&ctx, &Event::Completion).is_empty(),
            "nothing outstanding"
        );
        assert!(
            due_rewards(&ctx, &invoice(100, 0)).is_empty(),
            "no invoice rules"
        );
    }

    #[test]
    fn statuses_follow_holds_and_delivery() {
        assert_eq!(
            status_for(&[], Delivery::BillingCredit),
            RewardStatus::Pending
        );
        assert_eq!(status_for(&[], Delivery::Payout), RewardStatus::Credited);
        assert_eq!(
            status_for(&[Hold::Verification], Delivery::Payout),
            RewardStatus::Held
        );
    }
}
