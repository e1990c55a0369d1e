//! A promoter's own account: get or create, settings, recent earnings, referrals, rewards,
//! statement; withdrawals (one currency each) and their settlement.

use serde::Deserialize;
use time::OffsetDateTime;

use crate::backoff::Backoff;
use crate::clock;
use crate::domain::code;
use crate::domain::ledger::{Payout, PayoutStatus, Reward, RewardStatus};
use crate::domain::program::all_programs;
use crate::domain::referral::{self, Referral};
use crate::error::{Error, Result};
use crate::page::{Page, PageRequest};
use crate::store::{Inserted, ProgramStore, PromoterChange, PromoterStore, ReferralStore};

use super::*;

/// The caller's promoter, created with a fresh unique code on first use. Race-safe: concurrent
/// first calls create exactly one promoter (the user guard is written in the same transaction).
/// An existing promoter costs one `Query` (the promoter and their balances).
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
            Inserted::Done => {
                // A referee may have earned before becoming a promoter.
                let mut promoter = promoter;
                promoter.balances = store.balances(tenant, user).await?;
                return Ok(promoter);
            }
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
    let user = &referral::user_id("user_id", user)?;
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
    if let PromoterChange::PayoutMethod(method) = &change {
        // Registered first: a failure leaves the method unchanged (the client retries).
        store
            .register_payout_address(tenant, user, promoter.payout_method.as_ref(), method)
            .await?;
    }
    store
        .update_promoter(&promoter, &change, clock::now())
        .await
}

/// The most IP and device digests kept on a promoter.
const RECENT_ACTIVITY: usize = 10;

/// Notes the IP and device a promoter was just seen on (their own session: `GET
/// /v1/promoters/me`), for the fraud rule `same_device`: one `UpdateItem`, only when one of
/// them is new. Best effort: a failure is logged, the request goes on.
pub async fn note_activity(
    store: &impl PromoterStore,
    promoter: &mut Promoter,
    ip: Option<&str>,
    device: Option<&str>,
    fingerprints: &crate::domain::referral::fraud::Fingerprints,
) {
    let seen: Vec<String> = [("ip", ip), ("device", device)]
        .into_iter()
        .filter_map(|(kind, value)| {
            value
                .filter(|v| !v.trim().is_empty() && v.len() <= 200)
                .map(|v| fingerprints.digest(kind, v))
        })
        .collect();
    if seen.iter().all(|d| promoter.recent_activity.contains(d)) {
        return;
    }
    let mut recent = seen.clone();
    recent.extend(
        promoter
            .recent_activity
            .iter()
            .filter(|d| !seen.contains(d))
            .cloned(),
    );
    recent.truncate(RECENT_ACTIVITY);
    match store
        .update_promoter(
            promoter,
            &PromoterChange::Activity(recent.clone()),
            clock::now(),
        )
        .await
    {
        Ok(_) => promoter.recent_activity = recent,
        Err(error) => tracing::warn!(%error, "promoter activity not noted"),
    }
}

/// Body of `PATCH /v1/promoters/{user_id}` (admin): at least one of the fields.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminChange {
    /// The promoter's own commission rate on invoices (percent, 0 < rate <= 100), replacing
    /// the program's percent for their future invoices; `null` returns to the program's
    /// (absent and `null` differ).
    #[serde(default, deserialize_with = "present_or_null")]
    pub commission_rate: Option<Option<f64>>,
    /// `suspended`: their codes answer as inactive, their rewards are held
    /// (`promoter_suspended`), they cannot withdraw; `active` again releases those holds.
    #[serde(default)]
    pub status: Option<super::PromoterStatus>,
    /// Their own email (fraud rule `same_mailbox`), or `null` to forget it.
    #[serde(default, deserialize_with = "present_or_null_text")]
    pub email: Option<Option<String>>,
}

