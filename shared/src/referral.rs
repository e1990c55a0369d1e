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
    /// Keys of the reward rules that have fired for this relation ([`crate::program::RewardRule::key`]).
    pub fired_rules: Vec<String>,
    #[serde(with = "rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "rfc3339")]
    pub updated: OffsetDateTime,
}
