//! Events from the tenant's backend: invoices (seed 000) and identity checks (seed 002).
//! Idempotent on `event_id`: the event's record is written with `attribute_not_exists` in the
//! event's own transaction; a replay with the same payload answers what the record holds, with
//! another payload it is refused (409 `idempotency_key_reused`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::ledger::Reward;
use crate::domain::program::{Program, Recipient, RewardKind, all_programs};
use crate::domain::rules::{self, Context, Event};
use crate::error::{Error, Result};
use crate::store::{
    CodeStore, Committed, EventRecord, Plan, ProgramStore, ReferralStore, RelationWrite,
};

use super::booking::{Lift, book, finish_release_jobs, fit_releases, job, releases, same_job};
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

/// What an invoice did in one relation of the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceEffect {
    /// Added to the paid total; the rules ran.
    Counted,
    /// Added to the paid total, but the program is paused, archived or expired: no rewards now
    /// (a threshold it reached pays on the first invoice once the program is open again).
    ProgramClosed,
    /// The program is in another currency: nothing counted.
    CurrencyMismatch,
    /// A cumulative total not above the one recorded: nothing changed.
    Unchanged,
}

/// One relation in an invoice's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InvoiceRelation {
    pub referral_id: String,
    pub program_id: String,
    pub outcome: InvoiceEffect,
    /// The referred user's paid total in the relation after the invoice.
    pub paid_total: i64,
}

/// The answer to an invoice: the referrer credit it unlocked, every reward it produced, and
/// what it did in each of the user's relations.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InvoiceOutcome {
    /// Cash for referrers, in the invoice's currency.
    pub acquired_credit: i64,
    pub rewards: Vec<Reward>,
    #[serde(default)]
    pub relations: Vec<InvoiceRelation>,
}

enum Paid {
    Invoice(i64),
    Total(i64),
}

