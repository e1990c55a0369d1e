//! Codes through their use cases: a promoter's codes, an admin's extra codes and activation, the
//! public look-up and the click.

use std::collections::BTreeMap;

use crate::clock;
use crate::domain::program::{self, CodeTerms, ProgramStatus};
use crate::domain::promoter::{self, CodeItem};
use crate::error::{Error, Result};
use crate::store::{CodeStore, ProgramStore, PromoterStore};

use super::*;

/// How many of a promoter's latest referrals `referred_users` draws from.
pub const REFERRED_USERS_WINDOW: usize = 200;

/// A page of the user's codes: the primary code first (on the first page), then up to
/// `page.limit` extra codes; each with the users referred through it among the promoter's
/// latest [`REFERRED_USERS_WINDOW`] referrals (all of them: `/v1/promoters/me/referrals`).
/// The promoter is created if `create`, else the user must be one (404). Three `Query`s, in
/// parallel: the promoter, the extra codes, the latest referrals.
pub async fn codes_of(
    store: &(impl PromoterStore + CodeStore),
    tenant: &str,
    user: &str,
    create: bool,
    page: &crate::page::PageRequest,
) -> Result<crate::page::Page<CodeView>> {
    let user = &crate::domain::referral::user_id("user_id", user)?;
    let window = crate::page::PageRequest {
        limit: REFERRED_USERS_WINDOW,
        cursor: None,
    };
    let (promoter, extra, referrals) = tokio::join!(
        async {
            if create {
                promoter::get_or_create(store, tenant, user).await
            } else {
                promoter::get(store, tenant, user).await
            }
        },
        store.extra_codes(tenant, user, page),
        store.referrals_page(tenant, user, &window),
    );
    let (promoter, extra, referrals) = (promoter?, extra?, referrals?);
    let mut by_code: BTreeMap<&str, Vec<ReferredUser>> = BTreeMap::new();
    for referral in &referrals.items {
        if let Some(code) = &referral.code {
            by_code
                .entry(code.as_str())
                .or_default()
                .push(ReferredUser {
                    user_id: referral.referred_user_id.clone(),
                    referral_id: referral.id.clone(),
                    program_id: referral.program_id.clone(),
                    status: referral.status,
                    created: referral.created,
                });
        }
    }
    let mut items: Vec<CodeItem> = Vec::new();
    if page.cursor.is_none() {
        items.push(CodeItem::Promoter(promoter));
    }
    items.extend(extra.items.into_iter().map(CodeItem::Extra));
    Ok(crate::page::Page {
        items: items
            .iter()
            .map(|item| {
                let mut view = item.view();
                view.referred_users = Some(by_code.remove(view.code.as_str()).unwrap_or_default());
                view
            })
            .collect(),
        next_cursor: extra.next_cursor,
    })
}

/// An admin gives `user` an extra code for a program. The promoter is created if needed.
pub async fn create_code(
    store: &(impl PromoterStore + CodeStore + ProgramStore),
    tenant: &str,
    user: &str,
    input: &NewCode,
) -> Result<CodeView> {
    let user = &crate::domain::referral::user_id("user_id", user)?;
    let custom = input.validate()?;
    let program = match program::get_program(store, tenant, &input.program_id).await {
        Err(Error::NotFound(_)) => {
            return Err(Error::invalid(
                "program_id",
                "no such program in this tenant",
            ));
        }
        other => other?,
    };
    if program.status == ProgramStatus::Archived {
        return Err(Error::ProgramInactive(format!(
            "program {} is archived",
            program.id
        )));
    }
    let promoter = promoter::get_or_create(store, tenant, user).await?;
    for _ in 0..promoter::CODE_ATTEMPTS {
        let now = clock::now();
        let code = ReferralCode {
            code: custom.clone().unwrap_or_else(generate),
            tenant: tenant.to_owned(),
            user_id: user.to_owned(),
            promoter_code: promoter.referral_code.clone(),
            program_id: program.id.clone(),
            referrer_amount: input.referrer_amount,
            referee_amount: input.referee_amount,
            max_referrals: input.max_referrals.map(|m| m as u32),
            is_active: true,
            stats: CodeStats::default(),
            created: now,
            updated: now,
        };
        if store.insert_code(&code).await? {
            return Ok(CodeItem::Extra(code).view());
        }
        if custom.is_some() {
            return Err(Error::Conflict(format!("the code {} is taken", code.code)));
        }
    }
    Err(Error::internal(
        "no free referral code after several attempts",
    ))
}

