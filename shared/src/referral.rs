//! Referral relations: who referred whom, in which program, through which code.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::clock::rfc3339;
use crate::ledger::RewardStatus;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferralStatus {
    /// Signed up through the referrer.
    Signup,
    /// Passed the identity check.
    Verified,
    /// Paid at least one invoice.
    Converted,
    /// Completed: the referrer's reward was granted (by the rules or by an admin).
    Completed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvitationMethod {
    /// Entered a referral code at sign-up.
    Code,
    /// Followed a referral link.
    Link,
    /// Was invited by email.
    Email,
}

/// A referral relation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Referral {
    pub id: String,
    pub tenant: String,
    pub program_id: String,
    pub code: Option<String>,
    /// The code's own sign-up amounts when the relation began (seed 002), if it had any.
    pub code_referrer_amount: Option<i64>,
    pub code_referee_amount: Option<i64>,
    pub referrer_user_id: String,
    /// The referrer's primary code: the key of the promoter item their balances live in.
    pub referrer_promoter_code: String,
    pub referred_user_id: String,
    pub referred_email: Option<String>,
    pub country: Option<String>,
    pub invitation_method: InvitationMethod,
    pub status: ReferralStatus,
    /// The referred user's paid total, minor units.
    pub paid_total: i64,
    /// Cash the referrer earned through this relation, minor units.
    pub referrer_earned: i64,
    /// The referrer's commission rate on this relation's invoices (percent), if any.
    pub commission_rate: Option<f64>,
    /// Status of the latest referrer reward of this relation.
    pub commission_status: Option<RewardStatus>,
    /// The referred user passed the identity check.
    pub verified: bool,
    /// When an admin completed the relation (seed 004's `redeemed_date`).
    #[serde(with = "rfc3339::option")]
    pub redeemed_at: Option<OffsetDateTime>,
    /// Incremented by every change; updates are conditional on it.
    pub version: u64,
    /// Keys of the reward rules that have fired for this relation ([`crate::program::RewardRule::key`]).
    pub fired_rules: Vec<String>,
    #[serde(with = "rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "rfc3339")]
    pub updated: OffsetDateTime,
}

// ---- Sign-ups, events and completion: domain operations over the store ports ----

use crate::code::{self, CodeItem};
use crate::error::{Error, Result};
use crate::ledger::Reward;
use crate::program::{self, CodeTerms, Program, ProgramStatus, Recipient, RewardKind, Trigger};
use crate::promoter;
use crate::rules::{self, Context, Due, Event, Hold};
use crate::store::{
    CodeCounts, CodeStore, Committed, EmailOwner, EventRecord, InvitationStore, Plan, ProgramStore,
    PromoterStore, Qualification, ReferralStore, RelationWrite,
};

/// How often an operation re-reads and decides again when a concurrent writer got there first.
const ATTEMPTS: usize = 4;

/// Body of `POST /v1/referrals`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignUp {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub referrer_user_id: Option<String>,
    pub referred_user_id: String,
    #[serde(default)]
    pub referred_email: Option<String>,
    #[serde(default)]
    pub program_id: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub invitation_method: Option<InvitationMethod>,
}

/// A relation and the rewards an operation on it produced.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub referral: Referral,
    pub rewards: Vec<Reward>,
    /// Held rewards of the referrer this sign-up released (it brought them to `min_referrals`).
    pub released: Vec<Reward>,
}

/// A user id from a body: it ends up in keys.
pub fn user_id(field: &str, value: &str) -> Result<String> {
    let value = value.trim();
    if value.is_empty() || value.len() > 128 || value.chars().any(|c| c == '#' || c.is_control()) {
        return Err(Error::invalid(
            field,
            "must be 1-128 characters without '#'",
        ));
    }
    Ok(value.to_owned())
}

fn email(field: &str, value: &str) -> Result<String> {
    crate::invitation::normalize_email(value)
        .ok_or_else(|| Error::invalid(field, "must be an email address"))
}