fn present_or_null_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// A field that may be a value or `null`, told apart from an absent one (`None`).
fn present_or_null<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Option<f64>>, D::Error> {
    Option::<f64>::deserialize(deserializer).map(Some)
}

/// An admin sets a promoter's own commission rate (seed 001's `commission_rate`), or suspends or
/// reactivates them (see [`suspension`]).
pub async fn admin_change(
    store: &(impl PromoterStore + ReferralStore),
    tenant: &str,
    user: &str,
    input: &AdminChange,
) -> Result<Promoter> {
    if input.commission_rate.is_none() && input.status.is_none() && input.email.is_none() {
        return Err(Error::invalid(
            "commission_rate",
            "give commission_rate (a percent, or null for the program's), status (active or suspended) and/or email",
        ));
    }
    let email = match &input.email {
        Some(Some(email)) => Some(Some(crate::domain::referral::email("email", email)?)),
        other => other.clone(),
    };
    if let Some(Some(rate)) = input.commission_rate
        && !(rate.is_finite() && rate > 0.0 && rate <= 100.0)
    {
        return Err(Error::invalid(
            "commission_rate",
            "must be greater than 0 and at most 100, or null for the program's",
        ));
    }
    let mut promoter = get(store, tenant, user).await?;
    if let Some(rate) = input.commission_rate {
        promoter = store
            .update_promoter(
                &promoter,
                &PromoterChange::CommissionRate(rate),
                clock::now(),
            )
            .await?;
    }
    if let Some(email) = email {
        promoter = store
            .update_promoter(&promoter, &PromoterChange::Email(email), clock::now())
            .await?;
    }
    if let Some(status) = input.status {
        promoter = store
            .update_promoter(&promoter, &PromoterChange::Status(status), clock::now())
            .await?;
        suspension(store, tenant, &promoter.user_id, status).await?;
    }
    Ok(promoter)
}

/// Rewards held or released per transaction by a suspension or a reactivation.
const SUSPENSION_CHUNK: usize = 40;

/// Brings the promoter's rewards (as referrer) in line with their status: suspended, each one
/// held or pending gets the hold `promoter_suspended` (a pending billing credit only while no
/// delivery has claimed it: one on its way is delivered); active, those holds are lifted (the
/// reward pays once no other hold remains). Idempotent, run after the status is written (a
/// reward booked meanwhile reads the new status); each write conditioned on the reward as read,
/// in chunks (a failed chunk is retried reward by reward).
pub async fn suspension(
    store: &(impl PromoterStore + ReferralStore),
    tenant: &str,
    user: &str,
    status: super::PromoterStatus,
) -> Result<usize> {
    use crate::domain::ledger::{Hold, RewardStatus};
    use crate::store::{Adjustment, Plan};
    let suspend = status == super::PromoterStatus::Suspended;
    let wanted = if suspend {
        vec![RewardStatus::Pending, RewardStatus::Held]
    } else {
        vec![RewardStatus::Held]
    };
    let now = clock::now();
    let mut changes = Vec::new();
    for reward_status in wanted {
        let mut page = PageRequest {
            limit: crate::page::MAX_LIMIT,
            cursor: None,
        };
        loop {
            let batch = store
                .rewards_of(tenant, user, Some(reward_status), &page)
                .await?;
            for before in batch.items {
                let holds = before.holds.contains(&Hold::PromoterSuspended);
                if before.recipient != crate::domain::program::Recipient::Referrer
                    || before.reverses.is_some()
                    || holds == suspend
                {
                    continue;
                }
                let mut after = before.clone();
                if suspend {
                    after.holds.push(Hold::PromoterSuspended);
                } else {
                    after.holds.retain(|hold| *hold != Hold::PromoterSuspended);
                }
                after.status = crate::domain::rules::status_for(&after.holds, after.delivery);
                after.updated = now;
                changes.push(Adjustment { before, after });
            }
            match batch.next_cursor {
                Some(cursor) => page.cursor = Some(cursor),
                None => break,
            }
        }
    }
    let plan_of = |chunk: &[Adjustment]| {
        let mut plan = Plan::default();
        for change in chunk {
            plan.change(&change.before, &change.after);
            plan.adjustments.push(change.clone());
        }
        plan
    };
    let mut done = 0;
    for chunk in changes.chunks(SUSPENSION_CHUNK) {
        if store.apply(&plan_of(chunk)).await? == crate::store::Committed::Done {
            done += chunk.len();
            continue;
        }
        for change in chunk {
            if store.apply(&plan_of(std::slice::from_ref(change))).await?
                == crate::store::Committed::Done
            {
                done += 1;
            }
        }
    }
    Ok(done)
}

