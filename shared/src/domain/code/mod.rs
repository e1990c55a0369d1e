//! Referral codes (seed 002): every promoter has a primary code (its referral link), and admins
//! may give a promoter extra codes tied to one program with their own amounts and limit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::clock::rfc3339;
use crate::domain::program::{CodeTerms, Program, Recipient, RewardKind, Trigger};
use crate::error::{Error, Result};
pub mod lookup;

pub use lookup::*;

/// Generated codes use upper-case letters and digits without the look-alikes 0, O, 1 and I.
pub const CODE_ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Length of a generated code: 40 random bits.
pub const GENERATED_LEN: usize = 8;
/// Custom codes an admin chooses: 4-32 of `A-Z`, `0-9`, `-`, `_`.
pub const MIN_CUSTOM_LEN: usize = 4;
pub const MAX_CUSTOM_LEN: usize = 32;

/// A new random code of [`GENERATED_LEN`] characters from [`CODE_ALPHABET`].
pub fn generate() -> String {
    let mut bits = ulid::Ulid::generate().random();
    (0..GENERATED_LEN)
        .map(|_| {
            let symbol = CODE_ALPHABET[(bits & 31) as usize] as char;
            bits >>= 5;
            symbol
        })
        .collect()
}

/// The landing URL a click on `code` goes to: `ref={code}` added to the query `landing` already
/// has (an existing `ref` replaced), before any fragment.
pub fn with_ref(landing: &str, code: &str) -> String {
    match url::Url::parse(landing) {
        Ok(mut url) => {
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(name, _)| name != "ref")
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect();
            url.query_pairs_mut()
                .clear()
                .extend_pairs(kept)
                .append_pair("ref", code);
            url.to_string()
        }
        Err(_) => {
            let separator = if landing.contains('?') { '&' } else { '?' };
            format!("{landing}{separator}ref={code}")
        }
    }
}

/// The canonical (upper-case) form of a code as typed or linked, if it can be a code at all.
pub fn normalize(input: &str) -> Option<String> {
    let code = input.trim().to_ascii_uppercase();
    let well_formed = (MIN_CUSTOM_LEN..=MAX_CUSTOM_LEN).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    well_formed.then_some(code)
}

/// The counters every code keeps (seed 002).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeStats {
    /// Users referred through the code, in every program.
    #[serde(default)]
    pub total_referrals: u64,
    /// Identity checks started by users referred through the code.
    #[serde(default)]
    pub verification_attempts: u64,
    #[serde(default)]
    pub verification_successes: u64,
    /// What referrers and referees earned through the code, per currency (minor units; points
    /// under `POINTS`). Stored as maps that exist from the code's creation, so a transaction can
    /// add to one currency's entry.
    #[serde(default)]
    pub referrer_earned: BTreeMap<String, i64>,
    #[serde(default)]
    pub referee_earned: BTreeMap<String, i64>,
    /// The first currency the code earned in: its scalar totals are in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earnings_currency: Option<String>,
    /// Clicks on `/r/{code}`.
    #[serde(default)]
    pub link_clicks: u64,
}

/// What a code's users earned in one currency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CodeEarnings {
    pub referrer: i64,
    pub referee: i64,
}

/// A code's counters as answered: seed 002's scalars (in the code's currency) and every
/// currency apart.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CodeStatsView {
    pub total_referrals: u64,
    pub verification_attempts: u64,
    pub verification_successes: u64,
    /// The currency of `total_referrer_earned` and `total_referee_earned`: the program's for an
    /// extra code, the first one earned in for a primary code.
    pub currency: Option<String>,
    pub total_referrer_earned: i64,
    pub total_referee_earned: i64,
    pub earned: BTreeMap<String, CodeEarnings>,
    pub link_clicks: u64,
}