fn country(value: &str) -> Result<String> {
    let value = value.trim().to_ascii_uppercase();
    if !program::is_country_code(&value) {
        return Err(Error::invalid(
            "country",
            "must be an ISO 3166-1 alpha-2 code such as BR",
        ));
    }
    Ok(value)
}

/// Event ids end up in keys and reward ids: 1-128 of letters, digits, `.`, `_`, `:`, `-`.
fn event_id(value: &str) -> Result<String> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if !ok {
        return Err(Error::invalid(
            "event_id",
            "must be 1-128 letters, digits, '.', '_', ':' or '-'",
        ));
    }
    Ok(value.to_owned())
}

/// The referrer a sign-up names, and through which code.
struct Referrer {
    /// Found through an email invitation rather than a code or user id.
    invited: bool,
    user_id: String,
    promoter_code: String,
    code: String,
    terms: CodeTerms,
    /// An extra code's own limit and program.
    limit: Option<u32>,
    program_id: Option<String>,
    is_active: bool,
    commission_rate: Option<f64>,
}

async fn resolve_referrer(
    store: &(impl CodeStore + PromoterStore + InvitationStore),
    tenant: &str,
    input: &SignUp,
) -> Result<Referrer> {
    if let Some(code) = &input.code {
        let unknown = || Error::invalid("code", "no such referral code");
        let canonical = code::normalize(code).ok_or_else(unknown)?;
        let referrer = match store.get_code(&canonical).await?.ok_or_else(unknown)? {
            CodeItem::Promoter(p) if p.tenant == tenant => Referrer {
                invited: false,
                user_id: p.user_id,
                promoter_code: p.referral_code.clone(),
                code: p.referral_code,
                terms: CodeTerms::default(),
                limit: None,
                program_id: None,
                is_active: p.is_active,
                commission_rate: p.commission_rate,
            },
            CodeItem::Extra(c) if c.tenant == tenant => Referrer {
                invited: false,
                user_id: c.user_id,
                promoter_code: c.promoter_code,
                code: c.code,
                terms: CodeTerms {
                    referrer_amount: c.referrer_amount,
                    referee_amount: c.referee_amount,
                },
                limit: c.max_referrals,
                program_id: Some(c.program_id),
                is_active: c.is_active,
                commission_rate: None,
            },
            _ => return Err(unknown()),
        };
        if let Some(named) = &input.referrer_user_id
            && named.trim() != referrer.user_id
        {
            return Err(Error::MultipleParameterMismatch(
                "code and referrer_user_id name different referrers".into(),
            ));
        }
        return Ok(referrer);
    }
    let (user, invited) = match (&input.referrer_user_id, &input.referred_email) {
        (Some(user), _) => (user_id("referrer_user_id", user)?, false),
        // No code and no referrer: whoever invited this email (seed 000).
        (None, Some(email)) => {
            let email = crate::invitation::normalize_email(email)
                .ok_or_else(|| Error::invalid("referred_email", "must be an email address"))?;
            let invitation = store
                .invitations(tenant, std::slice::from_ref(&email))
                .await?;
            let inviter = invitation.into_iter().next().ok_or_else(|| {
                Error::invalid(
                    "code",
                    "no code or referrer_user_id, and nobody invited this email",
                )
            })?;
            (inviter.inviter_user_id, true)
        }
        (None, None) => {
            return Err(Error::invalid(
                "code",
                "a code, a referrer_user_id or an invited referred_email is required",
            ));
        }
    };
    let p = promoter::get_or_create(store, tenant, &user).await?;
    Ok(Referrer {
        invited,
        user_id: p.user_id,
        promoter_code: p.referral_code.clone(),
        code: p.referral_code,
        terms: CodeTerms::default(),
        limit: None,
        program_id: None,
        is_active: p.is_active,
        commission_rate: p.commission_rate,
    })
}

