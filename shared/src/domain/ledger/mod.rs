//! Money that moved or will move: rewards (ledger entries, append-only) and payouts.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::clock::rfc3339;
use crate::domain::program::{Delivery, Recipient, RewardKind};
use crate::error::{Error, Result};

pub mod rewards;

/// The deterministic id of the reward a relation earns from `source` (a rule key, plus the
/// invoice's event id for per-invoice rules): a replayed event makes the same id again.
pub fn reward_id(referral_id: &str, source: &str) -> String {
    format!("{referral_id}.{source}")
}

/// Why a reward waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    /// The referred user's identity check is outstanding.
    Verification,
    /// The referrer has fewer qualified referrals than the program's `min_referrals`.
    MinReferrals,
    /// The program's holding period (`hold_days`) has not passed: see the reward's `due_at`.
    HoldingPeriod,
    /// The program's `approval` is `manual`: an admin approves or denies it.
    AwaitingApproval,
    /// The program's `budget` for the period was spent when it was earned: an admin releases
    /// it (after raising the budget) or denies it.
    BudgetExhausted,
    /// The referrer had earned the program's `max_earnings_per_promoter`: an admin releases it
    /// (after raising the cap) or denies it.
    EarningsCapReached,
    /// The referrer is suspended: released when an admin reactivates them (or one by one).
    PromoterSuspended,
    /// Fraud rule `same_mailbox`: the referred email is the referrer's own mailbox (the same
    /// address but for a `+tag`, or dots at Gmail).
    SameMailbox,
    /// Fraud rule `disposable_email`: the referred email's domain is a disposable-mail one.
    DisposableEmail,
    /// Fraud rule `duplicate_payout_address`: another promoter of the tenant has the
    /// referrer's payout address.
    DuplicatePayoutAddress,
    /// Fraud rule `velocity`: more sign-ups through the referrer than the program allows in
    /// its window.
    Velocity,
    /// Fraud rule `same_device`: the sign-up came from an IP or device the referrer used.
    SameDevice,
}

impl Hold {
    /// Holds only an admin lifts (`POST /v1/rewards/{id}/approve`).
    pub fn is_for_admin(self) -> bool {
        matches!(
            self,
            Hold::AwaitingApproval
                | Hold::BudgetExhausted
                | Hold::EarningsCapReached
                | Hold::PromoterSuspended
        ) || self.is_fraud()
    }

    /// Holds a fraud rule put on a relation (an admin's approval clears them from it).
    pub fn is_fraud(self) -> bool {
        matches!(
            self,
            Hold::SameMailbox
                | Hold::DisposableEmail
                | Hold::DuplicatePayoutAddress
                | Hold::Velocity
                | Hold::SameDevice
        )
    }
}

/// Where a reward is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardStatus {
    /// Earned but waiting: for the referred user's identity check, for the referrer's
    /// `min_referrals`, or for the program's holding period to pass.
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
    pub const ALL: [RewardStatus; 5] = [
        RewardStatus::Held,
        RewardStatus::Pending,
        RewardStatus::Credited,
        RewardStatus::Failed,
        RewardStatus::Reversed,
    ];

    /// A status named in a query (`?status=held`); 400 naming `status` otherwise.
    pub fn parse(text: &str) -> Result<RewardStatus> {
        RewardStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| {
                Error::invalid(
                    "status",
                    "must be one of held, pending, credited, failed, reversed",
                )
            })
    }

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
    pub holds: Vec<Hold>,
    /// When its holding period ends (while it is held for [`Hold::HoldingPeriod`]).
    #[serde(
        default,
        with = "rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub due_at: Option<OffsetDateTime>,
    /// Why an admin denied it (a denied reward is `reversed`: it never pays).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denial: Option<String>,
    /// The invoice an `each_invoice` reward was earned on: its refunds take back in proportion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice: Option<InvoiceBasis>,
    /// Taken off by refunds before it was delivered: it pays `amount - reduced` (all of it
    /// taken off: `reversed`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reduced: i64,
    /// Taken back by refunds after it was delivered, through take-back entries (negative
    /// rewards naming it in `reverses`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub taken_back: i64,
    /// A take-back entry: the reward whose delivered amount it takes back (its amount is
    /// negative; a billing credit's take-back is delivered to billing as a debit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverses: Option<String>,
    /// What the last refund that reduced it, took it back or reversed it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_reason: Option<RefundReason>,
    /// The program budget period it is counted in (`total` or `yyyy-mm`), if the program has a
    /// budget: a reversal gives its amount back to that period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_bucket: Option<String>,
    /// It counts towards the referrer's `max_earnings_per_promoter`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub counts_to_cap: bool,
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

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(value: &i64) -> bool {
    *value == 0
}