/// The last seven UTC days of cash earnings, per currency. One `Query` on the ledger and one
/// for the promoter's balances (the main currency), in parallel.
pub async fn recent(
    store: &impl PromoterStore,
    tenant: &str,
    user: &str,
) -> Result<Vec<DayEarnings>> {
    let today = crate::clock::now().date();
    let (rewards, promoter) = tokio::join!(
        store.rewards_since(tenant, user, recent_window_start(today)),
        store.find_promoter(tenant, user),
    );
    let promoter = promoter?;
    let main = promoter.as_ref().and_then(|p| p.balances.main_currency());
    Ok(recent_earnings(today, &rewards?, main))
}

/// The current status of each relation's latest referrer reward: one `BatchGetItem`.
pub async fn commission_statuses(
    store: &impl ReferralStore,
    tenant: &str,
    relations: &[Referral],
) -> Result<std::collections::BTreeMap<String, RewardStatus>> {
    let ids: Vec<(String, String)> = relations
        .iter()
        .filter_map(|r| {
            r.commission_reward_id
                .clone()
                .map(|id| (r.referrer_user_id.clone(), id))
        })
        .collect();
    if ids.is_empty() {
        return Ok(Default::default());
    }
    Ok(store
        .rewards_by_id(tenant, &ids)
        .await?
        .into_iter()
        .map(|reward| (reward.id, reward.status))
        .collect())
}

/// The relation with its commission's current status.
pub fn with_commission(
    mut relation: Referral,
    statuses: &std::collections::BTreeMap<String, RewardStatus>,
) -> Referral {
    if let Some(id) = &relation.commission_reward_id
        && let Some(status) = statuses.get(id)
    {
        relation.commission_status = Some(*status);
    }
    relation
}

/// The seed-shaped page of the promoter's referrals, newest first. The count is the
/// promoter's counter (no counting reads); page `n` reads the `(n - 1) * page_size` referrals
/// before it (bounded by [`MAX_PAGED_REFERRALS`]), a cursor reads one page.
pub async fn referrals(
    store: &(impl PromoterStore + ReferralStore),
    tenant: &str,
    user: &str,
    query: &ReferralListQuery,
) -> Result<ReferralList> {
    let (start, size) = query.parse()?;
    let promoter = get_or_create(store, tenant, user).await?;
    let (page_number, mut cursor) = match start {
        ReferralListStart::Cursor(cursor) => (None, Some(cursor)),
        ReferralListStart::Page(page) => (Some(page), None),
    };
    let mut skip = page_number.map_or(0, |page| (page - 1) as usize * size);
    while skip > 0 {
        let batch = PageRequest {
            limit: skip.min(crate::page::MAX_LIMIT),
            cursor: cursor.take(),
        };
        let skipped = store.referrals_page(tenant, user, &batch).await?;
        skip -= skipped.items.len();
        match skipped.next_cursor {
            Some(next) => cursor = Some(next),
            None => {
                skip = 0;
                cursor = None;
                if skipped.items.len() < batch.limit {
                    // Past the end: an empty page.
                    return Ok(referral_list(
                        promoter.all_referrals,
                        page_number,
                        size,
                        &[],
                        |_| None,
                        None,
                    ));
                }
            }
        }
    }
    let page = store
        .referrals_page(
            tenant,
            user,
            &PageRequest {
                limit: size,
                cursor,
            },
        )
        .await?;
    let statuses = commission_statuses(store, tenant, &page.items).await?;
    Ok(referral_list(
        promoter.all_referrals,
        page_number,
        size,
        &page.items,
        |r| {
            r.commission_reward_id
                .as_ref()
                .and_then(|id| statuses.get(id).copied())
                .or(r.commission_status)
        },
        page.next_cursor,
    ))
}