/// The program a sign-up joins: the extra code's, else the one named, else the tenant's only
/// active program.
fn choose_program(
    programs: Vec<Program>,
    from_code: Option<&str>,
    named: Option<&str>,
) -> Result<Program> {
    if let (Some(code_program), Some(named)) = (from_code, named)
        && code_program != named
    {
        return Err(Error::invalid(
            "program_id",
            "the code belongs to another program",
        ));
    }
    if let Some(id) = from_code.or(named) {
        return programs
            .into_iter()
            .find(|p| p.id == id)
            .ok_or_else(|| Error::invalid("program_id", "no such program in this tenant"));
    }
    let mut active: Vec<Program> = programs
        .into_iter()
        .filter(|p| p.status == ProgramStatus::Active)
        .collect();
    match active.len() {
        0 => Err(Error::ProgramInactive(
            "the tenant has no active program".into(),
        )),
        1 => Ok(active.remove(0)),
        _ => Err(Error::invalid(
            "program_id",
            "the tenant has several active programs: name one",
        )),
    }
}

fn ensure_open(program: &Program, now: OffsetDateTime) -> Result<()> {
    if program.status != ProgramStatus::Active {
        return Err(Error::ProgramInactive(format!(
            "program {} is {}",
            program.id,
            program.status.as_str()
        )));
    }
    if program.expires_at.is_some_and(|at| at <= now) {
        return Err(Error::ProgramExpired(format!(
            "program {} has expired",
            program.id
        )));
    }
    Ok(())
}

/// The program's referrer commission on invoices, for display on the relation.
fn referrer_commission(program: &Program) -> Option<f64> {
    program
        .rewards
        .iter()
        .find(|r| r.recipient == Recipient::Referrer && r.trigger == Trigger::EachInvoice)
        .and_then(|r| r.percent)
}