impl CodeStats {
    pub fn view(&self, currency: Option<&str>) -> CodeStatsView {
        let currency = currency
            .map(str::to_owned)
            .or_else(|| self.earnings_currency.clone());
        let mut earned: BTreeMap<String, CodeEarnings> = BTreeMap::new();
        for (c, amount) in &self.referrer_earned {
            earned.entry(c.clone()).or_default().referrer += amount;
        }
        for (c, amount) in &self.referee_earned {
            earned.entry(c.clone()).or_default().referee += amount;
        }
        let scalar = currency
            .as_deref()
            .and_then(|c| earned.get(c).copied())
            .unwrap_or_default();
        CodeStatsView {
            total_referrals: self.total_referrals,
            verification_attempts: self.verification_attempts,
            verification_successes: self.verification_successes,
            currency,
            total_referrer_earned: scalar.referrer,
            total_referee_earned: scalar.referee,
            earned,
            link_clicks: self.link_clicks,
        }
    }
}

/// An extra code an admin gave a promoter, tied to one program.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReferralCode {
    pub code: String,
    pub tenant: String,
    /// The promoter who owns it.
    pub user_id: String,
    /// The owner's primary code: the key of the promoter item.
    pub promoter_code: String,
    pub program_id: String,
    /// Sign-up amounts replacing the program's for this code; `None` keeps the program's.
    pub referrer_amount: Option<i64>,
    pub referee_amount: Option<i64>,
    /// Referrals allowed through this code; `None` keeps the program's `max_referrals`.
    pub max_referrals: Option<u32>,
    pub is_active: bool,
    #[serde(flatten)]
    pub stats: CodeStats,
    #[serde(with = "rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "rfc3339")]
    pub updated: OffsetDateTime,
}

/// Body of `POST /v1/promoters/{user_id}/codes`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCode {
    pub program_id: String,
    /// A custom code; generated when absent.
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub referrer_amount: Option<i64>,
    #[serde(default)]
    pub referee_amount: Option<i64>,
    #[serde(default)]
    pub max_referrals: Option<i64>,
}

impl NewCode {
    /// Checks the amounts and limit; answers the custom code in canonical form, if any.
    pub fn validate(&self) -> Result<Option<String>> {
        for (field, amount) in [
            ("referrer_amount", self.referrer_amount),
            ("referee_amount", self.referee_amount),
        ] {
            if amount.is_some_and(|a| !(0..=crate::domain::money::MAX_AMOUNT).contains(&a)) {
                return Err(Error::invalid(
                    field,
                    format!(
                        "must be between 0 and {} (minor units)",
                        crate::domain::money::MAX_AMOUNT
                    ),
                ));
            }
        }
        if self
            .max_referrals
            .is_some_and(|m| !(0..=crate::domain::program::MAX_REFERRAL_LIMIT).contains(&m))
        {
            return Err(Error::invalid(
                "max_referrals",
                format!(
                    "must be between 0 and {}",
                    crate::domain::program::MAX_REFERRAL_LIMIT
                ),
            ));
        }
        self.code
            .as_deref()
            .map(|code| {
                normalize(code).ok_or_else(|| {
                    Error::invalid(
                        "code",
                        format!(
                            "must be {MIN_CUSTOM_LEN}-{MAX_CUSTOM_LEN} letters, digits, '-' or '_'"
                        ),
                    )
                })
            })
            .transpose()
    }
}

/// Body of `PATCH /v1/codes/{code}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeChange {
    pub is_active: bool,
}

/// A code as its owner sees it (`GET /v1/promoters/me/codes`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CodeView {
    pub code: String,
    /// The program an extra code is tied to; `null` for the primary code (any program).
    pub program_id: Option<String>,
    pub is_primary: bool,
    pub is_active: bool,
    pub referrer_amount: Option<i64>,
    pub referee_amount: Option<i64>,
    pub max_referrals: Option<u32>,
    #[serde(flatten)]
    pub stats: CodeStatsView,
    #[serde(with = "rfc3339")]
    pub created: OffsetDateTime,
    /// Users referred through the code (in the owner's list of codes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referred_users: Option<Vec<ReferredUser>>,
}

/// A user who signed up through a code.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReferredUser {
    pub user_id: String,
    pub referral_id: String,
    pub program_id: String,
    pub status: crate::domain::referral::ReferralStatus,
    #[serde(with = "rfc3339")]
    pub created: OffsetDateTime,
}

/// What a public look-up of a code answers (`GET /v1/codes/{code}`): nothing private.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PublicCode {
    pub code: String,
    pub is_active: bool,
    /// Whether a sign-up with this code could succeed now: active, under its limit, and at least
    /// one open program.
    pub is_valid: bool,
    /// The country the amounts were computed for, if any.
    pub country: Option<String>,
    pub programs: Vec<PublicOffer>,
}

