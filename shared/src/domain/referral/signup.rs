//! Sign-ups through a referrer: `POST /v1/referrals`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::code;
use crate::domain::ledger::Reward;
use crate::domain::program::{CodeTerms, Program, ProgramStatus};
use crate::domain::promoter::{self, CodeItem};
use crate::domain::rules::{self, Context, Event};
use crate::error::{Error, Result};
use crate::store::{
    CodeStore, Committed, EmailOwner, InvitationStore, Plan, ProgramLock, ProgramStore,
    PromoterStore, ReferralStore, RelationWrite, SignupCount,
};

use super::booking::{Lift, book, finish_release_jobs, job};
use super::*;

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
    /// The referred user's IP address, if the tenant passes it (fraud rule `same_device`).
    #[serde(default)]
    pub ip: Option<String>,
    /// The referred user's device fingerprint, if the tenant passes it (`same_device`).
    #[serde(default)]
    pub device_id: Option<String>,
}

/// A relation and the rewards an operation on it produced.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub referral: Referral,
    pub rewards: Vec<Reward>,
    /// Held rewards of the referrer this sign-up released (it brought them to `min_referrals`).
    pub released: Vec<Reward>,
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
    /// Their promoter item, when it was read (a primary code, a named referrer).
    promoter: Option<Box<promoter::Promoter>>,
}

impl Referrer {
    /// A promoter referring through their primary code (named, linked or by invitation).
    fn primary(p: promoter::Promoter, invited: bool) -> Self {
        Referrer {
            invited,
            user_id: p.user_id.clone(),
            promoter_code: p.referral_code.clone(),
            code: p.referral_code.clone(),
            terms: CodeTerms::default(),
            limit: None,
            program_id: None,
            is_active: p.is_active && !p.is_suspended(),
            commission_rate: p.commission_rate,
            promoter: Some(Box::new(p)),
        }
    }
}

