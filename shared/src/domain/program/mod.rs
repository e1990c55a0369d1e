//! Referral programs: who gets what, and when (seeds 000, 001, 002, 003).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use crate::clock::rfc3339;
use crate::error::{Error, Result};
pub mod manage;

pub use manage::*;

use crate::domain::money::{MAX_AMOUNT, POINTS, validate_currency};

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_MESSAGE_CHARS: usize = 2000;
/// The longest holding period, in days.
pub const MAX_HOLD_DAYS: u32 = 365;

/// The longest clawback window (refunds take threshold rewards back within it), in days.
pub const MAX_CLAWBACK_DAYS: u32 = 365;
/// Refunds take threshold rewards back within this many days unless the program says.
pub const DEFAULT_CLAWBACK_DAYS: u32 = 60;

fn default_clawback_days() -> u32 {
    DEFAULT_CLAWBACK_DAYS
}

/// What a program's `budget` is per: its whole life, or each calendar month (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BudgetPeriod {
    #[default]
    Total,
    Month,
}

/// Fraud rules a program enables: each holds the rewards it flags with its own reason, for an
/// admin to approve (`POST /v1/rewards/{id}/approve`) or deny.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FraudRules {
    /// The referred email is the referrer's own mailbox (but for a `+tag`, or dots at Gmail).
    #[serde(default)]
    pub same_mailbox: bool,
    /// The referred email's domain is a disposable-mail one.
    #[serde(default)]
    pub disposable_email: bool,
    /// Another promoter of the tenant has the referrer's payout address.
    #[serde(default)]
    pub duplicate_payout_address: bool,
    /// More than `max_signups` sign-ups through the referrer within `within_minutes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub velocity: Option<Velocity>,
    /// The sign-up's `ip` or `device_id` is one the referrer used recently.
    #[serde(default)]
    pub same_device: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Velocity {
    pub max_signups: u32,
    pub within_minutes: u32,
}

/// The widest velocity window, in minutes (a week).
pub const MAX_VELOCITY_MINUTES: u32 = 10_080;

/// The largest `max_referrals` / `min_referrals`.
pub const MAX_REFERRAL_LIMIT: i64 = 1_000_000;
pub const MAX_RULES: usize = 20;
pub const MAX_COUNTRY_OVERRIDES: usize = 250;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgramStatus {
    Active,
    Paused,
    /// No new referrals; history stays. Reached through `DELETE` only.
    Archived,
}

impl ProgramStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProgramStatus::Active => "active",
            ProgramStatus::Paused => "paused",
            ProgramStatus::Archived => "archived",
        }
    }
}

/// Who the program is for (seed 003's `referral_for`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    #[default]
    Customer,
    Agent,
    Merchant,
}

/// Whether rewards pay once due (`automatic`) or wait for an admin's approval (`manual`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    #[default]
    Automatic,
    Manual,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipient {
    Referrer,
    Referee,
}

/// The event a reward rule fires on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The referred user signs up through the referrer (seed 000's `credit_value`).
    Signup,
    /// The referred user passes the identity check (seed 002).
    Verified,
    /// The referred user's paid total reaches `threshold_amount`, once (seed 000's
    /// `target_value`).
    PaidThreshold,
    /// Every invoice the referred user pays (seed 001's commissions).
    EachInvoice,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardKind {
    Cash,
    Points,
}

/// How a reward reaches its recipient; one way only, never both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Sent to the company's billing system as account credit (seeds 000, 003, 004).
    #[default]
    BillingCredit,
    /// Added to the promoter's `current_balance`, which leaves through payouts (seeds 001, 002).
    Payout,
}

/// One reward rule: `recipient` gets a fixed `amount` or a `percent` of an invoice when
/// `trigger` fires.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardRule {
    pub recipient: Recipient,
    pub trigger: Trigger,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_amount: Option<i64>,
    pub kind: RewardKind,
    /// Fixed reward in minor units (cash) or points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    /// Percentage of each invoice (`15.0` = 15 %), for `each_invoice` rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    #[serde(default)]
    pub delivery: Delivery,
    /// `each_invoice` only: at most this many invoices of a relation pay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_invoices: Option<u32>,
    /// `each_invoice` only: invoices pay for this many months after the relation began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_months: Option<u32>,
}

/// The most invoices / months an `each_invoice` rule may be limited to.
pub const MAX_INVOICES: u32 = 1000;
pub const MAX_MONTHS: u32 = 120;

/// Fixed sign-up amounts for users of one country (seed 002's country bonus overrides). An
/// absent side keeps the rule's amount; `0` means nothing for that side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountryOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referee_amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer_amount: Option<i64>,
}

