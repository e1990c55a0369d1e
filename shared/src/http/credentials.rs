//! Who is calling: the operator (`OPERATOR_KEY`), a tenant's API key (`rk_…`), or a token the
//! engine signed (a promoter session, or a token minted with the engine's key). Built once per
//! cold start; it keeps a per-container cache of API keys and tenants for
//! `CREDENTIAL_CACHE_SECONDS` (30 by default):
//!
//! - an API key costs one `GetItem` (by the digest of the key; the item carries its tenant's
//!   status) the first time a container sees it, then nothing until the cache entry expires;
//! - an engine-signed token costs one `GetItem` (the tenant's item, for its status) per tenant
//!   and container on the same terms;
//! - revoking a key or suspending a tenant takes effect at once in the container that did it and
//!   within the cache's lifetime in every other one.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::auth::{Claims, Keyring, Principal, Role, bearer};
use crate::clock::rfc3339;
use crate::config::Secret;
use crate::domain::tenant::{self, ApiKey, LAST_USED_PRECISION, Tenant, TenantStatus};
use crate::error::{Error, Result};
use crate::store::cache::{Cache, TenantDirectory};
use crate::store::{DynamoStore, TenantStore};

/// Promoter sessions live this long unless asked otherwise, and at most [`MAX_SESSION`].
pub const DEFAULT_SESSION: time::Duration = time::Duration::hours(1);
pub const MAX_SESSION: time::Duration = time::Duration::hours(24);
pub const MIN_SESSION: time::Duration = time::Duration::minutes(1);

/// A promoter session as `POST /v1/promoters/{user_id}/sessions` answers it.
#[derive(Clone, Debug, Serialize)]
pub struct Session {
    pub token: String,
    pub user_id: String,
    #[serde(with = "rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// The body of a session request: how long it lives (default one hour, 60 s to 24 h).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    #[serde(default)]
    pub expires_in_seconds: Option<i64>,
}

pub struct Authenticator {
    keyring: Keyring,
    /// SHA-256 of `OPERATOR_KEY`, compared in constant time.
    operator: Option<[u8; 32]>,
    store: DynamoStore,
    keys: Cache<ApiKey>,
    tenants: TenantDirectory<DynamoStore>,
}

fn sha256(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn suspended(tenant: &str) -> Error {
    Error::TenantSuspended(format!(
        "the tenant '{tenant}' is suspended: its credentials are refused until the operator \
         reactivates it"
    ))
}

impl Authenticator {
    pub fn new(
        keyring: Keyring,
        operator_key: Option<&Secret>,
        store: DynamoStore,
        cache_for: Duration,
    ) -> Self {
        Authenticator {
            keyring,
            operator: operator_key.map(|key| sha256(key.expose())),
            tenants: TenantDirectory::new(store.clone(), cache_for),
            store,
            keys: Cache::new(cache_for),
        }
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    fn is_operator(&self, credential: &str) -> bool {
        self.operator
            .as_ref()
            .is_some_and(|operator| constant_time_eq(operator, &sha256(credential)))
    }

    /// The operator, or 401/403.
    pub fn operator(&self, authorization: Option<&str>) -> Result<()> {
        let credential = bearer(authorization)?;
        if self.is_operator(credential) {
            return Ok(());
        }
        if self.operator.is_none() {
            return Err(Error::Forbidden(
                "tenant management is not enabled here: OPERATOR_KEY is not configured".into(),
            ));
        }
        Err(Error::Forbidden(
            "this route needs the operator key; tenant API keys and tokens manage their own \
             tenant through /v1/tenant"
                .into(),
        ))
    }

    /// A tenant's caller of one of `roles`: an API key or an engine-signed token, of an active
    /// tenant. A token's role is checked before its tenant is read, so a refused role costs no
    /// round trip.
    pub async fn caller(&self, authorization: Option<&str>, roles: &[Role]) -> Result<Principal> {
        let credential = bearer(authorization)?;
        if self.is_operator(credential) {
            return Err(Error::Forbidden(
                "the operator key manages tenants (/v1/tenants); tenant routes take a tenant's \
                 API key or token"
                    .into(),
            ));
        }
        if tenant::looks_like_api_key(credential) {
            let key = self.api_key(credential).await?;
            if key.tenant_status == TenantStatus::Suspended {
                return Err(suspended(&key.tenant));
            }
            return Principal {
                user_id: format!("key:{}", key.id),
                tenant: key.tenant,
                role: key.role,
            }
            .require_any(roles);
        }
        let principal = self.keyring.verify(credential)?.require_any(roles)?;
        if let Some(tenant) = self.tenant(&principal.tenant).await?
            && tenant.status == TenantStatus::Suspended
        {
            return Err(suspended(&tenant.id));
        }
        Ok(principal)
    }

    async fn api_key(&self, credential: &str) -> Result<ApiKey> {
        let digest = tenant::digest(credential);
        if let Some(key) = self.keys.get(&digest) {
            return Ok(key);
        }
        let key = self
            .store
            .get_api_key(&digest)
            .await?
            .ok_or_else(|| Error::Unauthorized("unknown or revoked API key".into()))?;
        self.keys.put(&digest, key.clone());
        let now = crate::clock::now();
        if key
            .last_used_at
            .is_none_or(|used| used < now - LAST_USED_PRECISION)
        {
            // Best effort and off the request's path: a lost write only makes the figure older.
            let store = self.store.clone();
            tokio::spawn(async move {
                if let Err(error) = store
                    .touch_api_key(&digest, now, now - LAST_USED_PRECISION)
                    .await
                {
                    tracing::debug!(%error, "last_used_at not updated");
                }
            });
        }
        Ok(key)
    }

    /// The tenant's record (`None` for a tenant the operator never created: its tokens signed
    /// with the engine's key work with the engine's default settings), cached.
    pub async fn tenant(&self, id: &str) -> Result<Option<Arc<Tenant>>> {
        self.tenants.get(id).await
    }

    /// Drops what this container remembers of a key (after revoking it) or a tenant (after
    /// changing it).
    pub fn forget_key(&self, digest: &str) {
        self.keys.forget(digest);
    }

    pub fn forget_tenant(&self, id: &str) {
        self.tenants.forget(id);
    }

    /// A promoter session for `user_id` of `tenant`, signed with the current key.
    pub fn session(
        &self,
        tenant: &str,
        user_id: &str,
        request: &SessionRequest,
    ) -> Result<Session> {
        if !crate::id::is_identifier(user_id) {
            return Err(Error::invalid("user_id", crate::id::IDENTIFIER_RULE));
        }
        let lifetime = match request.expires_in_seconds {
            None => DEFAULT_SESSION,
            Some(seconds) => {
                let lifetime = time::Duration::seconds(seconds);
                if lifetime < MIN_SESSION || lifetime > MAX_SESSION {
                    return Err(Error::invalid(
                        "expires_in_seconds",
                        "must be from 60 to 86400 (24 hours)",
                    ));
                }
                lifetime
            }
        };
        let expires_at = crate::clock::now() + lifetime;
        let token = self.keyring.sign(&Claims {
            sub: user_id.to_owned(),
            tenant: tenant.to_owned(),
            role: Role::Promoter,
            exp: expires_at.unix_timestamp(),
        });
        Ok(Session {
            token,
            user_id: user_id.to_owned(),
            expires_at,
        })
    }
}
