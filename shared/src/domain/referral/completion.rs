//! Admin completion (seed 004) and finding relations by user.

use serde::{Deserialize, Serialize};

use crate::domain::code::{self};
use crate::domain::ledger::Reward;
use crate::domain::program::Recipient;
use crate::domain::promoter::CodeItem;
use crate::domain::rules::{self, Context, Event};
use crate::error::{Error, Result};
use crate::store::{
    CodeStore, Committed, InvitationStore, Plan, ProgramStore, PromoterStore, ReferralStore,
    RelationWrite,
};

use super::booking::book;
use super::*;

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
    let mut backoff = Backoff::new();
    loop {
        let relation = get_referral(store, tenant, id).await?;
        if relation.redeemed_at.is_some() {
            return Err(Error::ReferralRelationAlreadyRedeemed(format!(
                "referral {id} was completed already"
            )));
        }
        let program = store
            .get_program(tenant, &relation.program_id)
            .await?
            .ok_or_else(|| Error::internal("relation without program"))?;
        let now = crate::clock::now();
        let context = Context {
            program: &program,
            relation: &relation,
            verified: relation.verified,
            referrer_qualified: true,
            referrer_rate: None,
            referrer_holds: &[],
            now,
        };
        let dues = rules::due_rewards(&context, &Event::Completion);
        let mut next = relation.clone();
        next.status = ReferralStatus::Completed;
        next.redeemed_at = Some(now);
        next.version += 1;
        next.updated = now;
        let mut plan = Plan::default();
        // An admin's completion pays past the limits (it is counted): nothing to read.
        book(
            dues,
            &program,
            &mut next,
            0,
            crate::store::Spent::default(),
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
            Committed::Stale => backoff.wait().await?,
            other => {
                return Err(Error::internal(format!(
                    "a completion plan was refused: {other:?}"
                )));
            }
        }
    }
}

/// Relations of `user` (named by user id, referral code or email, seed 004): on the first
/// page those in which they were referred (one per program), then, newest first and paged,
/// those in which they referred someone; each with its commission's current status. Two
/// `Query`s in parallel and one `BatchGetItem` (+ 1 `GetItem` to resolve a code or email).
pub async fn referrals_of_user(
    store: &(impl ReferralStore + PromoterStore + CodeStore + InvitationStore),
    tenant: &str,
    user: &str,
    page: &crate::page::PageRequest,
) -> Result<crate::page::Page<Referral>> {
    let Some(user) = named_user(store, tenant, user).await? else {
        return Ok(crate::page::Page {
            items: Vec::new(),
            next_cursor: None,
        });
    };
    let (referred, referring) = tokio::join!(
        async {
            if page.cursor.is_none() {
                store.relations_of_referred(tenant, &user).await
            } else {
                Ok(Vec::new())
            }
        },
        store.referrals_page(tenant, &user, page),
    );
    let mut items = referred?;
    items.sort_by(|a, b| b.id.cmp(&a.id));
    let referring = referring?;
    items.extend(referring.items);
    let statuses = crate::domain::promoter::commission_statuses(store, tenant, &items).await?;
    Ok(crate::page::Page {
        items: items
            .into_iter()
            .map(|r| crate::domain::promoter::with_commission(r, &statuses))
            .collect(),
        next_cursor: referring.next_cursor,
    })
}

/// A relation of the tenant by id, with its commission's current status.
pub async fn read_referral(store: &impl ReferralStore, tenant: &str, id: &str) -> Result<Referral> {
    let relation = get_referral(store, tenant, id).await?;
    let statuses = crate::domain::promoter::commission_statuses(
        store,
        tenant,
        std::slice::from_ref(&relation),
    )
    .await?;
    Ok(crate::domain::promoter::with_commission(
        relation, &statuses,
    ))
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
    let (program, referring, referred) = tokio::join!(
        async {
            if crate::id::is_id(&input.program_id) {
                store.get_program(tenant, &input.program_id).await
            } else {
                Ok(None)
            }
        },
        input.referring_user.resolve(store, tenant),
        input.referred_user.resolve(store, tenant),
    );
    if program?.is_none() {
        return Err(Error::CampaignNotFound(format!(
            "no program {} in this tenant",
            input.program_id
        )));
    }
    let user_not_found = |side: &str| {
        Error::UserNotFound(format!(
            "the identifiers of {side} name no user of this tenant"
        ))
    };
    let referring = referring?.ok_or_else(|| user_not_found("referring_user"))?;
    let referred = referred?.ok_or_else(|| user_not_found("referred_user"))?;
    let relation = store
        .relations_of_referred(tenant, &referred)
        .await?
        .into_iter()
        .find(|r| r.program_id == input.program_id && r.referrer_user_id == referring)
        .ok_or_else(not_found)?;
    complete_referral(store, tenant, &relation.id).await
}