/// A referral program, as stored and as answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Program {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub message: Option<String>,
    pub status: ProgramStatus,
    pub audience: Audience,
    /// ISO 4217 code, or `POINTS` for a points-only program.
    pub currency: String,
    #[serde(with = "rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Referrals allowed per code; 0 = unlimited.
    pub max_referrals: u32,
    /// A referrer's rewards are held until they have this many qualified referrals.
    pub min_referrals: u32,
    /// Rewards wait for the referred user's identity check.
    pub requires_verification: bool,
    /// Rewards are `held` (`holding_period`) this many days after they are earned, then become
    /// `pending` or `credited` (released by the scheduled reconciler); 0: none.
    #[serde(default)]
    pub hold_days: u32,
    /// `manual`: every reward also waits (`awaiting_approval`) for an admin to approve or deny it.
    #[serde(default)]
    pub approval: Approval,
    /// A refund takes back a `paid_threshold` reward earned this many days ago or less when it
    /// brings the paid total below the threshold; 0: never.
    #[serde(default = "default_clawback_days")]
    pub clawback_days: u32,
    /// The most the program pays in its currency (minor units) per `budget_period`; beyond
    /// it rewards are held (`budget_exhausted`) for an admin. `None`: no limit.
    #[serde(default)]
    pub budget: Option<i64>,
    #[serde(default)]
    pub budget_period: BudgetPeriod,
    /// The most one referrer earns in the program in its currency (minor units); beyond it
    /// their rewards are held (`earnings_cap_reached`). `None`: no limit.
    #[serde(default)]
    pub max_earnings_per_promoter: Option<i64>,
    /// The fraud rules it enables.
    #[serde(default)]
    pub fraud: FraudRules,
    pub country_overrides: BTreeMap<String, CountryOverride>,
    pub rewards: Vec<RewardRule>,
    /// The program has relations: its currency is frozen (their rewards are in it). Set by the
    /// first sign-up, in its transaction.
    #[serde(default)]
    pub has_relations: bool,
    /// Incremented by every change; updates are conditional on it.
    pub version: u64,
    #[serde(with = "rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "rfc3339")]
    pub updated: OffsetDateTime,
}

/// The body of `POST /v1/programs` and `PATCH /v1/programs/{id}`: on create `name` and
/// `currency` are required and the rest has defaults; on update every field is optional and
/// only the fields present change (`message` and `expires_at` may be `null` to clear them).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramInput {
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub message: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub status: Option<ProgramStatus>,
    #[serde(default, deserialize_with = "present")]
    pub audience: Option<Audience>,
    #[serde(default, deserialize_with = "present")]
    pub currency: Option<String>,
    #[serde(default, deserialize_with = "rfc3339::patch::deserialize")]
    pub expires_at: Option<Option<OffsetDateTime>>,
    #[serde(default, deserialize_with = "present")]
    pub max_referrals: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    pub min_referrals: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    pub requires_verification: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub hold_days: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    pub approval: Option<Approval>,
    #[serde(default, deserialize_with = "present")]
    pub clawback_days: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    pub budget: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    pub budget_period: Option<BudgetPeriod>,
    #[serde(default, deserialize_with = "nullable")]
    pub max_earnings_per_promoter: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    pub fraud: Option<FraudRules>,
    #[serde(default, deserialize_with = "present")]
    pub country_overrides: Option<BTreeMap<String, CountryOverride>>,
    #[serde(default, deserialize_with = "present")]
    pub rewards: Option<Vec<RewardRule>>,
}

/// A field that may be absent but, when present, must not be `null`.
pub(crate) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value.
pub(crate) fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl ProgramInput {
    fn is_empty(&self) -> bool {
        let ProgramInput {
            name,
            message,
            status,
            audience,
            currency,
            expires_at,
            max_referrals,
            min_referrals,
            requires_verification,
            hold_days,
            approval,
            clawback_days,
            budget,
            budget_period,
            max_earnings_per_promoter,
            fraud,
            country_overrides,
            rewards,
        } = self;
        name.is_none()
            && message.is_none()
            && status.is_none()
            && audience.is_none()
            && currency.is_none()
            && expires_at.is_none()
            && max_referrals.is_none()
            && min_referrals.is_none()
            && requires_verification.is_none()
            && hold_days.is_none()
            && approval.is_none()
            && clawback_days.is_none()
            && budget.is_none()
            && budget_period.is_none()
            && max_earnings_per_promoter.is_none()
            && fraud.is_none()
            && country_overrides.is_none()
            && rewards.is_none()
    }
}

