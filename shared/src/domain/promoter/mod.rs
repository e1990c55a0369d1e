//! Promoters (seed 001): a user with a referral code and link, balances, a payout method and a
//! minimum withdrawal balance; their recent earnings, referrals, payouts and statement.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::clock::rfc3339;
use crate::domain::code::{CodeStats, CodeView, ReferralCode};
use crate::domain::ledger::{BalanceFigures, Balances, Reward};
use crate::domain::program::{CodeTerms, Program, ProgramStatus, Recipient, RewardKind};
use crate::domain::referral::{InvitationMethod, Referral, ReferralStatus};
use crate::error::{Error, Result};
pub mod account;

pub use account::*;

/// Default minimum withdrawal balance: 20.00.
pub const DEFAULT_MIN_WITHDRAWAL: i64 = 2000;
/// Upper bound of a minimum withdrawal balance: 100,000.00.
pub const MAX_MIN_WITHDRAWAL: i64 = 10_000_000;
/// How many random codes a creation tries before giving up (40-bit codes: collisions are rare).
pub(crate) const CODE_ATTEMPTS: usize = 5;
/// Page size of the seed-shaped referral list.
pub const REFERRALS_PAGE_SIZE: usize = 50;

/// Whether a promoter may refer and be paid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromoterStatus {
    #[default]
    Active,
    /// An admin suspended them: their codes answer as inactive, their rewards are held
    /// (`promoter_suspended`) and they cannot withdraw, until an admin reactivates them.
    Suspended,
}

impl PromoterStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PromoterStatus::Active => "active",
            PromoterStatus::Suspended => "suspended",
        }
    }
}

/// A promoter, stored in the item of its primary code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Promoter {
    pub user_id: String,
    pub tenant: String,
    /// The primary code: the referral link's code and the key of this item.
    pub referral_code: String,
    /// Whether the primary code accepts sign-ups.
    pub is_active: bool,
    /// The primary code's own counters (sign-ups through it, clicks on its link...).
    #[serde(flatten)]
    pub stats: CodeStats,
    /// Sign-ups through every code of the promoter (the primary and extra codes).
    #[serde(default)]
    pub all_referrals: u64,
    /// The user's balances, per currency: items of their own beside this one (a referee earns
    /// before becoming a promoter), read with it.
    #[serde(skip)]
    pub balances: Balances,
    pub min_withdrawal_balance: i64,
    /// A per-promoter commission rate (percent) on invoices, replacing the program's; `null`
    /// when the program's applies.
    pub commission_rate: Option<f64>,
    pub payout_method: Option<PayoutMethod>,
    #[serde(default)]
    pub status: PromoterStatus,
    /// Their own email, as the tenant reports it (fraud rule `same_mailbox`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Keyed digests of the IPs and devices they were seen on lately, newest first (fraud rule
    /// `same_device`; `fraud::Fingerprints`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_activity: Vec<String>,
    #[serde(with = "rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "rfc3339")]
    pub updated: OffsetDateTime,
}

impl Promoter {
    pub fn is_suspended(&self) -> bool {
        self.status == PromoterStatus::Suspended
    }

    pub fn new(tenant: &str, user_id: &str, referral_code: String, now: OffsetDateTime) -> Self {
        Promoter {
            user_id: user_id.to_owned(),
            tenant: tenant.to_owned(),
            referral_code,
            is_active: true,
            stats: CodeStats::default(),
            all_referrals: 0,
            balances: Balances::default(),
            min_withdrawal_balance: DEFAULT_MIN_WITHDRAWAL,
            commission_rate: None,
            payout_method: None,
            status: PromoterStatus::Active,
            email: None,
            recent_activity: Vec::new(),
            created: now,
            updated: now,
        }
    }