/// One program a code can be used in, and what the referred user receives there.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PublicOffer {
    pub program_id: String,
    pub name: String,
    pub message: Option<String>,
    pub currency: String,
    #[serde(with = "rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// 0 = unlimited.
    pub max_referrals: u32,
    pub total_referrals: u64,
    pub is_open: bool,
    pub referee_rewards: Vec<OfferedReward>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OfferedReward {
    pub trigger: Trigger,
    pub kind: RewardKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold_amount: Option<i64>,
}

/// The referee's side of `program` for a code with `terms` and `limit`, in `country`.
pub fn offer(
    program: &Program,
    terms: CodeTerms,
    limit: Option<u32>,
    total_referrals: u64,
    country: Option<&str>,
    now: OffsetDateTime,
) -> PublicOffer {
    let max_referrals = limit.unwrap_or(program.max_referrals);
    let under_limit = max_referrals == 0 || total_referrals < u64::from(max_referrals);
    PublicOffer {
        program_id: program.id.clone(),
        name: program.name.clone(),
        message: program.message.clone(),
        currency: program.currency.clone(),
        expires_at: program.expires_at,
        max_referrals,
        total_referrals,
        is_open: program.is_open(now) && under_limit,
        referee_rewards: program
            .rewards
            .iter()
            .filter(|rule| rule.recipient == Recipient::Referee)
            .map(|rule| OfferedReward {
                trigger: rule.trigger,
                kind: rule.kind,
                amount: program.fixed_amount(rule, terms, country),
                percent: rule.percent,
                threshold_amount: rule.threshold_amount,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_joins_the_landing_urls_query() {
        assert_eq!(
            with_ref("https://shop.example.com/welcome", "AB12CD34"),
            "https://shop.example.com/welcome?ref=AB12CD34"
        );
        assert_eq!(
            with_ref(
                "https://shop.example.com/w?utm_source=x&ref=OLD#signup",
                "AB12CD34"
            ),
            "https://shop.example.com/w?utm_source=x&ref=AB12CD34#signup"
        );
        assert_eq!(with_ref("/", "AB12CD34"), "/?ref=AB12CD34");
    }

    #[test]
    fn generated_codes_are_short_unambiguous_and_distinct() {
        let codes: std::collections::HashSet<String> = (0..2000).map(|_| generate()).collect();
        assert_eq!(codes.len(), 2000);
        for code in &codes {
            assert_eq!(code.len(), GENERATED_LEN);
            assert!(!code.contains(['0', 'O', '1', 'I']), "{code}");
            assert_eq!(normalize(code).as_deref(), Some(code.as_str()));
        }
    }

    #[test]
    fn codes_normalise_to_upper_case_and_reject_junk() {
        assert_eq!(normalize(" spring-10 ").as_deref(), Some("SPRING-10"));
        for bad in [
            "abc",
            "",
            "has space",
            "x".repeat(33).as_str(),
            "CODE#1",
            "ÄBCD",
        ] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }

    #[test]
    fn new_codes_validate_amounts_limits_and_custom_codes() {
        let base = || NewCode {
            program_id: "p".into(),
            code: None,
            referrer_amount: Some(500),
            referee_amount: Some(2500),
            max_referrals: Some(10),
        };
        assert_eq!(base().validate().unwrap(), None);
        let custom = NewCode {
            code: Some("vip-2027".into()),
            ..base()
        };
        assert_eq!(custom.validate().unwrap().as_deref(), Some("VIP-2027"));
        let field = |code: NewCode| match code.validate() {
            Err(Error::InvalidRequest { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field(NewCode {
                referrer_amount: Some(-1),
                ..base()
            }),
            "referrer_amount"
        );
        assert_eq!(
            field(NewCode {
                referee_amount: Some(-5),
                ..base()
            }),
            "referee_amount"
        );
        assert_eq!(
            field(NewCode {
                max_referrals: Some(-1),
                ..base()
            }),
            "max_referrals"
        );
        assert_eq!(
            field(NewCode {
                code: Some("a b".into()),
                ..base()
            }),
            "code"
        );
    }
}