/// What a refund event reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundReason {
    /// The tenant gave money back.
    #[default]
    Refund,
    /// The payment was disputed and taken back by the card network.
    Chargeback,
}

impl RefundReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundReason::Refund => "refund",
            RefundReason::Chargeback => "chargeback",
        }
    }
}

/// The invoice a per-invoice reward was earned on, and how much of it was refunded since.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceBasis {
    pub event_id: String,
    /// The invoice's amount, minor units.
    pub amount: i64,
    /// Refunded of it so far, minor units.
    #[serde(default)]
    pub refunded: i64,
}

/// How a reward moves its recipient's balance in its currency (`POINTS` for points).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BalanceEffect {
    /// Every reward earned, either delivery, not reversed.
    pub total_earned: i64,
    /// Credited `payout` rewards: withdrawable.
    pub current_balance: i64,
}

impl Reward {
    /// Counts towards earnings: cash, not taken back.
    pub fn is_cash_earning(&self) -> bool {
        self.kind == RewardKind::Cash && self.status != RewardStatus::Reversed
    }

    /// What it pays: its amount less what refunds took off before delivery (negative for a
    /// take-back entry).
    pub fn payable(&self) -> i64 {
        self.amount - self.reduced
    }

    /// What refunds may still take back of it (nothing of a take-back entry).
    pub fn remaining(&self) -> i64 {
        if self.status == RewardStatus::Reversed || self.reverses.is_some() {
            return 0;
        }
        (self.amount - self.reduced - self.taken_back).max(0)
    }

    /// Every reward counts in `total_earned` of its currency whatever its delivery; only
    /// credited `payout` rewards are withdrawable `current_balance` (held ones join it when
    /// released). Points are the currency `POINTS`. A reward counts what it pays (take-backs
    /// count negative).
    pub fn balance_effect(&self) -> BalanceEffect {
        if self.status == RewardStatus::Reversed {
            return BalanceEffect::default();
        }
        BalanceEffect {
            total_earned: self.payable(),
            current_balance: if self.delivery == Delivery::Payout
                && self.status == RewardStatus::Credited
            {
                self.payable()
            } else {
                0
            },
        }
    }
}

/// A user's balance in one currency (`POINTS` for points).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub currency: String,
    /// Credited `payout` rewards not yet withdrawn, minor units.
    #[serde(default)]
    pub current_balance: i64,
    /// Every reward earned, either delivery, minor units.
    #[serde(default)]
    pub total_earned: i64,
    /// Withdrawn and paid, minor units.
    #[serde(default)]
    pub total_paid: i64,
    /// When the user first earned in this currency: the first money currency is their main one.
    #[serde(with = "rfc3339")]
    pub created: OffsetDateTime,
}

/// The figures of one balance as answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BalanceFigures {
    pub current_balance: i64,
    pub total_earned: i64,
    pub total_paid: i64,
}

/// Every balance of a user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Balances(pub Vec<Balance>);

impl Balances {
    /// The user's main currency: the first money currency they earned in (points are never
    /// the main currency). The seed-001 scalar fields are this currency's.
    pub fn main_currency(&self) -> Option<&str> {
        self.0
            .iter()
            .filter(|b| b.currency != crate::domain::money::POINTS)
            .min_by(|a, b| (a.created, &a.currency).cmp(&(b.created, &b.currency)))
            .map(|b| b.currency.as_str())
    }

    pub fn get(&self, currency: &str) -> BalanceFigures {
        self.0
            .iter()
            .find(|b| b.currency == currency)
            .map(|b| BalanceFigures {
                current_balance: b.current_balance,
                total_earned: b.total_earned,
                total_paid: b.total_paid,
            })
            .unwrap_or_default()
    }