    /// The promoter as answered, with its referral link under `base_url`.
    pub fn view(&self, base_url: &str) -> PromoterView {
        let currency = self.balances.main_currency().map(str::to_owned);
        let main = currency
            .as_deref()
            .map(|c| self.balances.get(c))
            .unwrap_or_default();
        PromoterView {
            user_id: self.user_id.clone(),
            referral_code: self.referral_code.clone(),
            referral_link: format!(
                "{}/r/{}",
                base_url.trim_end_matches('/'),
                self.referral_code
            ),
            current_balance: main.current_balance,
            total_earned: main.total_earned,
            total_paid: main.total_paid,
            points_earned: self.balances.get(crate::domain::money::POINTS).total_earned,
            currency,
            balances: self.balances.by_currency(),
            link_clicks: self.stats.link_clicks,
            total_referrals: self.all_referrals,
            min_withdrawal_balance: self.min_withdrawal_balance,
            commission_rate: self.commission_rate,
            payout_method: self.payout_method.clone(),
            status: self.status,
            email: self.email.clone(),
            created: self.created,
            updated: self.updated,
        }
    }

    pub(crate) fn code_view(&self) -> CodeView {
        CodeView {
            code: self.referral_code.clone(),
            program_id: None,
            is_primary: true,
            is_active: self.is_active,
            referrer_amount: None,
            referee_amount: None,
            max_referrals: None,
            stats: self.stats.view(None),
            created: self.created,
            referred_users: None,
        }
    }
}

/// A code's item: a promoter's primary code (which holds the promoter) or an extra code.
#[derive(Clone, Debug, PartialEq)]
pub enum CodeItem {
    Promoter(Promoter),
    Extra(ReferralCode),
}

impl CodeItem {
    pub fn view(&self) -> CodeView {
        match self {
            CodeItem::Promoter(promoter) => promoter.code_view(),
            CodeItem::Extra(code) => CodeView {
                code: code.code.clone(),
                program_id: Some(code.program_id.clone()),
                is_primary: false,
                is_active: code.is_active,
                referrer_amount: code.referrer_amount,
                referee_amount: code.referee_amount,
                max_referrals: code.max_referrals,
                stats: code.stats.view(None),
                created: code.created,
                referred_users: None,
            },
        }
    }

    pub fn stats(&self) -> &CodeStats {
        match self {
            CodeItem::Promoter(promoter) => &promoter.stats,
            CodeItem::Extra(code) => &code.stats,
        }
    }

    pub fn is_active(&self) -> bool {
        match self {
            CodeItem::Promoter(promoter) => promoter.is_active && !promoter.is_suspended(),
            CodeItem::Extra(code) => code.is_active,
        }
    }
}

/// `GET /v1/promoters/me` and `GET /v1/promoters/{user_id}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PromoterView {
    pub user_id: String,
    pub referral_code: String,
    pub referral_link: String,
    /// Seed 001's figures, in the promoter's main currency (`currency`: the first money
    /// currency they earned in; `null` before any). Every currency is in `balances`.
    pub current_balance: i64,
    pub total_earned: i64,
    pub total_paid: i64,
    /// Points earned (the `POINTS` balance's `total_earned`).
    pub points_earned: i64,
    pub currency: Option<String>,
    /// Every balance, per currency: `{"USD": {current_balance, total_earned, total_paid}}`.
    pub balances: BTreeMap<String, BalanceFigures>,
    pub link_clicks: u64,
    pub total_referrals: u64,
    pub min_withdrawal_balance: i64,
    pub commission_rate: Option<f64>,
    pub payout_method: Option<PayoutMethod>,
    pub status: PromoterStatus,
    pub email: Option<String>,
    #[serde(with = "rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "rfc3339")]
    pub updated: OffsetDateTime,
}

pub use crate::domain::ledger::{PayoutKind, PayoutMethod};

// ---- Minimum withdrawal ----

/// Body of `PATCH /v1/promoters/me/min-withdrawal-balance`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinWithdrawal {
    pub min_withdrawal_balance: i64,
}

impl MinWithdrawal {
    pub fn validated(self) -> Result<i64> {
        if !(0..=MAX_MIN_WITHDRAWAL).contains(&self.min_withdrawal_balance) {
            return Err(Error::invalid(
                "min_withdrawal_balance",
                format!("must be between 0 and {MAX_MIN_WITHDRAWAL} (minor units)"),
            ));
        }
        Ok(self.min_withdrawal_balance)
    }
}

// ---- Recent earnings ----

/// One day of `GET /v1/promoters/me/earnings/recent`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DayEarnings {
    /// `Mon` … `Sun`.
    pub day: String,
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    /// Cash earned that day in the promoter's main currency, minor units.
    pub value: i64,
    /// Cash earned that day per currency (currencies with earnings in the week).
    pub values: BTreeMap<String, i64>,
}