impl Program {
    /// A new program from a create request; validated.
    pub fn create(
        id: String,
        tenant: &str,
        input: &ProgramInput,
        now: OffsetDateTime,
    ) -> Result<Program> {
        let name = input
            .name
            .clone()
            .ok_or_else(|| Error::invalid("name", "is required"))?;
        let currency = input.currency.clone().ok_or_else(|| {
            Error::invalid(
                "currency",
                "is required (ISO 4217 code or POINTS) unless the tenant has a default_currency",
            )
        })?;
        let blank = Program {
            id,
            tenant: tenant.to_owned(),
            name,
            message: None,
            status: ProgramStatus::Active,
            audience: Audience::default(),
            currency,
            expires_at: None,
            max_referrals: 0,
            min_referrals: 0,
            requires_verification: false,
            hold_days: 0,
            approval: Approval::Automatic,
            clawback_days: DEFAULT_CLAWBACK_DAYS,
            budget: None,
            budget_period: BudgetPeriod::Total,
            max_earnings_per_promoter: None,
            fraud: FraudRules::default(),
            country_overrides: BTreeMap::new(),
            rewards: Vec::new(),
            has_relations: false,
            version: 1,
            created: now,
            updated: now,
        };
        blank.apply(input, now)
    }

    /// This program with `input`'s fields changed, its version bumped; validated.
    pub fn patched(&self, input: &ProgramInput, now: OffsetDateTime) -> Result<Program> {
        if self.status == ProgramStatus::Archived {
            return Err(Error::Conflict(
                "the program is archived and can no longer change".into(),
            ));
        }
        let mut next = self.apply(input, now)?;
        next.version = self.version + 1;
        next.updated = now;
        Ok(next)
    }

    fn apply(&self, input: &ProgramInput, now: OffsetDateTime) -> Result<Program> {
        let mut next = self.clone();
        if let Some(name) = &input.name {
            next.name = name.trim().to_owned();
        }
        if let Some(message) = &input.message {
            next.message = message.clone();
        }
        if let Some(status) = input.status {
            if status == ProgramStatus::Archived {
                return Err(Error::invalid(
                    "status",
                    "must be active or paused; archive a program with DELETE",
                ));
            }
            next.status = status;
        }
        if let Some(audience) = input.audience {
            next.audience = audience;
        }
        if let Some(currency) = &input.currency
            && *currency != next.currency
        {
            if self.has_relations {
                return Err(Error::Conflict(
                    "the program has referrals: its currency can no longer change".into(),
                ));
            }
            next.currency = currency.clone();
        }
        if let Some(expires_at) = input.expires_at {
            if expires_at.is_some_and(|at| at <= now) {
                return Err(Error::invalid("expires_at", "must be in the future"));
            }
            next.expires_at = expires_at;
        }
        if let Some(max) = input.max_referrals {
            next.max_referrals = referral_limit("max_referrals", max)?;
        }
        if let Some(min) = input.min_referrals {
            next.min_referrals = referral_limit("min_referrals", min)?;
        }
        if let Some(required) = input.requires_verification {
            next.requires_verification = required;
        }
        if let Some(days) = input.hold_days {
            next.hold_days = u32::try_from(days)
                .ok()
                .filter(|days| *days <= MAX_HOLD_DAYS)
                .ok_or_else(|| {
                    Error::invalid("hold_days", format!("must be 0 to {MAX_HOLD_DAYS}"))
                })?;
        }
        if let Some(approval) = input.approval {
            next.approval = approval;
        }
        if let Some(days) = input.clawback_days {
            next.clawback_days = u32::try_from(days)
                .ok()
                .filter(|days| *days <= MAX_CLAWBACK_DAYS)
                .ok_or_else(|| {
                    Error::invalid("clawback_days", format!("must be 0 to {MAX_CLAWBACK_DAYS}"))
                })?;
        }
        if let Some(budget) = input.budget {
            if let Some(amount) = budget {
                amount_in_range("budget", amount, 1)?;
            }
            next.budget = budget;
        }
        if let Some(period) = input.budget_period {
            next.budget_period = period;
        }
        if let Some(fraud) = &input.fraud {
            if let Some(velocity) = fraud.velocity
                && (velocity.max_signups == 0
                    || velocity.within_minutes == 0
                    || velocity.within_minutes > MAX_VELOCITY_MINUTES)
            {
                return Err(Error::invalid(
                    "fraud.velocity",
                    format!(
                        "needs max_signups of at least 1 and within_minutes of 1 to {MAX_VELOCITY_MINUTES}"
                    ),
                ));
            }
            next.fraud = fraud.clone();
        }
        if let Some(cap) = input.max_earnings_per_promoter {
            if let Some(amount) = cap {
                amount_in_range("max_earnings_per_promoter", amount, 1)?;
            }
            next.max_earnings_per_promoter = cap;
        }
        if let Some(overrides) = &input.country_overrides {
            next.country_overrides = overrides.clone();
        }
        if let Some(rewards) = &input.rewards {
            next.rewards = rewards.clone();
        }
        next.validate()?;
        Ok(next)
    }