/// Turns due rewards into ledger entries, records them on the relation and in the plan.
fn book(
    dues: Vec<Due>,
    program: &Program,
    relation: &mut Referral,
    referee_promoter: Option<&str>,
    plan: &mut Plan,
    now: OffsetDateTime,
) {
    for due in dues {
        let reward = Reward {
            id: crate::keys::reward_id(&relation.id, &due.source),
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
fn release(
    candidates: Vec<Reward>,
    lifted: impl Fn(&Reward) -> Vec<Hold>,
    promoters: (Option<&str>, Option<&str>),
    plan: &mut Plan,
    now: OffsetDateTime,
) {
    let (referrer_promoter, referee_promoter) = promoters;
    for before in candidates {
        let lift = lifted(&before);
        if before.status != crate::ledger::RewardStatus::Held
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

/// Registers a sign-up through a referrer: the relation, its guards and counters and any
/// `signup` rewards, in one transaction; exact under concurrency (the code's limit, one relation
/// per referred user and program).
pub async fn register_referral(
    store: &(impl ReferralStore + PromoterStore + CodeStore + ProgramStore + InvitationStore),
    tenant: &str,
    input: &SignUp,
) -> Result<Outcome> {
    let referred = user_id("referred_user_id", &input.referred_user_id)?;
    let referred_email = input
        .referred_email
        .as_deref()
        .map(|e| email("referred_email", e))
        .transpose()?;
    let country = input.country.as_deref().map(country).transpose()?;
    for _ in 0..ATTEMPTS {
        let (referrer, programs, referee_promoter) = tokio::join!(
            resolve_referrer(store, tenant, input),
            promoter::all_programs(store, tenant),
            store.promoter_code_of(tenant, &referred),
        );
        let (referrer, programs, referee_promoter) = (referrer?, programs?, referee_promoter?);
        let program = choose_program(
            programs,
            referrer.program_id.as_deref(),
            input.program_id.as_deref(),
        )?;
        let now = crate::clock::now();
        if referrer.user_id == referred {
            return Err(Error::SelfReferral("a user cannot refer themselves".into()));
        }
        ensure_open(&program, now)?;
        if !referrer.is_active {
            return Err(Error::CodeInactive(format!(
                "the code {} is inactive",
                referrer.code
            )));
        }
        let qualifies_now = rules::qualifies(&program, false);
        let seen = if program.min_referrals > 0 {
            store
                .qualified_referrals(tenant, &referrer.user_id, &program.id)
                .await?
        } else {
            0
        };
        let min = u64::from(program.min_referrals);
        let referrer_qualified = min == 0 || seen + u64::from(qualifies_now) >= min;

        let mut relation = Referral {
            id: crate::id::new_id(),
            tenant: tenant.to_owned(),
            program_id: program.id.clone(),
            code: Some(referrer.code.clone()),
            code_referrer_amount: referrer.terms.referrer_amount,
            code_referee_amount: referrer.terms.referee_amount,
            referrer_user_id: referrer.user_id.clone(),
            referrer_promoter_code: referrer.promoter_code.clone(),
            referred_user_id: referred.clone(),
            referred_email: referred_email.clone(),
            country: country.clone(),
            invitation_method: input.invitation_method.unwrap_or(if referrer.invited {
                InvitationMethod::Email
            } else if input.code.is_some() {
                InvitationMethod::Code
            } else {
                InvitationMethod::Link
            }),
            status: ReferralStatus::Signup,
            paid_total: 0,
            referrer_earned: 0,
            commission_rate: referrer
                .commission_rate
                .or_else(|| referrer_commission(&program)),
            commission_status: None,
            verified: false,
            redeemed_at: None,
            version: 1,
            fired_rules: Vec::new(),
            created: now,
            updated: now,
        };
        let limit = referrer.limit.unwrap_or(program.max_referrals);
        let mut plan = Plan {
            codes: vec![CodeCounts {
                code: referrer.code.clone(),
                tenant: tenant.to_owned(),
                referrals: 1,
                limit: (limit > 0).then_some(limit),
                ..CodeCounts::default()
            }],
            ..Plan::default()
        };
        let context = Context {
            program: &program,
            relation: &relation.clone(),
            verified: false,
            referrer_qualified,
            now,
        };
        let dues = rules::due_rewards(&context, &Event::Signup);
        book(
            dues,
            &program,
            &mut relation,
            referee_promoter.as_deref(),
            &mut plan,
            now,
        );
        if min > 0 && qualifies_now {
            plan.qualified = Some(Qualification {
                tenant: tenant.to_owned(),
                referrer: referrer.user_id.clone(),
                program_id: program.id.clone(),
                seen,
            });
        }
        plan.relations.push(RelationWrite::New(relation.clone()));
        plan.email_owner = referred_email.clone().map(|email| EmailOwner {
            tenant: tenant.to_owned(),
            email,
            user_id: referred.clone(),
        });
        if min > 0 && qualifies_now && seen < min && seen + 1 >= min {
            let held = store
                .held_referrer_rewards(tenant, &referrer.user_id, &program.id)
                .await?;
            let lift = |_: &Reward| vec![Hold::MinReferrals];
            release(
                held,
                lift,
                (Some(&referrer.promoter_code), None),
                &mut plan,
                now,
            );
        }
        match store.apply(&plan).await? {
            Committed::Done => {
                return Ok(Outcome {
                    referral: relation,
                    rewards: plan.rewards,
                    released: plan.releases,
                });
            }
            Committed::RelationTaken => {
                return Err(Error::AlreadyReferred(format!(
                    "user {referred} is already referred in program {}",
                    program.id
                )));
            }
            Committed::CodeRefused => {
                return Err(match store.get_code(&referrer.code).await? {
                    Some(item) if !item.is_active() => {
                        Error::CodeInactive(format!("the code {} is inactive", referrer.code))
                    }
                    _ => Error::MaxReferralsReached(format!(
                        "the code {} has reached its {limit} referrals",
                        referrer.code
                    )),
                });
            }
            Committed::EventSeen | Committed::Stale => continue,
        }
    }
    Err(Error::Conflict(
        "the referrer's data is changing; retry".into(),
    ))
}

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
    if !(0..=program::MAX_AMOUNT).contains(&figure) {
        let field = if matches!(amount, Paid::Invoice(_)) {
            "amount_paid"
        } else {
            "total_amount_paid"
        };
        return Err(Error::invalid(
            field,
            format!("must be between 0 and {}", program::MAX_AMOUNT),
        ));
    }
    let currency = invoice.currency.trim().to_ascii_uppercase();
    if currency.len() != 3 || iso_currency::Currency::from_code(&currency).is_none() {
        return Err(Error::invalid(
            "currency",
            "must be an ISO 4217 code such as USD",
        ));
    }
    for _ in 0..ATTEMPTS {
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
    }
    Err(Error::Conflict("the relation is changing; retry".into()))
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
    for _ in 0..ATTEMPTS {
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
    }
    Err(Error::Conflict("the relation is changing; retry".into()))
}

/// What an admin completion awarded the referrer (seed 004's `award`).
#[derive(Clone, Debug, Serialize)]
pub struct Award {
    pub amount: i64,
    pub currency: String,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Completion {
    pub referral: Referral,
    /// The referrer's award; `null` when no fixed referrer reward was outstanding.
    pub award: Option<Award>,
    pub rewards: Vec<Reward>,
}

/// A relation of the tenant by id; 404 otherwise.
pub async fn get_referral(store: &impl ReferralStore, tenant: &str, id: &str) -> Result<Referral> {
    let not_found = || Error::NotFound(format!("no referral {id}"));
    if !crate::id::is_id(id) {
        return Err(not_found());
    }
    store
        .relation_by_id(tenant, id)
        .await?
        .ok_or_else(not_found)
}

/// Seed 004: an admin rewards the referrer now, without the qualifying transaction; the second
/// time is 409 `referral_relation_already_redeemed`.
pub async fn complete_referral(
    store: &(impl ReferralStore + ProgramStore),
    tenant: &str,
    id: &str,
) -> Result<Completion> {
    for _ in 0..ATTEMPTS {
        let relation = get_referral(store, tenant, id).await?;
        if relation.redeemed_at.is_some() {
            return Err(Error::ReferralRelationAlreadyRedeemed(format!(
                "referral {id} was completed already"
            )));
        }
        let (program, referee_promoter) = tokio::join!(
            store.get_program(tenant, &relation.program_id),
            store.promoter_code_of(tenant, &relation.referred_user_id),
        );
        let program = program?.ok_or_else(|| Error::internal("relation without program"))?;
        let referee_promoter = referee_promoter?;
        let now = crate::clock::now();
        let context = Context {
            program: &program,
            relation: &relation,
            verified: relation.verified,
            referrer_qualified: true,
            now,
        };
        let dues = rules::due_rewards(&context, &Event::Completion);
        let mut next = relation.clone();
        next.status = ReferralStatus::Completed;
        next.redeemed_at = Some(now);
        next.version += 1;
        next.updated = now;
        let mut plan = Plan::default();
        book(
            dues,
            &program,
            &mut next,
            referee_promoter.as_deref(),
            &mut plan,
            now,
        );
        plan.relations.push(RelationWrite::Replace(next.clone()));
        match store.apply(&plan).await? {
            Committed::Done => {
                let award = plan
                    .rewards
                    .iter()
                    .filter(|r| r.recipient == Recipient::Referrer)
                    .fold(None::<Award>, |award, r| match award {
                        Some(mut a) if a.currency == r.currency => {
                            a.amount += r.amount;
                            Some(a)
                        }
                        Some(a) => Some(a),
                        None => Some(Award {
                            amount: r.amount,
                            currency: r.currency.clone(),
                            reason: "Referral completed by an administrator".into(),
                        }),
                    });
                return Ok(Completion {
                    referral: next,
                    award,
                    rewards: plan.rewards,
                });
            }
            Committed::Stale => continue,
            other => {
                return Err(Error::internal(format!(
                    "a completion plan was refused: {other:?}"
                )));
            }
        }
    }
    Err(Error::Conflict("the relation is changing; retry".into()))
}

/// Relations in which `user` was referred or referred someone, newest first. The user may be
/// named by user id, referral code or email (seed 004).
pub async fn referrals_of_user(
    store: &(impl ReferralStore + PromoterStore + CodeStore + InvitationStore),
    tenant: &str,
    user: &str,
) -> Result<Vec<Referral>> {
    let Some(user) = named_user(store, tenant, user).await? else {
        return Ok(Vec::new());
    };
    let (referred, referring) = tokio::join!(
        store.relations_of_referred(tenant, &user),
        store.referrals_of(tenant, &user),
    );
    let mut all = referred?;
    all.extend(referring?);
    all.sort_by(|a, b| b.id.cmp(&a.id));
    Ok(all)
}

/// A user named by id, referral code or email (seed 004); several identifiers must agree.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRef {
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub referral_code: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

impl UserRef {
    /// The user these identifiers name; `None` when one of them names nobody. Identifiers
    /// naming different users: 400 `multiple_parameter_mismatch`.
    async fn resolve(
        &self,
        store: &(impl CodeStore + InvitationStore),
        tenant: &str,
    ) -> Result<Option<String>> {
        let mut named: Vec<String> = Vec::new();
        if let Some(id) = &self.user_id {
            named.push(user_id("user_id", id)?);
        }
        if let Some(code) = &self.referral_code {
            match code_owner(store, tenant, code).await? {
                Some(owner) => named.push(owner),
                None => return Ok(None),
            }
        }
        if let Some(address) = &self.email {
            match store.email_owner(tenant, &email("email", address)?).await? {
                Some(owner) => named.push(owner),
                None => return Ok(None),
            }
        }
        named.dedup();
        match named.len() {
            0 => Err(Error::invalid(
                "user",
                "name the user by user_id, referral_code or email",
            )),
            1 => Ok(named.pop()),
            _ => Err(Error::MultipleParameterMismatch(
                "the identifiers name different users".into(),
            )),
        }
    }
}

/// The owner of one of the tenant's codes.
async fn code_owner(store: &impl CodeStore, tenant: &str, code: &str) -> Result<Option<String>> {
    let Some(code) = code::normalize(code) else {
        return Ok(None);
    };
    Ok(match store.get_code(&code).await? {
        Some(CodeItem::Promoter(p)) if p.tenant == tenant => Some(p.user_id),
        Some(CodeItem::Extra(c)) if c.tenant == tenant => Some(c.user_id),
        _ => None,
    })
}

/// A user named by one identifier of unknown kind (`?user=`): an email if it has an `@`, else
/// the owner of the tenant's code of that name if there is one, else a user id.
async fn named_user(
    store: &(impl CodeStore + InvitationStore),
    tenant: &str,
    text: &str,
) -> Result<Option<String>> {
    if text.contains('@') {
        return store.email_owner(tenant, &email("user", text)?).await;
    }
    if let Some(owner) = code_owner(store, tenant, text).await? {
        return Ok(Some(owner));
    }
    user_id("user", text).map(Some)
}

/// Body of `POST /v1/referrals/complete` (seed 004's form).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteByUsers {
    pub program_id: String,
    pub referring_user: UserRef,
    pub referred_user: UserRef,
}

/// Seed 004: completes the relation between two users named by any of their identifiers.
pub async fn complete_between(
    store: &(impl ReferralStore + ProgramStore + CodeStore + InvitationStore),
    tenant: &str,
    input: &CompleteByUsers,
) -> Result<Completion> {
    let not_found = || {
        Error::ReferralRelationNotFound(
            "no referral relation between these users in this program".into(),
        )
    };
    let (referring, referred) = tokio::join!(
        input.referring_user.resolve(store, tenant),
        input.referred_user.resolve(store, tenant),
    );
    let (Some(referring), Some(referred)) = (referring?, referred?) else {
        return Err(not_found());
    };
    let relation = store
        .relations_of_referred(tenant, &referred)
        .await?
        .into_iter()
        .find(|r| r.program_id == input.program_id && r.referrer_user_id == referring)
        .ok_or_else(not_found)?;
    complete_referral(store, tenant, &relation.id).await
}