/// A digest of an event's payload, in its canonical form (after validation and
/// normalisation): the same payload sent twice has the same fingerprint.
pub(super) fn fingerprint(parts: &[&str]) -> String {
    let digest = Sha256::digest(parts.join("\u{1f}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The relations in which `user` was referred and the tenant's programs, read in parallel
/// (strongly consistent: the event decides on them).
pub(super) async fn relations_of(
    store: &(impl ReferralStore + ProgramStore),
    tenant: &str,
    user: &str,
) -> Result<(Vec<Referral>, Vec<Program>)> {
    let (relations, programs) = tokio::join!(
        store.relations_of_referred(tenant, user),
        all_programs(store, tenant),
    );
    Ok((relations?, programs?))
}

/// Each relation with its program (a relation of a program that no longer exists is skipped).
pub(super) fn with_programs(
    relations: Vec<Referral>,
    programs: &[Program],
) -> Vec<(Referral, &Program)> {
    relations
        .into_iter()
        .filter_map(|r| {
            let program = programs.iter().find(|p| p.id == r.program_id)?;
            Some((r, program))
        })
        .collect()
}

/// What the referrer of a relation is, for the rules: their qualified count in the program
/// (when it has `min_referrals`) and their own commission rate (when it pays a percent of
/// invoices to referrers).
struct ReferrerFacts {
    seen: u64,
    rate: Option<f64>,
    spent: crate::store::Spent,
    /// What holds the referrer's rewards (suspension, a shared payout address).
    holds: Vec<crate::domain::ledger::Hold>,
}

async fn referrer_facts(
    store: &(impl ReferralStore + CodeStore),
    relation: &Referral,
    program: &Program,
    rate_matters: bool,
) -> Result<ReferrerFacts> {
    let (seen, promoter, spent) = tokio::join!(
        async {
            if program.min_referrals > 0 {
                store
                    .qualified_referrals(&relation.tenant, &relation.referrer_user_id, &program.id)
                    .await
            } else {
                Ok(0)
            }
        },
        // The referrer's item: their own commission rate, and whether they are suspended.
        store.get_code(&relation.referrer_promoter_code),
        super::booking::spent(
            store,
            program,
            &relation.referrer_user_id,
            crate::clock::now()
        ),
    );
    let promoter = match promoter? {
        Some(crate::domain::promoter::CodeItem::Promoter(p)) if p.tenant == relation.tenant => {
            Some(p)
        }
        _ => None,
    };
    let holds = super::booking::referrer_holds(store, program, promoter.as_ref()).await?;
    Ok(ReferrerFacts {
        seen: seen?,
        rate: promoter
            .and_then(|p| p.commission_rate)
            .filter(|_| rate_matters),
        spent: spent?,
        holds,
    })
}

/// Adds an invoice to the referred user's paid total in each of their relations in the
/// invoice's currency and fires the `paid_threshold` and `each_invoice` rules. Reads: the
/// relations and the programs in parallel, then in parallel what the rules need of each
/// referrer (qualified count, own commission rate); then one `TransactWriteItems`.
pub async fn record_invoice(
    store: &(impl ReferralStore + ProgramStore + CodeStore),
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
    let (field, figure) = match amount {
        Paid::Invoice(a) => ("amount_paid", a),
        Paid::Total(t) => ("total_amount_paid", t),
    };
    if !(0..=crate::domain::money::MAX_AMOUNT).contains(&figure) {
        return Err(Error::invalid(
            field,
            format!("must be between 0 and {}", crate::domain::money::MAX_AMOUNT),
        ));
    }
    let currency = crate::domain::money::money_currency("currency", &invoice.currency)?;
    let print = fingerprint(&[
        "invoice",
        &event,
        &user,
        field,
        &figure.to_string(),
        &currency,
    ]);
    let mut backoff = Backoff::new();
    loop {
        let (relations, programs) = relations_of(store, tenant, &user).await?;
        let relations = with_programs(relations, &programs);
        let facts = futures::future::join_all(relations.iter().map(|(relation, program)| {
            let rate_matters = program.currency == currency && program.referrer_percent().is_some();
            referrer_facts(store, relation, program, rate_matters)
        }))
        .await;
        let now = crate::clock::now();
        let mut plan = Plan::default();
        let mut effects = Vec::new();
        // A user is referred once per program: each relation is its own replace in the one
        // transaction; the codes' counters add up.
        for ((relation, program), facts) in relations.into_iter().zip(facts) {
            let facts = facts?;
            let previous_total = relation.paid_total;
            let new_total = match amount {
                Paid::Invoice(a) => previous_total.saturating_add(a),
                Paid::Total(t) => previous_total.max(t),
            };
            let outcome = if program.currency != currency {
                InvoiceEffect::CurrencyMismatch
            } else if new_total == previous_total {
                InvoiceEffect::Unchanged
            } else if !program.is_open(now) {
                InvoiceEffect::ProgramClosed
            } else {
                InvoiceEffect::Counted
            };
            effects.push(InvoiceRelation {
                referral_id: relation.id.clone(),
                program_id: program.id.clone(),
                outcome,
                paid_total: if matches!(
                    outcome,
                    InvoiceEffect::Counted | InvoiceEffect::ProgramClosed
                ) {
                    new_total
                } else {
                    previous_total
                },
            });
            if matches!(
                outcome,
                InvoiceEffect::CurrencyMismatch | InvoiceEffect::Unchanged
            ) {
                continue;
            }
            let min = u64::from(program.min_referrals);
            let context = Context {
                program,
                relation: &relation,
                verified: relation.verified,
                referrer_qualified: min == 0 || facts.seen >= min,
                referrer_rate: facts.rate,
                referrer_holds: &facts.holds,
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
            // The rate this invoice paid the referrer at, shown on the relation: their own, else
            // the program's.
            if let Some(percent) = program.referrer_percent() {
                next.commission_rate = facts.rate.or(Some(percent));
            }
            if matches!(
                next.status,
                ReferralStatus::Signup | ReferralStatus::Verified
            ) {
                next.status = ReferralStatus::Converted;
                crate::domain::stats::count(
                    &mut plan,
                    tenant,
                    &relation.referrer_user_id,
                    &program.id,
                    crate::domain::stats::Counted::Converted,
                    now,
                );
            }
            book(
                dues,
                program,
                &mut next,
                facts.seen,
                facts.spent,
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
            relations: effects,
        };
        if let Some(answer) =
            commit_event(store, plan, tenant, "invoice", &event, &print, outcome).await?
        {
            return Ok(answer);
        }
        backoff.wait().await?;
    }
}

/// Applies an event's plan with the event's record holding `answer`. `Some(answer)` when it was
/// written; for a replay, `Some` of the answer the record holds (409 when the payload differs);
/// `None` when something read has changed (decide again).
pub(super) async fn commit_event<T: Serialize + serde::de::DeserializeOwned>(
    store: &impl ReferralStore,
    mut plan: Plan,
    tenant: &str,
    kind: &'static str,
    event: &str,
    print: &str,
    answer: T,
) -> Result<Option<T>> {
    plan.event = Some(EventRecord {
        tenant: tenant.to_owned(),
        kind,
        event_id: event.to_owned(),
        fingerprint: print.to_owned(),
        response: serde_json::to_string(&answer).map_err(Error::internal)?,
    });
    match store.apply(&plan).await? {
        Committed::Done => Ok(Some(answer)),
        // A replay: the event's record holds the first answer.
        Committed::EventSeen => {
            let stored = store
                .recorded_event(tenant, kind, event)
                .await?
                .ok_or_else(|| Error::internal(format!("{kind} event {event} has no record")))?;
            if stored
                .fingerprint
                .as_deref()
                .is_some_and(|seen| seen != print)
            {
                return Err(Error::IdempotencyKeyReused(format!(
                    "event_id {event} was used before with another payload"
                )));
            }
            serde_json::from_str(&stored.response)
                .map(Some)
                .map_err(Error::internal)
        }
        Committed::Stale => Ok(None),
        other => Err(Error::internal(format!(
            "a {kind} plan was refused: {other:?}"
        ))),
    }
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

/// Records an identity-check outcome for the referred user in each of their relations: the
/// attempt or success counts once on each code the user came through; the first success
/// verifies each relation, fires `verified` rules, releases the relation's rewards held for the
/// check and, when it brings a referrer to `min_referrals`, their rewards held for it.
/// Idempotent on `event_id`.
pub async fn record_verification(
    store: &(impl ReferralStore + ProgramStore + CodeStore),
    tenant: &str,
    check: &Verification,
) -> Result<VerificationResult> {
    let event = event_id(&check.event_id)?;
    let user = user_id("user_id", &check.user_id)?;
    let outcome = match check.outcome {
        VerificationOutcome::Attempted => "attempted",
        VerificationOutcome::Succeeded => "succeeded",
        VerificationOutcome::Failed => "failed",
    };
    let print = fingerprint(&["verification", &event, &user, outcome]);
    let mut backoff = Backoff::new();
    loop {
        let (relations, programs) = relations_of(store, tenant, &user).await?;
        let relations = with_programs(relations, &programs);
        let now = crate::clock::now();
        let mut plan = Plan::default();
        let codes: BTreeSet<&str> = relations
            .iter()
            .filter_map(|(r, _)| r.code.as_deref())
            .collect();
        for code in codes {
            let counts = plan.code(code, tenant);
            match check.outcome {
                VerificationOutcome::Attempted => counts.verification_attempts = 1,
                VerificationOutcome::Succeeded => counts.verification_successes = 1,
                VerificationOutcome::Failed => {}
            }
        }
        // What the first success needs of each relation, read in parallel: the referrer's
        // qualified count and the relation's rewards.
        let first_successes: Vec<&(Referral, &Program)> = relations
            .iter()
            .filter(|(r, _)| check.outcome == VerificationOutcome::Succeeded && !r.verified)
            .collect();
        let reads = futures::future::join_all(first_successes.iter().map(
            |(relation, program)| async move {
                let min = u64::from(program.min_referrals);
                let seen = if min > 0 {
                    store
                        .qualified_referrals(tenant, &relation.referrer_user_id, &program.id)
                        .await?
                } else {
                    0
                };
                let reaches_min =
                    program.requires_verification && min > 0 && seen < min && seen + 1 >= min;
                let (candidates, spent, referrer) = tokio::join!(
                    store.relation_rewards(relation),
                    super::booking::spent(store, program, &relation.referrer_user_id, now),
                    store.get_code(&relation.referrer_promoter_code),
                );
                let referrer = match referrer? {
                    Some(crate::domain::promoter::CodeItem::Promoter(p)) => Some(p),
                    _ => None,
                };
                let holds =
                    super::booking::referrer_holds(store, program, referrer.as_ref()).await?;
                Ok::<_, Error>((seen, reaches_min, candidates?, spent?, holds))
            },
        ))
        .await;
        let mut jobs = Vec::new();
        for ((relation, program), read) in first_successes.into_iter().zip(reads) {
            let (seen, reaches_min, candidates, spent, referrer_holds) = read?;
            let min = u64::from(program.min_referrals);
            let newly_qualifies = program.requires_verification && min > 0;
            let mut next = relation.clone();
            next.verified = true;
            crate::domain::stats::count(
                &mut plan,
                tenant,
                &relation.referrer_user_id,
                &program.id,
                crate::domain::stats::Counted::Verified,
                now,
            );
            next.version += 1;
            next.updated = now;
            if next.status == ReferralStatus::Signup {
                next.status = ReferralStatus::Verified;
            }
            let context = Context {
                program,
                relation,
                verified: true,
                referrer_qualified: min == 0 || seen + u64::from(newly_qualifies) >= min,
                referrer_rate: None,
                referrer_holds: &referrer_holds,
                now,
            };
            let dues = rules::due_rewards(&context, &Event::Verified);
            book(dues, program, &mut next, seen, spent, &mut plan, now);
            if newly_qualifies {
                plan.stats(tenant, &relation.referrer_user_id, &program.id, seen, true);
            }
            plan.relations.push(RelationWrite::Replace(next));
            // This relation's rewards wait for the check no more; if it brings the referrer to
            // `min_referrals`, their held rewards in the program wait no more either.
            let lift = Lift {
                verified_relation: Some(&relation.id),
                min_referrals_met: reaches_min,
                due_by: None,
            };
            let found = releases(candidates.clone(), lift, now);
            let relation_jobs = vec![
                job(tenant, &relation.referrer_user_id, &program.id, lift, now),
                job(
                    tenant,
                    &relation.referred_user_id,
                    &program.id,
                    Lift {
                        verified_relation: Some(&relation.id),
                        min_referrals_met: false,
                        due_by: None,
                    },
                    now,
                ),
            ];
            jobs.extend(fit_releases(&mut plan, found, &candidates, relation_jobs));
            // Bringing the referrer to `min_referrals` releases their held rewards in the
            // program after the commit, through a job recorded in it (see the sign-up).
            let crossing = job(tenant, &relation.referrer_user_id, &program.id, lift, now);
            if reaches_min && !plan.release_jobs.iter().any(|j| same_job(j, &crossing)) {
                plan.release_jobs.push(crossing.clone());
                jobs.push(crossing);
            }
        }
        let result = VerificationResult {
            user_id: user.clone(),
            outcome: check.outcome,
            rewards: plan.rewards.clone(),
            released: plan.released(),
        };
        if let Some(mut answer) =
            commit_event(store, plan, tenant, "verification", &event, &print, result).await?
        {
            answer
                .released
                .extend(finish_release_jobs(store, &jobs).await);
            return Ok(answer);
        }
        backoff.wait().await?;
    }
}