/// A page of the promoter's rewards, newest first, of one status if given.
pub async fn rewards(
    store: &impl PromoterStore,
    tenant: &str,
    user: &str,
    status: Option<&str>,
    page: &PageRequest,
) -> Result<Page<Reward>> {
    let status = status
        .filter(|s| !s.is_empty())
        .map(RewardStatus::parse)
        .transpose()?;
    store.rewards_of(tenant, user, status, page).await
}

pub async fn payouts(
    store: &impl PromoterStore,
    tenant: &str,
    user: &str,
    page: &PageRequest,
) -> Result<Page<Payout>> {
    store.payouts_of(tenant, user, page).await
}

/// Body of `POST /v1/promoters/me/payouts`: which balance to withdraw (default: the main
/// currency's).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Withdrawal {
    #[serde(default)]
    pub currency: Option<String>,
}

/// Withdraws the whole current balance of one currency, if it reaches the minimum: the
/// balance goes to 0 and a `requested` payout appears, in one transaction conditioned on the
/// balance read, so two concurrent requests never pay the same balance twice.
pub async fn request_payout(
    store: &impl PromoterStore,
    tenant: &str,
    user: &str,
    input: &Withdrawal,
) -> Result<Payout> {
    let promoter = get_or_create(store, tenant, user).await?;
    if promoter.is_suspended() {
        return Err(Error::PromoterSuspended(
            "the promoter is suspended: withdrawals wait until an admin reactivates them".into(),
        ));
    }
    let currency = match input.currency.as_deref() {
        Some(currency) => crate::domain::money::money_currency("currency", currency)?,
        None => match promoter.balances.main_currency() {
            Some(currency) => currency.to_owned(),
            None => {
                return Err(Error::BelowMinWithdrawalBalance(
                    "nothing has been earned yet".into(),
                ));
            }
        },
    };
    let mut balance = promoter
        .balances
        .0
        .iter()
        .find(|b| b.currency == currency)
        .cloned();
    let mut backoff = Backoff::new();
    loop {
        let Some(seen) = balance.clone().filter(|b| {
            b.current_balance > 0 && b.current_balance >= promoter.min_withdrawal_balance
        }) else {
            return Err(Error::BelowMinWithdrawalBalance(format!(
                "the {currency} balance {} is below the minimum withdrawal balance {}",
                balance.as_ref().map_or(0, |b| b.current_balance),
                promoter.min_withdrawal_balance
            )));
        };
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
            amount: seen.current_balance,
            currency: currency.clone(),
            status: PayoutStatus::Requested,
            payout_method: method,
            created: clock::now(),
            paid_at: None,
        };
        if store.request_payout(&seen, &payout).await? {
            return Ok(payout);
        }
        // The balance moved since it was read: read it again, consistently.
        backoff.wait().await?;
        balance = store.balance(tenant, user, &currency).await?;
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

/// Acquired and potential credit per program and per currency. The relations, the programs and
/// the promoter (their main currency), in parallel.
pub async fn statement_of(
    store: &(impl PromoterStore + ProgramStore),
    tenant: &str,
    user: &str,
) -> Result<Statement> {
    let user = &referral::user_id("user_id", user)?;
    let (referrals, programs, promoter) = tokio::join!(
        store.referrals_of(tenant, user),
        all_programs(store, tenant),
        store.find_promoter(tenant, user),
    );
    let promoter = promoter?;
    let main = promoter.as_ref().and_then(|p| p.balances.main_currency());
    Ok(statement(&programs?, &referrals?, main))
}

/// The query of `GET /v1/promoters` (admin).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PromoterQuery {
    /// `active` (the default) or `suspended`.
    #[serde(default)]
    pub status: Option<String>,
    /// Promoters whose user id starts with this.
    #[serde(default)]
    pub q: Option<String>,
    /// The promoter owning this code (primary or extra).
    #[serde(default)]
    pub code: Option<String>,
}

