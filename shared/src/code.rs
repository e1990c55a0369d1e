//! Referral codes (seed 002): every promoter has a primary code (its referral link), and admins
//! may give a promoter extra codes tied to one program with their own amounts and limit.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use std::collections::BTreeMap;

use crate::clock::{self, rfc3339};
use crate::error::{Error, Result};
use crate::program::{self, CodeTerms, Program, ProgramStatus, Recipient, RewardKind, Trigger};
use crate::promoter::{self, Promoter};
use crate::store::{CodeStore, ProgramStore, PromoterStore};

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
    /// Users referred through the code.
    pub total_referrals: u64,
    /// Identity checks started by users referred through the code.
    pub verification_attempts: u64,
    pub verification_successes: u64,
    /// What referrers and referees earned through the code, minor units.
    pub total_referrer_earned: i64,
    pub total_referee_earned: i64,
    /// Clicks on `/r/{code}`.
    pub link_clicks: u64,
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
            if amount.is_some_and(|a| !(0..=crate::program::MAX_AMOUNT).contains(&a)) {
                return Err(Error::invalid(
                    field,
                    format!(
                        "must be between 0 and {} (minor units)",
                        crate::program::MAX_AMOUNT
                    ),
                ));
            }
        }
        if self
            .max_referrals
            .is_some_and(|m| !(0..=crate::program::MAX_REFERRAL_LIMIT).contains(&m))
        {
            return Err(Error::invalid(
                "max_referrals",
                format!(
                    "must be between 0 and {}",
                    crate::program::MAX_REFERRAL_LIMIT
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
    pub stats: CodeStats,
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
    pub status: crate::referral::ReferralStatus,
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

/// A code's item: a promoter's primary code (which holds the promoter) or an extra code.
#[derive(Clone, Debug, PartialEq)]
pub enum CodeItem {
    Promoter(Promoter),
    Extra(ReferralCode),
}

// ---- Domain operations over the store ports ----

/// Every code of the caller, with the users referred through each. Two `Query`s.
pub async fn codes_of(
    store: &(impl PromoterStore + CodeStore),
    tenant: &str,
    user: &str,
) -> Result<Vec<CodeView>> {
    let mut items = store.codes_of(tenant, user).await?;
    if !items
        .iter()
        .any(|item| matches!(item, CodeItem::Promoter(_)))
    {
        items.insert(
            0,
            CodeItem::Promoter(promoter::get_or_create(store, tenant, user).await?),
        );
    }
    let referrals = store.referrals_of(tenant, user).await?;
    let mut by_code: BTreeMap<&str, Vec<ReferredUser>> = BTreeMap::new();
    for referral in &referrals {
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
    Ok(items
        .iter()
        .map(|item| {
            let mut view = item.view();
            view.referred_users = Some(by_code.remove(view.code.as_str()).unwrap_or_default());
            view
        })
        .collect())
}

/// An admin gives `user` an extra code for a program. The promoter is created if needed.
pub async fn create_code(
    store: &(impl PromoterStore + CodeStore + ProgramStore),
    tenant: &str,
    user: &str,
    input: &NewCode,
) -> Result<CodeView> {
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
/// `GetItem` (extra code).
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
    let item = store.get_code(&canonical).await?.ok_or_else(not_found)?;
    let now = clock::now();
    let (terms, limit, programs) = match &item {
        CodeItem::Promoter(promoter) => {
            let programs = promoter::all_programs(store, &promoter.tenant).await?;
            let open = programs
                .into_iter()
                .filter(|p| p.status == ProgramStatus::Active)
                .collect();
            (CodeTerms::default(), None, open)
        }
        CodeItem::Extra(extra) => {
            let program = store.get_program(&extra.tenant, &extra.program_id).await?;
            let terms = CodeTerms {
                referrer_amount: extra.referrer_amount,
                referee_amount: extra.referee_amount,
            };
            (
                terms,
                extra.max_referrals,
                program.into_iter().collect::<Vec<_>>(),
            )
        }
    };
    let stats = item.stats();
    let offers: Vec<_> = programs
        .iter()
        .map(|p| {
            offer(
                p,
                terms,
                limit,
                stats.total_referrals,
                country.as_deref(),
                now,
            )
        })
        .collect();
    Ok(PublicCode {
        code: canonical,
        is_active: item.is_active(),
        is_valid: item.is_active() && offers.iter().any(|offer| offer.is_open),
        country,
        programs: offers,
    })
}

/// Counts a click on `/r/{code}` when the code exists and is active. One `UpdateItem`; an
/// unknown or malformed code costs nothing.
pub async fn count_click(store: &impl CodeStore, code: &str) -> Result<Option<String>> {
    match normalize(code) {
        Some(code) => Ok(store.count_click(&code).await?.then_some(code)),
        None => Ok(None),
    }
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
                stats: code.stats.clone(),
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
            CodeItem::Promoter(promoter) => promoter.is_active,
            CodeItem::Extra(code) => code.is_active,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