/// The first instant of the seven UTC days ending with `today`.
pub fn recent_window_start(today: Date) -> OffsetDateTime {
    (today - time::Duration::days(6)).midnight().assume_utc()
}

/// Seven entries, oldest first, ending with `today` (UTC): the cash rewards created each day,
/// per currency (every currency earned in that week, zero where there were none) and in the
/// `main` currency.
pub fn recent_earnings(today: Date, rewards: &[Reward], main: Option<&str>) -> Vec<DayEarnings> {
    let first = today - time::Duration::days(6);
    let currencies: std::collections::BTreeSet<&str> = rewards
        .iter()
        .filter(|r| r.is_cash_earning())
        .map(|r| r.currency.as_str())
        .collect();
    let mut days: Vec<BTreeMap<String, i64>> = (0..7)
        .map(|_| currencies.iter().map(|c| (c.to_string(), 0)).collect())
        .collect();
    for reward in rewards.iter().filter(|r| r.is_cash_earning()) {
        let offset = (reward.created.date() - first).whole_days();
        if let Ok(index) = usize::try_from(offset)
            && let Some(day) = days.get_mut(index)
            && let Some(value) = day.get_mut(&reward.currency)
        {
            *value = value.saturating_add(reward.payable());
        }
    }
    days.into_iter()
        .enumerate()
        .map(|(i, values)| {
            let date = first + time::Duration::days(i as i64);
            DayEarnings {
                day: date.weekday().to_string()[..3].to_owned(),
                date: date.to_string(),
                value: main.and_then(|c| values.get(c)).copied().unwrap_or(0),
                values,
            }
        })
        .collect()
}

// ---- Referral list (seed shape) ----

/// `GET /v1/promoters/me/referrals`: `{count, pages, results}` (seed 001), the page number
/// (`null` when reached through a cursor), and the cursor of the next page.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReferralList {
    pub count: u64,
    pub pages: u64,
    pub page: Option<u64>,
    pub results: Vec<ReferralLine>,
    pub next_cursor: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReferralLine {
    pub referral_id: String,
    pub user_id: String,
    pub email: Option<String>,
    pub program_id: String,
    pub status: ReferralStatus,
    pub invitation_method: InvitationMethod,
    pub commission_rate: Option<f64>,
    /// Cash the promoter earned through this referral, minor units.
    pub commission_amount: i64,
    pub commission_status: Option<crate::domain::ledger::RewardStatus>,
    #[serde(with = "rfc3339")]
    pub created: OffsetDateTime,
}

/// Query of the referral list: `?page=` (1-based) or `?cursor=` (from `next_cursor`), and
/// `?page_size=` (default 50, at most 200).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ReferralListQuery {
    pub page: Option<String>,
    pub page_size: Option<String>,
    pub cursor: Option<String>,
}

/// How far `?page=` reaches: pages past this many referrals are read through `next_cursor`
/// (each page number costs reading every referral before it).
pub const MAX_PAGED_REFERRALS: u64 = 2000;

/// Where a referral list starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReferralListStart {
    /// Page `n` (1-based): the referrals before it are read and skipped.
    Page(u64),
    Cursor(String),
}

impl ReferralListQuery {
    /// The start and the page size, validated.
    pub fn parse(&self) -> Result<(ReferralListStart, usize)> {
        let number =
            |field: &str, text: &Option<String>, default: u64, max: u64| match text.as_deref() {
                None | Some("") => Ok(default),
                Some(text) => text
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| {
                        Error::invalid(field, format!("must be an integer from 1 to {max}"))
                    }),
            };
        let size = number(
            "page_size",
            &self.page_size,
            REFERRALS_PAGE_SIZE as u64,
            crate::page::MAX_LIMIT as u64,
        )?;
        let start = match self.cursor.as_deref().filter(|c| !c.is_empty()) {
            Some(cursor) => ReferralListStart::Cursor(cursor.to_owned()),
            None => {
                let page = number("page", &self.page, 1, u64::MAX)?;
                if (page - 1).saturating_mul(size) >= MAX_PAGED_REFERRALS {
                    return Err(Error::invalid(
                        "page",
                        format!(
                            "pages past the first {MAX_PAGED_REFERRALS} referrals are read by \
                             following next_cursor"
                        ),
                    ));
                }
                ReferralListStart::Page(page)
            }
        };
        Ok((start, size as usize))
    }
}