/// A promoter in the back office's list (no balances: `GET /v1/promoters/{user_id}` has them).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PromoterSummary {
    pub user_id: String,
    pub referral_code: String,
    pub status: super::PromoterStatus,
    pub email: Option<String>,
    /// Sign-ups through every code of the promoter.
    pub total_referrals: u64,
    pub link_clicks: u64,
    pub commission_rate: Option<f64>,
    pub has_payout_method: bool,
    #[serde(with = "crate::clock::rfc3339")]
    pub created: OffsetDateTime,
}

impl From<Promoter> for PromoterSummary {
    fn from(p: Promoter) -> Self {
        PromoterSummary {
            user_id: p.user_id,
            referral_code: p.referral_code,
            status: p.status,
            email: p.email,
            total_referrals: p.all_referrals,
            link_clicks: p.stats.link_clicks,
            commission_rate: p.commission_rate,
            has_payout_method: p.payout_method.is_some(),
            created: p.created,
        }
    }
}

/// The tenant's promoters of one status by user id, a user-id prefix search (`q`), or the owner
/// of a code: one `Query` (GSI3), or one or two `GetItem`s for a code.
pub async fn list_promoters(
    store: &(impl PromoterStore + crate::store::CodeStore),
    tenant: &str,
    query: &PromoterQuery,
    page: &PageRequest,
) -> Result<Page<PromoterSummary>> {
    let status = match query.status.as_deref().unwrap_or("active") {
        "active" => super::PromoterStatus::Active,
        "suspended" => super::PromoterStatus::Suspended,
        _ => return Err(Error::invalid("status", "must be active or suspended")),
    };
    if let Some(code) = query.code.as_deref().filter(|c| !c.trim().is_empty()) {
        let owner = match code::normalize(code) {
            Some(code) => match store.get_code(&code).await? {
                Some(CodeItem::Promoter(p)) => Some(p),
                Some(CodeItem::Extra(extra)) => match store.get_code(&extra.promoter_code).await? {
                    Some(CodeItem::Promoter(p)) => Some(p),
                    _ => None,
                },
                None => None,
            },
            None => None,
        };
        let items = owner
            .filter(|p| p.tenant == tenant && p.status == status)
            .map(PromoterSummary::from)
            .into_iter()
            .collect();
        return Ok(Page {
            items,
            next_cursor: None,
        });
    }
    let prefix = match query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        Some(q) if q.len() > 128 || q.contains('#') => {
            return Err(Error::invalid("q", "must be the start of a user id"));
        }
        other => other,
    };
    let found = store
        .promoters_by_status(tenant, status, prefix, page)
        .await?;
    Ok(Page {
        items: found.items.into_iter().map(PromoterSummary::from).collect(),
        next_cursor: found.next_cursor,
    })
}

/// The tenant's payouts of one status (`requested`, the default, or `paid`), newest first: one
/// `Query` (GSI3). What an admin pays from (`POST /v1/payouts/{id}/paid`).
pub async fn list_payouts(
    store: &impl PromoterStore,
    tenant: &str,
    status: Option<&str>,
    page: &PageRequest,
) -> Result<Page<Payout>> {
    let status = match status.unwrap_or("requested") {
        "requested" => PayoutStatus::Requested,
        "paid" => PayoutStatus::Paid,
        _ => return Err(Error::invalid("status", "must be requested or paid")),
    };
    store.payouts_by_status(tenant, status, page).await
}