    /// Every balance by currency, as answered.
    pub fn by_currency(&self) -> std::collections::BTreeMap<String, BalanceFigures> {
        self.0
            .iter()
            .map(|b| (b.currency.clone(), self.get(&b.currency)))
            .collect()
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayoutKind {
    Wise,
    Paypal,
    Crypto,
    BankTransfer,
}

/// Where a promoter's payouts go: `PATCH /v1/promoters/me/payout-method`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayoutMethod {
    pub method: PayoutKind,
    pub payment_address: String,
}

impl PayoutMethod {
    /// The method with its address checked for the kind and put in canonical form: an email for
    /// Wise and PayPal, a plausible wallet address for crypto, an IBAN with a valid checksum for
    /// bank transfers (stored without spaces, upper case).
    pub fn validated(self) -> Result<PayoutMethod> {
        let address = self.payment_address.trim();
        let invalid = |what: &str| Err(Error::invalid("payment_address", what.to_owned()));
        let canonical = match self.method {
            PayoutKind::Wise | PayoutKind::Paypal => {
                if address.len() > 254 || !email_address::EmailAddress::is_valid(address) {
                    return invalid("must be an email address for wise and paypal");
                }
                address.to_owned()
            }
            PayoutKind::Crypto => {
                if !is_plausible_wallet(address) {
                    return invalid(
                        "must be a wallet address (0x + 40 hex digits, a bech32 bc1… address, or 26-44 base58 characters)",
                    );
                }
                address.to_owned()
            }
            PayoutKind::BankTransfer => {
                let compact: String = address
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect::<String>()
                    .to_ascii_uppercase();
                match compact.parse::<iban::Iban>() {
                    Ok(iban) => iban::IbanLike::electronic_str(&iban).to_owned(),
                    Err(_) => return invalid("must be an IBAN with a valid checksum"),
                }
            }
        };
        Ok(PayoutMethod {
            method: self.method,
            payment_address: canonical,
        })
    }
}

impl PayoutMethod {
    /// A digest of the method and its canonical address: the key promoters sharing it meet at.
    pub fn digest(&self) -> String {
        use sha2::Digest;
        let kind = serde_json::to_value(self.method).unwrap_or_default();
        let text = format!(
            "{}:{}",
            kind.as_str().unwrap_or_default(),
            self.payment_address
        );
        sha2::Sha256::digest(text.to_lowercase().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

fn is_plausible_wallet(address: &str) -> bool {
    const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    const BECH32: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    let len = address.len();
    let ethereum = len == 42
        && address.starts_with("0x")
        && address[2..].bytes().all(|b| b.is_ascii_hexdigit());
    let bech32 = (address.starts_with("bc1") || address.starts_with("tb1"))
        && (14..=74).contains(&len)
        && address[3..].bytes().all(|b| BECH32.contains(&b));
    let base58 = (26..=44).contains(&len) && address.bytes().all(|b| BASE58.contains(&b));
    ethereum || bech32 || base58
}

/// A withdrawal of a promoter's whole `current_balance` in one currency.
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
    pub payout_method: PayoutMethod,
    #[serde(with = "rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "rfc3339::option")]
    pub paid_at: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_currency_is_the_first_money_currency_earned_in() {
        let at = |minute: u8| {
            time::macros::datetime!(2026-11-01 00:00 UTC) + time::Duration::minutes(minute.into())
        };
        let balance = |currency: &str, created| Balance {
            currency: currency.into(),
            current_balance: 1,
            total_earned: 2,
            total_paid: 0,
            created,
        };
        assert_eq!(Balances::default().main_currency(), None);
        let balances = Balances(vec![
            balance("USD", at(5)),
            balance("POINTS", at(1)),
            balance("EUR", at(3)),
        ]);
        assert_eq!(balances.main_currency(), Some("EUR"), "points never");
        assert_eq!(balances.get("BRL"), BalanceFigures::default());
        assert_eq!(balances.by_currency().len(), 3);
        assert_eq!(RewardStatus::parse("held").unwrap(), RewardStatus::Held);
        assert_eq!(
            RewardStatus::parse("paid").unwrap_err().code(),
            "invalid_request"
        );
    }

    fn method(kind: PayoutKind, address: &str) -> Result<PayoutMethod> {
        PayoutMethod {
            method: kind,
            payment_address: address.into(),
        }
        .validated()
    }

    #[test]
    fn payout_addresses_are_checked_per_method() {
        assert!(method(PayoutKind::Wise, "example@gmail.com").is_ok());
        assert!(method(PayoutKind::Paypal, " pay@example.org ").is_ok());
        for bad in ["", "not-an-email", "a@", "@b.com"] {
            assert!(method(PayoutKind::Wise, bad).is_err(), "{bad}");
            assert!(method(PayoutKind::Paypal, bad).is_err(), "{bad}");
        }
        for good in [
            "0x52908400098527886E0F7030069857D2E4169EE7",
            "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
            "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
            "7EcDhSYGxXyscszYEp35KHN8vvw3svAuLKTzXwCFLtV",
        ] {
            assert!(method(PayoutKind::Crypto, good).is_ok(), "{good}");
        }
        for bad in [
            "0x123",
            "0xZZ908400098527886E0F7030069857D2E4169EE7",
            "bc1",
            "hello",
            "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN0OIl",
        ] {
            assert!(method(PayoutKind::Crypto, bad).is_err(), "{bad}");
        }
        let iban = method(PayoutKind::BankTransfer, "de44 5001 0517 5407 3249 31").unwrap();
        assert_eq!(iban.payment_address, "DE44500105175407324931");
        for bad in [
            "DE45500105175407324931",
            "DE44",
            "pay@example.com",
            "XX00123",
        ] {
            let error = method(PayoutKind::BankTransfer, bad).unwrap_err();
            assert_eq!(
                error.to_string(),
                "payment_address: must be an IBAN with a valid checksum"
            );
        }
    }
}