/// One page of the seed-shaped list: `count` referrals in all, the page's relations (newest
/// first) with their commission's current status.
pub fn referral_list(
    count: u64,
    page: Option<u64>,
    size: usize,
    relations: &[Referral],
    commission: impl Fn(&Referral) -> Option<crate::domain::ledger::RewardStatus>,
    next_cursor: Option<String>,
) -> ReferralList {
    ReferralList {
        count,
        pages: count.div_ceil(size as u64),
        page,
        results: relations
            .iter()
            .map(|r| ReferralLine {
                referral_id: r.id.clone(),
                user_id: r.referred_user_id.clone(),
                email: r.referred_email.clone(),
                program_id: r.program_id.clone(),
                status: r.status,
                invitation_method: r.invitation_method,
                commission_rate: r.commission_rate,
                commission_amount: r.referrer_earned,
                commission_status: commission(r),
                created: r.created,
            })
            .collect(),
        next_cursor,
    }
}

// ---- Statement (seed 000) ----

/// `GET /v1/promoters/me/statement`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Statement {
    /// The currency of the seed-000 scalars: the promoter's main currency, else the currency
    /// of their first program.
    pub currency: Option<String>,
    /// What the promoter has earned as referrer in `currency`, over every program.
    pub acquired_credit: i64,
    /// Fixed referrer rewards in `currency` of open relations that have not fired yet.
    pub potential_credit: i64,
    /// Both figures for every currency of the promoter's programs.
    pub by_currency: BTreeMap<String, CurrencyStatement>,
    pub programs: Vec<ProgramStatement>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CurrencyStatement {
    pub acquired_credit: i64,
    pub potential_credit: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProgramStatement {
    pub program_id: String,
    pub program_name: String,
    pub currency: String,
    pub referrals: usize,
    pub acquired_credit: i64,
    pub potential_credit: i64,
}

/// Sums, per program the promoter has referrals in: what was acquired, and what fixed cash
/// rewards for the referrer have yet to fire (percent commissions have no fixed potential).
/// Relations of archived programs earn nothing more.
pub fn statement(programs: &[Program], referrals: &[Referral], main: Option<&str>) -> Statement {
    let mut lines: BTreeMap<&str, ProgramStatement> = BTreeMap::new();
    for referral in referrals {
        let Some(program) = programs.iter().find(|p| p.id == referral.program_id) else {
            continue;
        };
        let line = lines
            .entry(program.id.as_str())
            .or_insert_with(|| ProgramStatement {
                program_id: program.id.clone(),
                program_name: program.name.clone(),
                currency: program.currency.clone(),
                referrals: 0,
                acquired_credit: 0,
                potential_credit: 0,
            });
        line.referrals += 1;
        line.acquired_credit += referral.referrer_earned;
        if program.status == ProgramStatus::Archived {
            continue;
        }
        let terms = CodeTerms {
            referrer_amount: referral.code_referrer_amount,
            referee_amount: referral.code_referee_amount,
        };
        line.potential_credit += program
            .rewards
            .iter()
            .filter(|rule| rule.recipient == Recipient::Referrer && rule.kind == RewardKind::Cash)
            .filter(|rule| !referral.fired_rules.contains(&rule.key()))
            .filter_map(|rule| program.fixed_amount(rule, terms, referral.country.as_deref()))
            .sum::<i64>();
    }
    let programs: Vec<ProgramStatement> = lines.into_values().collect();
    let mut by_currency: BTreeMap<String, CurrencyStatement> = BTreeMap::new();
    for line in &programs {
        let sums = by_currency.entry(line.currency.clone()).or_default();
        sums.acquired_credit += line.acquired_credit;
        sums.potential_credit += line.potential_credit;
    }
    let currency = main
        .map(str::to_owned)
        .or_else(|| programs.first().map(|p| p.currency.clone()));
    let scalars = currency
        .as_deref()
        .and_then(|c| by_currency.get(c).copied())
        .unwrap_or_default();
    Statement {
        currency,
        acquired_credit: scalars.acquired_credit,
        potential_credit: scalars.potential_credit,
        by_currency,
        programs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ledger::RewardStatus;
    use crate::domain::program::Delivery;
    use time::macros::{date, datetime};

    #[test]
    fn minimum_withdrawal_is_non_negative_and_bounded() {
        assert_eq!(
            MinWithdrawal {
                min_withdrawal_balance: 0
            }
            .validated()
            .unwrap(),
            0
        );
        assert_eq!(
            MinWithdrawal {
                min_withdrawal_balance: 5000
            }
            .validated()
            .unwrap(),
            5000
        );
        assert!(
            MinWithdrawal {
                min_withdrawal_balance: -1
            }
            .validated()
            .is_err()
        );
        assert!(
            MinWithdrawal {
                min_withdrawal_balance: MAX_MIN_WITHDRAWAL + 1
            }
            .validated()
            .is_err()
        );
    }

    fn reward(
        amount: i64,
        created: OffsetDateTime,
        kind: RewardKind,
        status: RewardStatus,
    ) -> Reward {
        Reward {
            id: crate::id::new_id(),
            tenant: "acme".into(),
            user_id: "u1".into(),
            recipient: Recipient::Referrer,
            program_id: "p".into(),
            program_name: None,
            referral_id: None,
            referrer_user_id: None,
            code: None,
            kind,
            amount,
            currency: "USD".into(),
            delivery: Delivery::Payout,
            status,
            holds: Vec::new(),
            due_at: None,
            denial: None,
            invoice: None,
            reduced: 0,
            taken_back: 0,
            reverses: None,
            refund_reason: None,
            budget_bucket: None,
            counts_to_cap: false,
            reason: "each_invoice".into(),
            last_error: None,
            attempts: 0,
            created,
            updated: created,
        }
    }

    #[test]
    fn recent_earnings_are_seven_zero_filled_utc_days_oldest_first() {
        let today = date!(2026 - 11 - 23); // a Monday
        let rewards = [
            reward(
                500,
                datetime!(2026-11-23 23:59:59 UTC),
                RewardKind::Cash,
                RewardStatus::Credited,
            ),
            reward(
                250,
                datetime!(2026-11-23 00:00 UTC),
                RewardKind::Cash,
                RewardStatus::Pending,
            ),
            reward(
                300,
                datetime!(2026-11-20 12:00 UTC),
                RewardKind::Cash,
                RewardStatus::Held,
            ),
            reward(
                100,
                datetime!(2026-11-17 00:00 UTC),
                RewardKind::Cash,
                RewardStatus::Credited,
            ),
            reward(
                999,
                datetime!(2026-11-16 23:59:59 UTC),
                RewardKind::Cash,
                RewardStatus::Credited,
            ),
            reward(
                777,
                datetime!(2026-11-21 10:00 UTC),
                RewardKind::Points,
                RewardStatus::Credited,
            ),
            reward(
                888,
                datetime!(2026-11-21 10:00 UTC),
                RewardKind::Cash,
                RewardStatus::Reversed,
            ),
        ];
        let mut euros = reward(
            40,
            datetime!(2026-11-22 09:00 UTC),
            RewardKind::Cash,
            RewardStatus::Credited,
        );
        euros.currency = "EUR".into();
        let mut rewards = rewards.to_vec();
        rewards.push(euros);
        let days = recent_earnings(today, &rewards, Some("USD"));
        assert_eq!(
            days[5].values,
            BTreeMap::from([("EUR".to_owned(), 40), ("USD".to_owned(), 0)]),
            "each currency apart"
        );
        assert_eq!(days[5].value, 0, "the main currency's");
        let got: Vec<(&str, &str, i64)> = days
            .iter()
            .map(|d| (d.day.as_str(), d.date.as_str(), d.value))
            .collect();
        assert_eq!(
            got,
            [
                ("Tue", "2026-11-17", 100),
                ("Wed", "2026-11-18", 0),
                ("Thu", "2026-11-19", 0),
                ("Fri", "2026-11-20", 300),
                ("Sat", "2026-11-21", 0),
                ("Sun", "2026-11-22", 0),
                ("Mon", "2026-11-23", 750),
            ]
        );
        assert_eq!(recent_window_start(today), datetime!(2026-11-17 00:00 UTC));
    }

    fn referral(i: usize, program: &str, earned: i64, fired: &[&str]) -> Referral {
        let now = datetime!(2026-11-01 00:00 UTC);
        Referral {
            id: format!("r{i:03}"),
            tenant: "acme".into(),
            program_id: program.into(),
            code: Some("CODE2345".into()),
            code_referrer_amount: None,
            code_referee_amount: None,
            referrer_user_id: "u1".into(),
            referrer_promoter_code: "CODE2345".into(),
            referred_user_id: format!("friend-{i}"),
            referred_email: None,
            country: None,
            invitation_method: InvitationMethod::Code,
            status: ReferralStatus::Signup,
            paid_total: 0,
            referrer_earned: earned,
            commission_rate: None,
            commission_status: None,
            commission_reward_id: None,
            verified: false,
            redeemed_at: None,
            version: 1,
            fired_rules: fired.iter().map(|s| s.to_string()).collect(),
            flags: Vec::new(),
            invoice_counts: Default::default(),
            created: now,
            updated: now,
        }
    }

    #[test]
    fn referral_pages_follow_the_seed_shape() {
        let page: Vec<Referral> = (0..50).map(|i| referral(i, "p", 0, &[])).collect();
        let first = referral_list(120, Some(1), 50, &page, |_| None, Some("next".into()));
        assert_eq!(
            (first.count, first.pages, first.results.len()),
            (120, 3, 50)
        );
        assert_eq!(referral_list(0, Some(1), 50, &[], |_| None, None).pages, 0);
        let query = |page: &str, size: &str| ReferralListQuery {
            page: Some(page.into()),
            page_size: Some(size.into()),
            cursor: None,
        };
        assert_eq!(
            query("3", "50").parse().unwrap(),
            (ReferralListStart::Page(3), 50)
        );
        assert!(query("41", "50").parse().is_err(), "past 2000 referrals");
        assert!(query("0", "50").parse().is_err());
        assert!(query("1", "201").parse().is_err());
    }

    #[test]
    fn statements_sum_acquired_and_unfired_fixed_referrer_rewards() {
        let input: crate::domain::program::ProgramInput = crate::json::parse(
            serde_json::json!({"name": "P", "currency": "USD", "rewards": [
                {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1000},
                {"recipient": "referrer", "trigger": "signup", "kind": "cash", "amount": 300},
                {"recipient": "referrer", "trigger": "paid_threshold", "threshold_amount": 5000, "kind": "cash", "amount": 2500},
                {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "percent": 10},
                {"recipient": "referrer", "trigger": "verified", "kind": "points", "amount": 50}
            ]})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let program =
            Program::create("p".into(), "acme", &input, datetime!(2026-11-01 00:00 UTC)).unwrap();
        let referrals = [
            referral(1, "p", 300, &["referrer.signup"]),
            referral(
                2,
                "p",
                2800,
                &["referrer.signup", "referrer.paid_threshold.5000"],
            ),
            referral(3, "other-tenant-program", 999, &[]),
        ];
        let statement = statement(std::slice::from_ref(&program), &referrals, None);
        assert_eq!(statement.currency.as_deref(), Some("USD"));
        assert_eq!(
            statement.by_currency["USD"],
            CurrencyStatement {
                acquired_credit: 3100,
                potential_credit: 2500
            }
        );
        assert_eq!(statement.programs.len(), 1);
        let line = &statement.programs[0];
        assert_eq!(
            (line.referrals, line.acquired_credit, line.potential_credit),
            (2, 3100, 2500)
        );
        assert_eq!(
            (statement.acquired_credit, statement.potential_credit),
            (3100, 2500)
        );
    }

    #[test]
    fn views_build_referral_links() {
        let promoter = Promoter::new(
            "acme",
            "u1",
            "ABCD2345".into(),
            datetime!(2026-11-01 00:00 UTC),
        );
        let view = promoter.view("https://refer.example.com/");
        assert_eq!(view.referral_link, "https://refer.example.com/r/ABCD2345");
        assert_eq!(view.min_withdrawal_balance, DEFAULT_MIN_WITHDRAWAL);
    }
}
