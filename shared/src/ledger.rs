//! Money that moved or will move: rewards (ledger entries, append-only) and payouts.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::clock::rfc3339;
use crate::program::{Delivery, Recipient, RewardKind};

/// Where a reward is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardStatus {
    /// Earned but waiting: for the referred user's identity check, or for the referrer's
    /// `min_referrals`.
    Held,
    /// To be sent to the billing system (delivery `billing_credit`).
    Pending,
    /// Delivered: credited by billing, or added to the promoter's balance (delivery `payout`).
    Credited,
    /// Billing refused it, or retries ran out; see `last_error`.
    Failed,
    /// Taken back.
    Reversed,
}

impl RewardStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RewardStatus::Held => "held",
            RewardStatus::Pending => "pending",
            RewardStatus::Credited => "credited",
            RewardStatus::Failed => "failed",
            RewardStatus::Reversed => "reversed",
        }
    }
}

/// One ledger entry: `amount` of `kind` for `user_id`. Its id is deterministic per source
/// event (relation and rule, invoice event), so a replayed event cannot pay twice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reward {
    pub id: String,
    pub tenant: String,
    /// The recipient.
    pub user_id: String,
    pub recipient: Recipient,
    pub program_id: String,
    /// The program's name when the reward was earned (for the billing system).
    #[serde(default)]
    pub program_name: Option<String>,
    pub referral_id: Option<String>,
    /// The relation's referrer (seed 000's `user_indicator_hash`).
    #[serde(default)]
    pub referrer_user_id: Option<String>,
    pub code: Option<String>,
    pub kind: RewardKind,
    /// Minor units (cash) or points.
    pub amount: i64,
    pub currency: String,
    pub delivery: Delivery,
    pub status: RewardStatus,
    /// What a `held` reward waits for.
    pub holds: Vec<crate::rules::Hold>,
    /// Why: the trigger (`signup`, `verified`, `paid_threshold`, `each_invoice`) or
    /// `completed_by_admin`.
    pub reason: String,
    /// Why the last delivery attempt failed, if it did.
    pub last_error: Option<String>,
    /// Delivery attempts to the billing system so far.
    #[serde(default)]
    pub attempts: u32,
    #[serde(with = "rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "rfc3339")]
    pub updated: OffsetDateTime,
}

/// How a reward moves its recipient's promoter balances.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BalanceEffect {
    pub total_earned: i64,
    pub current_balance: i64,
    pub points_earned: i64,
}

impl Reward {
    /// Counts towards a promoter's earnings: cash, not taken back.
    pub fn is_cash_earning(&self) -> bool {
        self.kind == RewardKind::Cash && self.status != RewardStatus::Reversed
    }

    /// Cash counts in `total_earned` whatever its delivery; only credited `payout` rewards are
    /// withdrawable `current_balance` (held ones join it when released); points count apart.
    pub fn balance_effect(&self) -> BalanceEffect {
        if self.status == RewardStatus::Reversed {
            return BalanceEffect::default();
        }
        match self.kind {
            RewardKind::Points => BalanceEffect {
                points_earned: self.amount,
                ..BalanceEffect::default()
            },
            RewardKind::Cash => BalanceEffect {
                total_earned: self.amount,
                current_balance: if self.delivery == Delivery::Payout
                    && self.status == RewardStatus::Credited
                {
                    self.amount
                } else {
                    0
                },
                points_earned: 0,
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayoutStatus {
    /// The promoter withdrew their balance; the tenant has not paid it yet.
    Requested,
    /// The tenant paid it (`POST /v1/payouts/{id}/paid`).
    Paid,
}

impl PayoutStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PayoutStatus::Requested => "requested",
            PayoutStatus::Paid => "paid",
        }
    }
}

/// A withdrawal of a promoter's whole `current_balance`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Payout {
    pub id: String,
    pub tenant: String,
    pub user_id: String,
    /// The promoter's primary code: the key of the promoter item.
    pub promoter_code: String,
    pub amount: i64,
    pub currency: String,
    pub status: PayoutStatus,
    /// Where the money goes, as set when it was requested.
    pub payout_method: crate::promoter::PayoutMethod,
    #[serde(with = "rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "rfc3339::option")]
    pub paid_at: Option<OffsetDateTime>,
}