/// The fraud rules' flags for this sign-up and what holds the referrer's rewards: reads the
/// referrer's promoter item (an extra code's owner) and their recent sign-ups only for the
/// rules the program enables.
async fn fraud_checks(
    store: &(impl CodeStore + ReferralStore),
    program: &crate::domain::program::Program,
    referrer: &Referrer,
    facts: &super::fraud::SignUpFacts<'_>,
    fingerprints: &super::fraud::Fingerprints,
    now: time::OffsetDateTime,
) -> (
    Result<Vec<crate::domain::ledger::Hold>>,
    Result<Vec<crate::domain::ledger::Hold>>,
) {
    let rules = &program.fraud;
    let wants_promoter = rules.same_mailbox || rules.same_device || rules.duplicate_payout_address;
    let (promoter, recent) = tokio::join!(
        async {
            match &referrer.promoter {
                Some(promoter) => Ok(Some(promoter.as_ref().clone())),
                None if wants_promoter => match store.get_code(&referrer.promoter_code).await? {
                    Some(CodeItem::Promoter(p)) => Ok(Some(p)),
                    _ => Ok(None),
                },
                None => Ok(None),
            }
        },
        async {
            match rules.velocity {
                Some(velocity) => {
                    let since = now - time::Duration::minutes(velocity.within_minutes.into());
                    store
                        .referrals_since(&program.tenant, &referrer.user_id, since)
                        .await
                }
                None => Ok(0),
            }
        },
    );
    let (promoter, recent): (Option<promoter::Promoter>, u64) = match (promoter, recent) {
        (Ok(promoter), Ok(recent)) => (promoter, recent),
        (Err(error), _) | (_, Err(error)) => return (Err(error), Ok(Vec::new())),
    };
    let facts = super::fraud::SignUpFacts {
        recent_signups: recent,
        ..*facts
    };
    let flags = super::fraud::sign_up_flags(rules, promoter.as_ref(), &facts, fingerprints);
    let holds = super::booking::referrer_holds(store, program, promoter.as_ref()).await;
    (Ok(flags), holds)
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
            CodeItem::Promoter(p) if p.tenant == tenant => Referrer::primary(p, false),
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
                promoter: None,
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
            let email = crate::domain::invitation::normalize_email(email)
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
    Ok(Referrer::primary(p, invited))
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

/// Registers a sign-up through a referrer: the relation, its guards and counters and any
/// `signup` rewards, in one transaction; exact under concurrency (the code's limit in the
/// program, one relation per referred user and program, the referrer's qualified count).
pub async fn register_referral(
    store: &(impl ReferralStore + PromoterStore + CodeStore + ProgramStore + InvitationStore),
    tenant: &str,
    input: &SignUp,
    fingerprints: &super::fraud::Fingerprints,
) -> Result<Outcome> {
    let referred = user_id("referred_user_id", &input.referred_user_id)?;
    let referred_email = input
        .referred_email
        .as_deref()
        .map(|e| email("referred_email", e))
        .transpose()?;
    let country = input.country.as_deref().map(country).transpose()?;
    let ip = input
        .ip
        .as_deref()
        .map(|ip| {
            ip.trim()
                .parse::<std::net::IpAddr>()
                .map(|ip| ip.to_string())
                .map_err(|_| Error::invalid("ip", "must be an IPv4 or IPv6 address"))
        })
        .transpose()?;
    let device_id = input
        .device_id
        .as_deref()
        .map(|device| {
            let device = device.trim();
            if device.is_empty() || device.len() > 200 || device.chars().any(char::is_control) {
                Err(Error::invalid(
                    "device_id",
                    "must be 1-200 characters without control characters",
                ))
            } else {
                Ok(device.to_owned())
            }
        })
        .transpose()?;
    let facts = super::fraud::SignUpFacts {
        referred_email: referred_email.as_deref(),
        ip: ip.as_deref(),
        device_id: device_id.as_deref(),
        recent_signups: 0,
    };
    let mut backoff = Backoff::new();
    loop {
        let (referrer, programs) = tokio::join!(
            resolve_referrer(store, tenant, input),
            crate::domain::program::all_programs(store, tenant),
        );
        let (referrer, programs) = (referrer?, programs?);
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
        let min = u64::from(program.min_referrals);
        let (seen, spent, (flags, referrer_holds)) = tokio::join!(
            async {
                if min > 0 {
                    store
                        .qualified_referrals(tenant, &referrer.user_id, &program.id)
                        .await
                } else {
                    Ok(0)
                }
            },
            super::booking::spent(store, &program, &referrer.user_id, now),
            fraud_checks(store, &program, &referrer, &facts, fingerprints, now),
        );
        let (seen, spent) = (seen?, spent?);
        let (flags, referrer_holds) = (flags?, referrer_holds?);
        let qualifies_now = rules::qualifies(&program, false);
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
                .or_else(|| program.referrer_percent()),
            commission_status: None,
            commission_reward_id: None,
            verified: false,
            redeemed_at: None,
            version: 1,
            fired_rules: Vec::new(),
            flags,
            invoice_counts: Default::default(),
            created: now,
            updated: now,
        };
        let limit = referrer.limit.unwrap_or(program.max_referrals);
        let mut plan = Plan::default();
        plan.code(&referrer.code, tenant).referrals = 1;
        plan.code(&referrer.promoter_code, tenant).all_referrals = 1;
        plan.signup = Some(SignupCount {
            tenant: tenant.to_owned(),
            code: referrer.code.clone(),
            program_id: program.id.clone(),
            limit: (limit > 0).then_some(limit),
        });
        if !program.has_relations {
            plan.program_lock = Some(ProgramLock {
                tenant: tenant.to_owned(),
                program_id: program.id.clone(),
                currency: program.currency.clone(),
            });
        }
        let context = Context {
            program: &program,
            relation: &relation.clone(),
            verified: false,
            referrer_qualified,
            referrer_rate: referrer.commission_rate,
            // A suspended promoter's codes refuse sign-ups (checked on the owner's item).
            referrer_holds: &referrer_holds,
            now,
        };
        let dues = rules::due_rewards(&context, &Event::Signup);
        book(dues, &program, &mut relation, seen, spent, &mut plan, now);
        crate::domain::stats::count(
            &mut plan,
            tenant,
            &referrer.user_id,
            &program.id,
            crate::domain::stats::Counted::Signup,
            now,
        );
        if min > 0 && qualifies_now {
            plan.stats(tenant, &referrer.user_id, &program.id, seen, true);
        }
        plan.relations.push(RelationWrite::New(relation.clone()));
        plan.email_owner = referred_email.clone().map(|email| EmailOwner {
            tenant: tenant.to_owned(),
            email,
            user_id: referred.clone(),
        });
        // This sign-up brings the referrer to `min_referrals`: their held rewards in the
        // program wait no more. They are released after the commit, through a job recorded in
        // it: a reward another request commits held until then is found too (after the commit
        // none can be held: the count is conditioned on), and a release cut short is resumed
        // by the reconciler.
        let mut jobs = Vec::new();
        if min > 0 && qualifies_now && seen < min && seen + 1 >= min {
            let lift = Lift {
                verified_relation: None,
                min_referrals_met: true,
                due_by: None,
            };
            jobs.push(job(tenant, &referrer.user_id, &program.id, lift, now));
            plan.release_jobs.extend(jobs.iter().cloned());
        }
        match store.apply(&plan).await? {
            Committed::Done => {
                let mut released = plan.released();
                released.extend(finish_release_jobs(store, &jobs).await);
                return Ok(Outcome {
                    referral: relation,
                    rewards: plan.rewards,
                    released,
                });
            }
            Committed::RelationTaken => {
                return Err(Error::AlreadyReferred(format!(
                    "user {referred} is already referred in program {}",
                    program.id
                )));
            }
            Committed::CodeRefused => {
                return Err(Error::CodeInactive(format!(
                    "the code {} is inactive",
                    referrer.code
                )));
            }
            Committed::LimitReached => {
                return Err(Error::MaxReferralsReached(format!(
                    "the code {} has reached its {limit} referrals in program {}",
                    referrer.code, program.id
                )));
            }
            Committed::EventSeen | Committed::Stale => backoff.wait().await?,
        }
    }
}