/// An admin activates or deactivates one of the tenant's codes. One `UpdateItem`.
pub async fn set_code_active(
    store: &impl CodeStore,
    tenant: &str,
    code: &str,
    active: bool,
) -> Result<CodeView> {
    let not_found = || Error::NotFound(format!("no code {code}"));
    let code = normalize(code).ok_or_else(not_found)?;
    store
        .set_code_active(tenant, &code, active, clock::now())
        .await?
        .map(|item| item.view())
        .ok_or_else(not_found)
}

/// The public look-up of a code: valid or not, and what a referred user receives in each
/// program it can be used in, for `country`. One `GetItem` plus one `Query` (primary code) or
/// two `GetItem`s in parallel (extra code: its program, its owner).
pub async fn public_code(
    store: &(impl CodeStore + ProgramStore),
    code: &str,
    country: Option<&str>,
) -> Result<PublicCode> {
    let not_found = || Error::NotFound(format!("no code {}", code.trim()));
    let country = country
        .map(|c| c.trim().to_ascii_uppercase())
        .filter(|c| !c.is_empty())
        .map(|c| {
            if program::is_country_code(&c) {
                Ok(c)
            } else {
                Err(Error::invalid(
                    "country",
                    "must be an ISO 3166-1 alpha-2 code such as BR",
                ))
            }
        })
        .transpose()?;
    let canonical = normalize(code).ok_or_else(not_found)?;
    let (item, counts) = store
        .code_with_counts(&canonical)
        .await?
        .ok_or_else(not_found)?;
    let now = clock::now();
    let mut active = item.is_active();
    let (terms, limit, programs) = match &item {
        CodeItem::Promoter(promoter) => {
            let programs = program::all_programs(store, &promoter.tenant).await?;
            let open = programs
                .into_iter()
                .filter(|p| p.status == ProgramStatus::Active)
                .collect();
            (CodeTerms::default(), None, open)
        }
        CodeItem::Extra(extra) => {
            // The owner's item tells whether they are suspended (their codes answer inactive).
            let (program, owner) = tokio::join!(
                store.get_program(&extra.tenant, &extra.program_id),
                store.get_code(&extra.promoter_code),
            );
            if let Some(CodeItem::Promoter(owner)) = owner?
                && owner.is_suspended()
            {
                active = false;
            }
            let terms = CodeTerms {
                referrer_amount: extra.referrer_amount,
                referee_amount: extra.referee_amount,
            };
            (
                terms,
                extra.max_referrals,
                program?.into_iter().collect::<Vec<_>>(),
            )
        }
    };
    // The limit is per program: each offer shows the code's referrals in that program.
    let offers: Vec<_> = programs
        .iter()
        .map(|p| {
            offer(
                p,
                terms,
                limit,
                counts.get(&p.id).copied().unwrap_or(0),
                country.as_deref(),
                now,
            )
        })
        .collect();
    Ok(PublicCode {
        code: canonical,
        is_active: active,
        is_valid: active && offers.iter().any(|offer| offer.is_open),
        country,
        programs: offers,
    })
}

/// What a click on `/r/{code}` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Click {
    /// The normalised code, when it was active and the click counted.
    pub counted: Option<String>,
    /// The code's tenant (whose landing URL the visitor goes to), when the code exists.
    pub tenant: Option<String>,
}

/// Counts a click on `/r/{code}` when the code exists and is active: one `UpdateItem` (an
/// inactive code: and a `GetItem`, for its tenant); a malformed code costs nothing. The day
/// figures of the owner (and of an extra code's program) count it from the table's stream
/// ([`crate::delivery::outbox`]), off the visitor's way.
pub async fn count_click(store: &impl CodeStore, code: &str) -> Result<Click> {
    match normalize(code) {
        Some(code) => {
            let clicked = store.count_click(&code, clock::now()).await?;
            Ok(Click {
                counted: clicked.counted.then_some(code),
                tenant: clicked.tenant,
            })
        }
        None => Ok(Click::default()),
    }
}
