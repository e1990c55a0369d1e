//! A promoter's own account: get or create, settings, recent earnings, referrals, statement;
//! withdrawals and their settlement.

use time::OffsetDateTime;

use crate::clock;
use crate::domain::code;
use crate::domain::ledger::{Payout, PayoutStatus};
use crate::domain::program::Program;
use crate::error::{Error, Result};
use crate::page::{Page, PageRequest};
use crate::store::{Inserted, ProgramStore, PromoterChange, PromoterStore};

use super::*;

/// The caller's promoter, created with a fresh unique code on first use. Race-safe: concurrent
/// first calls create exactly one promoter (the user guard is written in the same transaction).
/// An existing promoter costs one `Query`.
pub async fn get_or_create(
    store: &impl PromoterStore,
    tenant: &str,
    user: &str,
) -> Result<Promoter> {
    if let Some(promoter) = store.find_promoter(tenant, user).await? {
        return Ok(promoter);
    }
    for _ in 0..CODE_ATTEMPTS {
        let promoter = Promoter::new(tenant, user, code::generate(), clock::now());
        match store.insert_promoter(&promoter).await? {
            Inserted::Done => return Ok(promoter),
            Inserted::KeyTaken => continue,
            Inserted::GuardTaken => {
                return store.read_promoter(tenant, user).await?.ok_or_else(|| {
                    Error::internal(format!("promoter guard of {user} has no promoter"))
                });
            }
        }
    }
    Err(Error::internal(
        "no free referral code after several attempts",
    ))
}

/// A promoter an admin looks up; 404 when the user is not a promoter.
pub async fn get(store: &impl PromoterStore, tenant: &str, user: &str) -> Result<Promoter> {
    store
        .find_promoter(tenant, user)
        .await?
        .ok_or_else(|| Error::NotFound(format!("user {user} is not a promoter")))
}

/// Sets the payout method or the minimum withdrawal balance.
pub async fn change(
    store: &impl PromoterStore,
    tenant: &str,
    user: &str,
    change: PromoterChange,
) -> Result<Promoter> {
    let promoter = get_or_create(store, tenant, user).await?;
    store
        .update_promoter(&promoter, &change, clock::now())
        .await
}

/// The last seven UTC days of cash earnings. One `Query` on the ledger.
pub async fn recent(
    store: &impl PromoterStore,
    tenant: &str,
    user: &str,
) -> Result<Vec<DayEarnings>> {
    let today = OffsetDateTime::now_utc().date();
    let rewards = store
        .rewards_since(tenant, user, recent_window_start(today))
        .await?;
    Ok(recent_earnings(today, &rewards))
}

/// The seed-shaped page of the promoter's referrals, newest first.
pub async fn referrals(
    store: &impl PromoterStore,
    tenant: &str,
    user: &str,
    query: &ReferralListQuery,
) -> Result<ReferralList> {
    let (page, size) = query.parse()?;
    let all = store.referrals_of(tenant, user).await?;
    Ok(referral_page(&all, page, size))
}

pub async fn payouts(
    store: &impl PromoterStore,
    tenant: &str,
    user: &str,
    page: &PageRequest,
) -> Result<Page<Payout>> {
    store.payouts_of(tenant, user, page).await
}

/// Withdraws the whole current balance, if it reaches the minimum: the balance goes to 0 and a
/// `requested` payout appears, in one transaction conditioned on the balance read, so two
/// concurrent requests never pay the same balance twice.
pub async fn request_payout(
    store: &impl PromoterStore,
    tenant: &str,
    user: &str,
) -> Result<Payout> {
    let mut promoter = get_or_create(store, tenant, user).await?;
    let mut backoff = crate::backoff::Backoff::new();
    loop {
        if promoter.current_balance <= 0
            || promoter.current_balance < promoter.min_withdrawal_balance
        {
            return Err(Error::BelowMinWithdrawalBalance(format!(
                "the balance {} is below the minimum withdrawal balance {}",
                promoter.current_balance, promoter.min_withdrawal_balance
            )));
        }
        let Some(method) = promoter.payout_method.clone() else {
            return Err(Error::PayoutMethodMissing(
                "set a payout method before withdrawing".into(),
            ));
        };
        let payout = Payout {
            id: crate::id::new_id(),
            tenant: tenant.to_owned(),
            user_id: user.to_owned(),
            promoter_code: promoter.referral_code.clone(),
            amount: promoter.current_balance,
            currency: promoter
                .currency
                .clone()
                .unwrap_or_else(|| "USD".to_owned()),
            status: PayoutStatus::Requested,
            payout_method: method,
            created: clock::now(),
            paid_at: None,
        };
        if store.request_payout(&promoter, &payout).await? {
            return Ok(payout);
        }
        // The balance moved since it was read: read it again, consistently.
        backoff.wait().await?;
        promoter = store
            .promoter_by_code(&promoter.referral_code)
            .await?
            .ok_or_else(|| Error::internal("promoter vanished during a payout"))?;
    }
}

/// Marks a requested payout paid and adds it to the promoter's `total_paid`, once.
pub async fn mark_paid(store: &impl PromoterStore, tenant: &str, id: &str) -> Result<Payout> {
    let not_found = || Error::NotFound(format!("no payout {id}"));
    if !crate::id::is_id(id) {
        return Err(not_found());
    }
    let payout = store.get_payout(tenant, id).await?.ok_or_else(not_found)?;
    if payout.status == PayoutStatus::Paid {
        return Err(Error::Conflict(format!("payout {id} is already paid")));
    }
    let now = clock::now();
    if !store.mark_paid(&payout, now).await? {
        return Err(Error::Conflict(format!("payout {id} is already paid")));
    }
    Ok(Payout {
        status: PayoutStatus::Paid,
        paid_at: Some(now),
        ..payout
    })
}

/// Acquired and potential credit per program.
pub async fn statement_of(
    store: &(impl PromoterStore + ProgramStore),
    tenant: &str,
    user: &str,
) -> Result<Statement> {
    let referrals = store.referrals_of(tenant, user).await?;
    let programs = all_programs(store, tenant).await?;
    Ok(statement(&programs, &referrals))
}

/// Every program of the tenant, following pages.
pub(crate) async fn all_programs(store: &impl ProgramStore, tenant: &str) -> Result<Vec<Program>> {
    let mut programs = Vec::new();
    let mut page = PageRequest {
        limit: crate::page::MAX_LIMIT,
        cursor: None,
    };
    loop {
        let batch = program::list_programs(store, tenant, &page).await?;
        programs.extend(batch.items);
        match batch.next_cursor {
            Some(cursor) => page.cursor = Some(cursor),
            None => return Ok(programs),
        }
    }
}
