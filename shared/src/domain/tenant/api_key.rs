//! API keys: a tenant's credentials for its backend and tools. A key is `rk_` and 32 random bytes
//! (base64url), answered once; the engine keeps only its SHA-256 digest (keys are random, so a
//! fast digest is as strong as a slow one) and a short prefix to recognise it by.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{Role, TenantStatus};
use crate::clock::rfc3339;
use crate::error::{Error, Result};

/// Every API key starts with this.
pub const API_KEY_PREFIX: &str = "rk_";
/// Random bytes in a key.
pub const API_KEY_BYTES: usize = 32;
/// Characters of a key shown in lists (the `rk_` prefix included).
const SHOWN_PREFIX_CHARS: usize = 10;

/// The stored key: its digest, never the key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub role: Role,
    /// The first characters of the key, to recognise it by.
    pub prefix: String,
    /// Hex SHA-256 of the whole key.
    pub digest: String,
    /// The tenant's status, copied onto each key in the transaction that changes it, so that
    /// authenticating a key is one read.
    #[serde(default)]
    pub tenant_status: TenantStatus,
    #[serde(with = "rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

/// The hex SHA-256 digest of a presented key: what the store is keyed by.
pub fn digest(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether a bearer credential has the form of an API key.
pub fn looks_like_api_key(credential: &str) -> bool {
    credential.starts_with(API_KEY_PREFIX)
}

/// `POST /v1/api-keys`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    pub name: String,
    pub role: Role,
}

impl NewApiKey {
    pub fn validated(self) -> Result<Self> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "name",
                "must be 1-100 characters without control characters",
            ));
        }
        if self.role == Role::Promoter {
            return Err(Error::invalid(
                "role",
                "must be admin or service: promoters sign in through sessions \
                 (POST /v1/promoters/{user_id}/sessions)",
            ));
        }
        Ok(NewApiKey {
            name: name.to_owned(),
            role: self.role,
        })
    }
}

impl ApiKey {
    /// A new key for `tenant`: the stored record and the key itself (to answer once).
    pub fn issue(tenant: &str, name: &str, role: Role, now: OffsetDateTime) -> (ApiKey, String) {
        let secret = format!("{API_KEY_PREFIX}{}", crate::id::random_token(API_KEY_BYTES));
        let key = ApiKey {
            id: crate::id::new_id(),
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            role,
            prefix: secret.chars().take(SHOWN_PREFIX_CHARS).collect(),
            digest: digest(&secret),
            tenant_status: TenantStatus::Active,
            created_at: now,
            last_used_at: None,
        };
        (key, secret)
    }

    pub fn view(&self) -> ApiKeyView {
        ApiKeyView {
            id: self.id.clone(),
            name: self.name.clone(),
            role: self.role,
            prefix: self.prefix.clone(),
            created_at: self.created_at,
            last_used_at: self.last_used_at,
        }
    }
}

/// A key as lists show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub prefix: String,
    #[serde(with = "rfc3339")]
    pub created_at: OffsetDateTime,
    /// Updated at most every [`LAST_USED_PRECISION`] per key.
    #[serde(with = "rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

/// `last_used_at` is written when a key is used and the stored value is older than this: one
/// write per key per ten minutes at most, not one per request.
pub const LAST_USED_PRECISION: time::Duration = time::Duration::minutes(10);

/// A key as its creation answers it: the only time the key itself is shown.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IssuedApiKey {
    #[serde(flatten)]
    pub view: ApiKeyView,
    /// The key. Shown once; the engine keeps only its digest.
    pub key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_url_safe_and_stored_as_digests() {
        let now = crate::clock::now();
        let (record, key) = ApiKey::issue("acme", "backend", Role::Service, now);
        let (_, other) = ApiKey::issue("acme", "backend", Role::Service, now);
        assert_ne!(key, other);
        assert!(key.starts_with("rk_"));
        assert_eq!(key.len(), 3 + 43, "32 bytes in base64url without padding");
        assert!(
            key[3..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(record.digest, digest(&key));
        assert_eq!(record.digest.len(), 64);
        assert!(key.starts_with(&record.prefix) && record.prefix.len() == 10);
        let stored = serde_json::to_string(&record).unwrap();
        assert!(!stored.contains(&key[10..]), "the key itself is not stored");
    }

    #[test]
    fn promoter_keys_and_bad_names_are_refused() {
        let new = |name: &str, role| {
            NewApiKey {
                name: name.into(),
                role,
            }
            .validated()
        };
        assert_eq!(new(" ci ", Role::Admin).unwrap().name, "ci");
        assert!(new("", Role::Admin).is_err());
        assert!(new(&"x".repeat(101), Role::Admin).is_err());
        assert!(new("ok", Role::Promoter).is_err());
    }
}