    /// Checks every invariant of a program; the error names the first offending field.
    pub fn validate(&self) -> Result<()> {
        let name_chars = self.name.chars().count();
        if self.name.trim().is_empty() {
            return Err(Error::invalid("name", "must not be empty"));
        }
        if name_chars > MAX_NAME_CHARS {
            return Err(Error::invalid(
                "name",
                format!("must be at most {MAX_NAME_CHARS} characters"),
            ));
        }
        if self.name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "name",
                "must not contain control characters",
            ));
        }
        if let Some(message) = &self.message
            && message.chars().count() > MAX_MESSAGE_CHARS
        {
            return Err(Error::invalid(
                "message",
                format!("must be at most {MAX_MESSAGE_CHARS} characters"),
            ));
        }
        validate_currency(&self.currency)?;
        if self.max_referrals > 0 && self.min_referrals > self.max_referrals {
            return Err(Error::invalid(
                "min_referrals",
                "must not exceed max_referrals (unless max_referrals is 0, unlimited)",
            ));
        }
        if self.country_overrides.len() > MAX_COUNTRY_OVERRIDES {
            return Err(Error::invalid(
                "country_overrides",
                format!("at most {MAX_COUNTRY_OVERRIDES} countries"),
            ));
        }
        for (country, values) in &self.country_overrides {
            let field = format!("country_overrides.{country}");
            if !is_country_code(country) {
                return Err(Error::invalid(
                    field,
                    "is not an ISO 3166-1 alpha-2 country code in upper case, such as BR",
                ));
            }
            if values.referee_amount.is_none() && values.referrer_amount.is_none() {
                return Err(Error::invalid(
                    field,
                    "needs referee_amount, referrer_amount or both",
                ));
            }
            for (side, amount) in [
                ("referee_amount", values.referee_amount),
                ("referrer_amount", values.referrer_amount),
            ] {
                if let Some(amount) = amount {
                    amount_in_range(&format!("{field}.{side}"), amount, 0)?;
                }
            }
        }
        if self.rewards.len() > MAX_RULES {
            return Err(Error::invalid(
                "rewards",
                format!("at most {MAX_RULES} rules"),
            ));
        }
        for (index, rule) in self.rewards.iter().enumerate() {
            let at = format!("rewards[{index}]");
            rule.validate(&at, &self.currency)?;
            if let Some(first) = self.rewards[..index]
                .iter()
                .position(|r| r.key() == rule.key())
            {
                return Err(Error::invalid(
                    at,
                    format!(
                        "pays the same recipient, on the same trigger and threshold, the same kind \
                         as rewards[{first}]: merge them into one rule"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A code's own sign-up amounts (seed 002), which replace the program's for that code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CodeTerms {
    pub referrer_amount: Option<i64>,
    pub referee_amount: Option<i64>,
}

impl Recipient {
    pub fn as_str(self) -> &'static str {
        match self {
            Recipient::Referrer => "referrer",
            Recipient::Referee => "referee",
        }
    }
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Signup => "signup",
            Trigger::Verified => "verified",
            Trigger::PaidThreshold => "paid_threshold",
            Trigger::EachInvoice => "each_invoice",
        }
    }
}

impl Program {
    /// The fixed amount `rule` pays: its `amount`, where a sign-up rule takes the code's own
    /// amount for that side and then the country's override (seed 002). `None` for percent rules.
    pub fn fixed_amount(
        &self,
        rule: &RewardRule,
        code: CodeTerms,
        country: Option<&str>,
    ) -> Option<i64> {
        let base = rule.amount?;
        if rule.trigger != Trigger::Signup {
            return Some(base);
        }
        let override_for =
            |terms_referrer: Option<i64>, terms_referee: Option<i64>| match rule.recipient {
                Recipient::Referrer => terms_referrer,
                Recipient::Referee => terms_referee,
            };
        let with_code = override_for(code.referrer_amount, code.referee_amount).unwrap_or(base);
        let by_country = country
            .and_then(|country| self.country_overrides.get(country))
            .and_then(|o| override_for(o.referrer_amount, o.referee_amount));
        Some(by_country.unwrap_or(with_code))
    }

    /// The percent of each invoice the program pays referrers, if it has such a rule (seed 001's
    /// commission; a promoter's own rate replaces it).
    pub fn referrer_percent(&self) -> Option<f64> {
        self.rewards
            .iter()
            .find(|r| r.recipient == Recipient::Referrer && r.trigger == Trigger::EachInvoice)
            .and_then(|r| r.percent)
    }

    /// Open to new referrals at `now`: active and not expired.
    pub fn is_open(&self, now: OffsetDateTime) -> bool {
        self.status == ProgramStatus::Active && self.expires_at.is_none_or(|at| at > now)
    }
}

impl RewardRule {
    /// A stable name of this rule within its program (`referrer.paid_threshold.5000`, and
    /// `referee.signup.points` for a points rule beside a cash one): it keys what has fired for
    /// a relation and the ids of the rewards it produced, so no two rules of a program share it.
    pub fn key(&self) -> String {
        let mut key = format!("{}.{}", self.recipient.as_str(), self.trigger.as_str());
        if let Some(threshold) = self.threshold_amount {
            key.push_str(&format!(".{threshold}"));
        }
        if self.kind == RewardKind::Points {
            key.push_str(".points");
        }
        key
    }

    fn validate(&self, at: &str, currency: &str) -> Result<()> {
        match (self.amount, self.percent) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(Error::invalid(at, "needs exactly one of amount or percent"));
            }
            (Some(amount), None) => amount_in_range(&format!("{at}.amount"), amount, 1)?,
            (None, Some(percent)) => {
                if !(percent.is_finite() && percent > 0.0 && percent <= 100.0) {
                    return Err(Error::invalid(
                        format!("{at}.percent"),
                        "must be greater than 0 and at most 100",
                    ));
                }
                if self.trigger != Trigger::EachInvoice {
                    return Err(Error::invalid(
                        format!("{at}.percent"),
                        "is only allowed with the each_invoice trigger; use amount",
                    ));
                }
            }
        }
        match (self.trigger, self.threshold_amount) {
            (Trigger::PaidThreshold, Some(threshold)) => {
                amount_in_range(&format!("{at}.threshold_amount"), threshold, 1)?
            }
            (Trigger::PaidThreshold, None) => {
                return Err(Error::invalid(
                    format!("{at}.threshold_amount"),
                    "is required and must be positive for the paid_threshold trigger",
                ));
            }
            (_, Some(_)) => {
                return Err(Error::invalid(
                    format!("{at}.threshold_amount"),
                    "is only allowed with the paid_threshold trigger",
                ));
            }
            (_, None) => {}
        }
        for (field, value, most) in [
            ("max_invoices", self.max_invoices, MAX_INVOICES),
            ("max_months", self.max_months, MAX_MONTHS),
        ] {
            match value {
                Some(_) if self.trigger != Trigger::EachInvoice => {
                    return Err(Error::invalid(
                        format!("{at}.{field}"),
                        "is only allowed with the each_invoice trigger",
                    ));
                }
                Some(value) if value == 0 || value > most => {
                    return Err(Error::invalid(
                        format!("{at}.{field}"),
                        format!("must be 1 to {most}"),
                    ));
                }
                _ => {}
            }
        }
        if currency == POINTS
            && matches!(self.trigger, Trigger::PaidThreshold | Trigger::EachInvoice)
        {
            return Err(Error::invalid(
                format!("{at}.trigger"),
                "invoices are counted in a money currency: a POINTS program has no paid \
                 threshold or invoice rules; give points from a program in the invoices' currency",
            ));
        }
        if self.kind == RewardKind::Cash && currency == POINTS {
            return Err(Error::invalid(
                format!("{at}.kind"),
                "cash rewards need a money currency; this program's currency is POINTS",
            ));
        }
        Ok(())
    }
}

