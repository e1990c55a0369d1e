//! A tenant: a company running referral programs on the engine. It owns its settings (where
//! `/r/{code}` sends visitors, the base of its referral links, its default currency, its billing
//! endpoint), the secrets its billing credits are signed with, and its API keys. Created by the
//! operator; its admins change its settings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::clock::rfc3339;

pub mod api_key;
pub mod manage;

pub use api_key::*;
pub use manage::*;

/// Who may do what within a tenant: `admin` manages programs, codes, payouts and settings;
/// `service` is the tenant's backend (sign-ups, invoices, verifications, sessions);
/// `promoter` is an end user acting on their own data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Promoter,
    Service,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Promoter => "promoter",
            Role::Service => "service",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    #[default]
    Active,
    /// Every credential of the tenant is refused with 403 `tenant_suspended`; its data is kept.
    Suspended,
}

/// How long a rotated-out billing secret keeps signing beside its successor.
pub const ROTATION_OVERLAP: time::Duration = time::Duration::hours(24);

/// A secret billing credits are signed with. The newest is first; an older one signs beside it
/// until `retires_at`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningSecret {
    pub secret: String,
    #[serde(with = "rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "rfc3339::option")]
    pub retires_at: Option<OffsetDateTime>,
}

impl SigningSecret {
    /// Of `secrets` (newest first): the ones a message sent at `now` is signed with, the newest
    /// and any older one whose overlap has not ended.
    pub fn live(secrets: &[SigningSecret], now: OffsetDateTime) -> Vec<&str> {
        secrets
            .iter()
            .filter(|secret| secret.retires_at.is_none_or(|retires| retires > now))
            .map(|secret| secret.secret.as_str())
            .collect()
    }

    /// When a rotated-out secret among `secrets` stops signing, while it still does.
    pub fn overlap_ends(secrets: &[SigningSecret], now: OffsetDateTime) -> Option<OffsetDateTime> {
        secrets
            .iter()
            .skip(1)
            .filter_map(|s| s.retires_at)
            .find(|retires| *retires > now)
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningSecret")
            .field("secret", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("retires_at", &self.retires_at)
            .finish()
    }
}

/// The most API keys a tenant holds at once (each is listed in the tenant item, so that
/// suspending a tenant reaches every key in one transaction).
pub const MAX_API_KEYS: usize = 25;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub status: TenantStatus,
    /// Where `/r/{code}` sends a visitor (`?ref={CODE}` is added to its query).
    #[serde(default)]
    pub landing_url: Option<String>,
    /// The base of referral links (`{base}/r/{code}`).
    #[serde(default)]
    pub link_base_url: Option<String>,
    /// The currency of programs created without one.
    #[serde(default)]
    pub default_currency: Option<String>,
    /// The billing endpoint credits are POSTed to; may contain `{user_id}`.
    #[serde(default)]
    pub billing_url: Option<String>,
    /// Newest first; see [`SigningSecret`].
    #[serde(default)]
    pub billing_secrets: Vec<SigningSecret>,
    /// The tenant's live API keys: id → digest.
    #[serde(default)]
    pub api_keys: BTreeMap<String, String>,
    #[serde(with = "rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "rfc3339")]
    pub updated_at: OffsetDateTime,
    pub version: u64,
}

impl Tenant {
    /// The secrets a credit sent at `now` is signed with: the newest, and any older one whose
    /// overlap has not ended.
    pub fn signing_secrets(&self, now: OffsetDateTime) -> Vec<&str> {
        SigningSecret::live(&self.billing_secrets, now)
    }

    pub fn view(&self) -> TenantView {
        let now = crate::clock::now();
        TenantView {
            id: self.id.clone(),
            name: self.name.clone(),
            status: self.status,
            landing_url: self.landing_url.clone(),
            link_base_url: self.link_base_url.clone(),
            default_currency: self.default_currency.clone(),
            billing_url: self.billing_url.clone(),
            billing_secret_created_at: self.billing_secrets.first().map(|s| s.created_at),
            previous_billing_secret_retires_at: SigningSecret::overlap_ends(
                &self.billing_secrets,
                now,
            ),
            api_keys: self.api_keys.len(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A tenant as the API answers it: never its secrets.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    pub status: TenantStatus,
    pub landing_url: Option<String>,
    pub link_base_url: Option<String>,
    pub default_currency: Option<String>,
    pub billing_url: Option<String>,
    #[serde(with = "rfc3339::option")]
    pub billing_secret_created_at: Option<OffsetDateTime>,
    /// While a rotated-out secret still signs beside the new one: when it stops.
    #[serde(with = "rfc3339::option")]
    pub previous_billing_secret_retires_at: Option<OffsetDateTime>,
    /// How many API keys are live.
    pub api_keys: usize,
    #[serde(with = "rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "rfc3339")]
    pub updated_at: OffsetDateTime,
}
