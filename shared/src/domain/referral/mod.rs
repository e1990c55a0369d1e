//! Referral relations: who referred whom, in which program, through which code.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::clock::rfc3339;
use crate::domain::ledger::RewardStatus;

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
    /// Status of the latest referrer reward of this relation when it was booked; answers
    /// carry its current status (read through `commission_reward_id`).
    pub commission_status: Option<RewardStatus>,
    /// The latest referrer reward of this relation.
    #[serde(default)]
    pub commission_reward_id: Option<String>,
    /// The referred user passed the identity check.
    pub verified: bool,
    /// When an admin completed the relation (seed 004's `redeemed_date`).
    #[serde(with = "rfc3339::option")]
    pub redeemed_at: Option<OffsetDateTime>,
    /// Incremented by every change; updates are conditional on it.
    pub version: u64,
    /// Keys of the reward rules that have fired for this relation ([`crate::domain::program::RewardRule::key`]).
    pub fired_rules: Vec<String>,
    /// What fraud rules flagged at sign-up: every reward of the relation is held for them
    /// until an admin approves one (which clears them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<crate::domain::ledger::Hold>,
    /// Invoices paid per `each_invoice` rule key (its `max_invoices`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub invoice_counts: std::collections::BTreeMap<String, u32>,
    #[serde(with = "rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "rfc3339")]
    pub updated: OffsetDateTime,
}

// ---- Identifiers from requests: they end up in keys ----

use crate::domain::program;
use crate::error::{Error, Result};

pub mod booking;
pub mod completion;
pub mod events;
pub mod explain;
pub mod fraud;
pub mod refund;
pub mod signup;

pub use completion::*;
pub use events::*;
pub use refund::*;
pub use signup::*;

pub(crate) use crate::backoff::Backoff;

/// A user id from a body, a path or a query (trimmed): it ends up in keys and URLs.
pub fn user_id(field: &str, value: &str) -> Result<String> {
    let value = value.trim();
    if !crate::id::is_identifier(value) {
        return Err(Error::invalid(field, crate::id::IDENTIFIER_RULE));
    }
    Ok(value.to_owned())
}

pub(crate) fn email(field: &str, value: &str) -> Result<String> {
    crate::domain::invitation::normalize_email(value)
        .ok_or_else(|| Error::invalid(field, "must be an email address"))
}

pub(crate) fn country(value: &str) -> Result<String> {
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
pub(crate) fn event_id(value: &str) -> Result<String> {
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