fn amount_in_range(field: &str, amount: i64, min: i64) -> Result<()> {
    if amount < min || amount > MAX_AMOUNT {
        let lower = if min > 0 { "positive" } else { "non-negative" };
        return Err(Error::invalid(
            field,
            format!("must be {lower} and at most {MAX_AMOUNT} (minor units)"),
        ));
    }
    Ok(())
}

fn referral_limit(field: &str, value: i64) -> Result<u32> {
    if !(0..=MAX_REFERRAL_LIMIT).contains(&value) {
        return Err(Error::invalid(
            field,
            format!("must be between 0 and {MAX_REFERRAL_LIMIT}"),
        ));
    }
    Ok(value as u32)
}

/// An ISO 3166-1 alpha-2 code, in upper case.
pub fn is_country_code(code: &str) -> bool {
    code.len() == 2
        && code.bytes().all(|b| b.is_ascii_uppercase())
        && celes::Country::from_alpha2(code).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);

    fn input(value: serde_json::Value) -> Result<ProgramInput> {
        crate::json::parse(value.to_string().as_bytes())
    }

    fn create(value: serde_json::Value) -> Result<Program> {
        Program::create(
            "01J00000000000000000000000".into(),
            "acme",
            &input(value)?,
            NOW,
        )
    }

    fn valid() -> serde_json::Value {
        json!({
            "name": "Spring launch",
            "message": "Invite a friend, both get $10",
            "currency": "USD",
            "audience": "customer",
            "expires_at": "2027-06-30T23:59:59Z",
            "max_referrals": 10,
            "min_referrals": 2,
            "requires_verification": true,
            "country_overrides": {"BR": {"referee_amount": 100, "referrer_amount": 0}},
            "rewards": [
                {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1000},
                {"recipient": "referrer", "trigger": "paid_threshold", "threshold_amount": 5000,
                 "kind": "cash", "amount": 2500, "delivery": "billing_credit"},
                {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash",
                 "percent": 15.0, "delivery": "payout"},
                {"recipient": "referee", "trigger": "verified", "kind": "points", "amount": 50}
            ]
        })
    }

    fn with(field: &str, value: serde_json::Value) -> serde_json::Value {
        let mut body = valid();
        body[field] = value;
        body
    }

    fn rule(value: serde_json::Value) -> serde_json::Value {
        with("rewards", json!([value]))
    }

    /// The field a request is refused for.
    fn refused_field(body: serde_json::Value) -> String {
        match create(body) {
            Err(Error::InvalidRequest { field, .. }) => field,
            other => panic!("expected invalid_request, got {other:?}"),
        }
    }

    #[test]
    fn a_full_program_is_created_with_its_fields() {
        let program = create(valid()).unwrap();
        assert_eq!(program.name, "Spring launch");
        assert_eq!(program.status, ProgramStatus::Active);
        assert_eq!(program.max_referrals, 10);
        assert_eq!(program.min_referrals, 2);
        assert!(program.requires_verification);
        assert_eq!(program.rewards.len(), 4);
        assert_eq!(program.rewards[0].delivery, Delivery::BillingCredit);
        assert_eq!(program.rewards[2].delivery, Delivery::Payout);
        assert_eq!(program.country_overrides["BR"].referee_amount, Some(100));
        assert_eq!(program.version, 1);
        assert_eq!(program.created, NOW);
    }

    #[test]
    fn defaults_apply_to_a_minimal_program() {
        let program = create(json!({"name": "Minimal", "currency": "EUR"})).unwrap();
        assert_eq!(program.audience, Audience::Customer);
        assert_eq!(program.status, ProgramStatus::Active);
        assert_eq!((program.max_referrals, program.min_referrals), (0, 0));
        assert!(program.rewards.is_empty() && program.country_overrides.is_empty());
        assert_eq!(program.expires_at, None);
    }

    #[test]
    fn names_are_required_trimmed_and_bounded() {
        assert_eq!(refused_field(with("name", json!(""))), "name");
        assert_eq!(refused_field(with("name", json!("   "))), "name");
        assert_eq!(refused_field(with("name", json!("x".repeat(101)))), "name");
        assert_eq!(refused_field(with("name", json!("a\u{0}b"))), "name");
        assert_eq!(refused_field(json!({"currency": "USD"})), "name");
        assert!(create(with("name", json!("é".repeat(100)))).is_ok());
        assert_eq!(
            create(with("name", json!("  Padded "))).unwrap().name,
            "Padded"
        );
    }

    #[test]
    fn unknown_enum_values_and_wrong_types_name_the_field() {
        assert_eq!(refused_field(with("audience", json!("robot"))), "audience");
        assert_eq!(refused_field(with("status", json!("deleted"))), "status");
        assert_eq!(refused_field(with("status", json!("archived"))), "status");
        assert_eq!(
            refused_field(with("max_referrals", json!("ten"))),
            "max_referrals"
        );
        assert_eq!(
            refused_field(with("requires_verification", json!(1))),
            "requires_verification"
        );
        assert_eq!(refused_field(with("name", json!(null))), "name");
        assert_eq!(
            refused_field(with("expires_at", json!("tomorrow"))),
            "expires_at"
        );
        assert_eq!(
            refused_field(rule(
                json!({"recipient": "friend", "trigger": "signup", "kind": "cash", "amount": 1})
            )),
            "rewards[0].recipient"
        );
        assert_eq!(
            refused_field(rule(
                json!({"recipient": "referee", "trigger": "signup", "kind": "gold", "amount": 1})
            )),
            "rewards[0].kind"
        );
        assert_eq!(
            refused_field(rule(
                json!({"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1, "delivery": "mail"})
            )),
            "rewards[0].delivery"
        );
        assert_eq!(
            refused_field(rule(
                json!({"recipient": "referee", "trigger": "login", "kind": "cash", "amount": 1})
            )),
            "rewards[0].trigger"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let error = create(with("credit_value", json!(5))).unwrap_err();
        assert_eq!(error.code(), "invalid_request");
        assert!(error.to_string().contains("credit_value"), "{error}");
    }

    #[test]
    fn currencies_are_iso_4217_or_points() {
        for bad in ["usd", "US", "USDD", "U$D", "", "ABC", "points"] {
            assert_eq!(
                refused_field(with("currency", json!(bad))),
                "currency",
                "{bad}"
            );
        }
        for good in ["USD", "EUR", "BRL", "JPY"] {
            assert!(create(with("currency", json!(good))).is_ok(), "{good}");
        }
        let points = json!({"name": "Points", "currency": "POINTS", "rewards": [
            {"recipient": "referrer", "trigger": "signup", "kind": "points", "amount": 100}]});
        assert!(create(points.clone()).is_ok());
        let mut cash_in_points = points;
        cash_in_points["rewards"][0]["kind"] = json!("cash");
        assert_eq!(refused_field(cash_in_points), "rewards[0].kind");
    }

    #[test]
    fn amounts_must_be_positive_and_bounded() {
        let base = json!({"recipient": "referee", "trigger": "signup", "kind": "cash"});
        for bad in [json!(0), json!(-1), json!(MAX_AMOUNT + 1)] {
            let mut r = base.clone();
            r["amount"] = bad;
            assert_eq!(refused_field(rule(r)), "rewards[0].amount");
        }
        let mut fractional = base.clone();
        fractional["amount"] = json!(10.5);
        assert_eq!(refused_field(rule(fractional)), "rewards[0].amount");
        assert_eq!(refused_field(rule(base.clone())), "rewards[0]");
        let mut both = base;
        both["amount"] = json!(10);
        both["percent"] = json!(10.0);
        assert_eq!(refused_field(rule(both)), "rewards[0]");
    }

    #[test]
    fn percent_is_in_zero_to_hundred_and_only_on_invoices() {
        let base = json!({"recipient": "referrer", "trigger": "each_invoice", "kind": "cash"});
        for bad in [json!(0), json!(0.0), json!(-5), json!(100.01), json!(1000)] {
            let mut r = base.clone();
            r["percent"] = bad.clone();
            assert_eq!(refused_field(rule(r)), "rewards[0].percent", "{bad}");
        }
        for good in [json!(0.5), json!(100), json!(15.0)] {
            let mut r = base.clone();
            r["percent"] = good.clone();
            assert!(create(rule(r)).is_ok(), "{good}");
        }
        let on_signup =
            json!({"recipient": "referrer", "trigger": "signup", "kind": "cash", "percent": 10});
        assert_eq!(refused_field(rule(on_signup)), "rewards[0].percent");
    }

    #[test]
    fn paid_threshold_needs_a_positive_threshold() {
        let base = json!({"recipient": "referrer", "trigger": "paid_threshold", "kind": "cash", "amount": 500});
        assert_eq!(
            refused_field(rule(base.clone())),
            "rewards[0].threshold_amount"
        );
        for bad in [json!(0), json!(-100)] {
            let mut r = base.clone();
            r["threshold_amount"] = bad;
            assert_eq!(refused_field(rule(r)), "rewards[0].threshold_amount");
        }
        let signup_with_threshold = json!({"recipient": "referee", "trigger": "signup",
            "kind": "cash", "amount": 500, "threshold_amount": 100});
        assert_eq!(
            refused_field(rule(signup_with_threshold)),
            "rewards[0].threshold_amount"
        );
    }

    #[test]
    fn country_overrides_need_real_codes_and_non_negative_amounts() {
        for bad in ["XX", "br", "BRA", "B1", "ZZ"] {
            let body = with("country_overrides", json!({bad: {"referee_amount": 100}}));
            assert_eq!(
                refused_field(body),
                format!("country_overrides.{bad}"),
                "{bad}"
            );
        }
        let negative = with("country_overrides", json!({"BR": {"referee_amount": -1}}));
        assert_eq!(
            refused_field(negative),
            "country_overrides.BR.referee_amount"
        );
        let empty = with("country_overrides", json!({"BR": {}}));
        assert_eq!(refused_field(empty), "country_overrides.BR");
        let unknown = with("country_overrides", json!({"BR": {"bonus": 1}}));
        assert_eq!(refused_field(unknown), "country_overrides.BR.bonus");
        let zero = with("country_overrides", json!({"DE": {"referrer_amount": 0}}));
        assert!(create(zero).is_ok());
    }

    #[test]
    fn min_referrals_may_not_exceed_a_positive_max() {
        let mut body = valid();
        body["max_referrals"] = json!(3);
        body["min_referrals"] = json!(4);
        assert_eq!(refused_field(body.clone()), "min_referrals");
        body["max_referrals"] = json!(0);
        assert!(create(body).is_ok(), "0 = unlimited");
        assert_eq!(
            refused_field(with("max_referrals", json!(-1))),
            "max_referrals"
        );
        assert_eq!(
            refused_field(with("min_referrals", json!(MAX_REFERRAL_LIMIT + 1))),
            "min_referrals"
        );
    }

    #[test]
    fn expiry_must_be_in_the_future() {
        assert_eq!(
            refused_field(with("expires_at", json!("2020-01-01T00:00:00Z"))),
            "expires_at"
        );
        let program = create(with("expires_at", json!("2027-01-01T01:00:00+01:00"))).unwrap();
        assert_eq!(program.expires_at, Some(datetime!(2027-01-01 00:00 UTC)));
    }

    #[test]
    fn a_patch_changes_only_what_it_names_and_bumps_the_version() {
        let program = create(valid()).unwrap();
        let later = NOW + time::Duration::minutes(5);
        let patch =
            input(json!({"status": "paused", "message": null, "max_referrals": 20})).unwrap();
        let next = program.patched(&patch, later).unwrap();
        assert_eq!(next.status, ProgramStatus::Paused);
        assert_eq!(next.message, None);
        assert_eq!(next.max_referrals, 20);
        assert_eq!(next.name, program.name);
        assert_eq!(next.rewards, program.rewards);
        assert_eq!(next.version, program.version + 1);
        assert_eq!((next.created, next.updated), (NOW, later));

        let invalid = input(json!({"min_referrals": 50})).unwrap();
        assert_eq!(
            program.patched(&invalid, later).unwrap_err().code(),
            "invalid_request"
        );
    }

    #[test]
    fn rule_keys_are_unique_in_a_program() {
        let both = create(with(
            "rewards",
            json!([
                {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1000},
                {"recipient": "referee", "trigger": "signup", "kind": "points", "amount": 50}
            ]),
        ))
        .unwrap();
        let keys: Vec<String> = both.rewards.iter().map(RewardRule::key).collect();
        assert_eq!(keys, ["referee.signup", "referee.signup.points"]);
        let twice = with(
            "rewards",
            json!([
                {"recipient": "referrer", "trigger": "paid_threshold", "threshold_amount": 10,
                 "kind": "cash", "amount": 1},
                {"recipient": "referrer", "trigger": "paid_threshold", "threshold_amount": 20,
                 "kind": "cash", "amount": 1},
                {"recipient": "referrer", "trigger": "paid_threshold", "threshold_amount": 10,
                 "kind": "cash", "amount": 5, "delivery": "payout"}
            ]),
        );
        assert_eq!(refused_field(twice), "rewards[2]");
    }

    #[test]
    fn points_programs_have_no_rules_counted_in_money() {
        for rule in [
            json!({"recipient": "referrer", "trigger": "paid_threshold", "threshold_amount": 10,
                   "kind": "points", "amount": 1}),
            json!({"recipient": "referee", "trigger": "each_invoice", "kind": "points", "percent": 1}),
        ] {
            let body = json!({"name": "Points", "currency": "POINTS", "rewards": [rule]});
            assert_eq!(refused_field(body), "rewards[0].trigger");
        }
        let signup = json!({"name": "Points", "currency": "POINTS", "rewards": [
            {"recipient": "referee", "trigger": "verified", "kind": "points", "amount": 5}]});
        assert!(create(signup).is_ok());
    }

    #[test]
    fn fixed_amounts_take_code_then_country_overrides_on_signup_only() {
        let program = create(valid()).unwrap();
        let referee_signup = &program.rewards[0];
        let threshold = &program.rewards[1];
        let percent = &program.rewards[2];
        let none = CodeTerms::default();
        let code = CodeTerms {
            referrer_amount: Some(700),
            referee_amount: Some(2500),
        };
        assert_eq!(program.fixed_amount(referee_signup, none, None), Some(1000));
        assert_eq!(program.fixed_amount(referee_signup, code, None), Some(2500));
        assert_eq!(
            program.fixed_amount(referee_signup, code, Some("BR")),
            Some(100)
        );
        assert_eq!(
            program.fixed_amount(referee_signup, none, Some("DE")),
            Some(1000)
        );
        assert_eq!(
            program.fixed_amount(threshold, code, Some("BR")),
            Some(2500)
        );
        assert_eq!(program.fixed_amount(percent, code, None), None);
        assert_eq!(threshold.key(), "referrer.paid_threshold.5000");
        assert_eq!(referee_signup.key(), "referee.signup");
    }

    #[test]
    fn programs_are_open_while_active_and_unexpired() {
        let mut program = create(valid()).unwrap();
        assert!(program.is_open(NOW));
        assert!(!program.is_open(datetime!(2027-07-01 00:00 UTC)));
        program.status = ProgramStatus::Paused;
        assert!(!program.is_open(NOW));
    }

    #[test]
    fn an_archived_program_cannot_change() {
        let mut program = create(valid()).unwrap();
        program.status = ProgramStatus::Archived;
        let patch = input(json!({"name": "Again"})).unwrap();
        assert_eq!(program.patched(&patch, NOW).unwrap_err().status(), 409);
    }

    #[test]
    fn answers_format_times_and_percentages() {
        let program = create(valid()).unwrap();
        let json = serde_json::to_value(&program).unwrap();
        assert_eq!(json["expires_at"], "2027-06-30T23:59:59.000Z");
        assert_eq!(json["rewards"][2]["percent"], 15.0);
    }
}
