//! Tenant use cases: the operator creates, lists, changes and suspends tenants; a tenant's admins
//! change its settings, rotate its billing secret and manage its API keys. Every write is
//! conditional on the version read (a concurrent change makes it re-read and retry), and a
//! change of status reaches every API key in the same transaction.

use serde::Deserialize;
use time::OffsetDateTime;

use super::{
    ApiKey, ApiKeyView, IssuedApiKey, MAX_API_KEYS, NewApiKey, ROTATION_OVERLAP, Role,
    SigningSecret, Tenant, TenantStatus, TenantView,
};
use crate::domain::money::validate_currency;
use crate::domain::program::{nullable, present};
use crate::error::{Error, Result};
use crate::outbound::{self, Policy};
use crate::page::{Page, PageRequest};
use crate::store::{KeyWrite, Replaced, TenantStore};

/// Attempts of a read-modify-write against concurrent changes of the same tenant.
const ATTEMPTS: usize = 5;

/// The body of `POST /v1/tenants` (operator: `id` and `name` required), `PATCH /v1/tenants/{id}`
/// (operator: no `id`) and `PATCH /v1/tenant` (admin: no `id`, no `status`). In a change `null`
/// clears a setting (the engine's default applies again).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantInput {
    #[serde(default, deserialize_with = "present")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub status: Option<TenantStatus>,
    #[serde(default, deserialize_with = "nullable")]
    pub landing_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub link_base_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub default_currency: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub billing_url: Option<Option<String>>,
}

/// Who is changing a tenant: the fields each may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Changer {
    Operator,
    Admin,
}

/// A tenant as its creation answers it: with its first admin key and its billing secret, both
/// shown this once.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CreatedTenant {
    #[serde(flatten)]
    pub tenant: TenantView,
    pub admin_key: IssuedApiKey,
    pub billing_secret: String,
}

/// A new billing secret, shown once.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RotatedSecret {
    pub billing_secret: String,
    #[serde(with = "crate::clock::rfc3339::option")]
    pub previous_secret_retires_at: Option<OffsetDateTime>,
}

fn new_signing_secret(now: OffsetDateTime) -> SigningSecret {
    SigningSecret {
        secret: crate::id::signing_secret(),
        created_at: now,
        retires_at: None,
    }
}

fn validate_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "name",
            "must be 1-200 characters without control characters",
        ));
    }
    Ok(name.to_owned())
}

/// A URL the engine does not fetch (a redirect target, a link base): absolute http(s).
fn validate_public_link(field: &str, url: &str, policy: Policy) -> Result<String> {
    let parsed = url::Url::parse(url)
        .map_err(|error| Error::invalid(field, format!("is not an absolute URL ({error})")))?;
    let allowed = parsed.scheme() == "https" || (parsed.scheme() == "http" && policy.allow_private);
    if !allowed || parsed.host().is_none() || url.len() > 2048 {
        return Err(Error::invalid(
            field,
            "must be an absolute https URL of at most 2048 characters",
        ));
    }
    Ok(url.to_owned())
}

impl TenantInput {
    /// Applies the change to `tenant` after validating every field; the billing URL's host is
    /// resolved and checked (see [`crate::outbound`]).
    async fn apply(self, tenant: &mut Tenant, policy: Policy) -> Result<()> {
        if let Some(status) = self.status {
            tenant.status = status;
        }
        if let Some(name) = &self.name {
            tenant.name = validate_name(name)?;
        }
        if let Some(landing) = self.landing_url {
            tenant.landing_url = landing
                .map(|url| validate_public_link("landing_url", &url, policy))
                .transpose()?;
        }
        if let Some(base) = self.link_base_url {
            tenant.link_base_url = base
                .map(|url| {
                    validate_public_link("link_base_url", &url, policy)
                        .map(|url| url.trim_end_matches('/').to_owned())
                })
                .transpose()?;
        }
        if let Some(currency) = self.default_currency {
            if let Some(currency) = &currency {
                validate_currency(currency).map_err(|_| {
                    Error::invalid("default_currency", "must be an ISO 4217 code or POINTS")
                })?;
            }
            tenant.default_currency = currency;
        }
        if let Some(billing) = self.billing_url {
            tenant.billing_url = match billing {
                Some(url) => {
                    outbound::check_saved("billing_url", &url, policy).await?;
                    Some(url)
                }
                None => None,
            };
        }
        Ok(())
    }
}

/// Creates a tenant with its first admin key and its billing secret; 409 if the id is taken.
pub async fn create(
    store: &impl TenantStore,
    input: TenantInput,
    policy: Policy,
) -> Result<CreatedTenant> {
    let id = input
        .id
        .clone()
        .ok_or_else(|| Error::invalid("id", "is required"))?;
    let name = input
        .name
        .clone()
        .ok_or_else(|| Error::invalid("name", "is required"))?;
    if input.status.is_some() {
        return Err(Error::invalid(
            "status",
            "a new tenant is active; suspend it with PATCH",
        ));
    }
    if !crate::id::is_identifier(&id) || id.len() > 64 {
        return Err(Error::invalid(
            "id",
            "must be 1-64 characters without '#' or control characters",
        ));
    }
    let now = crate::clock::now();
    let mut tenant = Tenant {
        id,
        name: validate_name(&name)?,
        status: TenantStatus::Active,
        landing_url: None,
        link_base_url: None,
        default_currency: None,
        billing_url: None,
        billing_secrets: vec![new_signing_secret(now)],
        api_keys: Default::default(),
        created_at: now,
        updated_at: now,
        version: 1,
    };
    input.apply(&mut tenant, policy).await?;
    let (key, secret) = ApiKey::issue(&tenant.id, "first admin key", Role::Admin, now);
    tenant.api_keys.insert(key.id.clone(), key.digest.clone());
    let billing_secret = tenant.billing_secrets[0].secret.clone();
    match store
        .write_tenant(None, &tenant, &[KeyWrite::Insert(key.clone())])
        .await?
    {
        Replaced::Done => Ok(CreatedTenant {
            tenant: tenant.view(),
            admin_key: IssuedApiKey {
                view: key.view(),
                key: secret,
            },
            billing_secret,
        }),
        Replaced::Stale => Err(Error::Conflict(format!(
            "a tenant with the id '{}' exists already",
            tenant.id
        ))),
    }
}

/// The tenant, or 404.
pub async fn get(store: &impl TenantStore, id: &str) -> Result<Tenant> {
    store
        .get_tenant(id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no tenant '{id}'")))
}

pub async fn list(store: &impl TenantStore, page: &PageRequest) -> Result<Page<TenantView>> {
    let page = store.list_tenants(page).await?;
    Ok(Page {
        items: page.items.iter().map(Tenant::view).collect(),
        next_cursor: page.next_cursor,
    })
}

/// Reads the tenant, lets `change` produce the next version and the key writes that go with
/// it, and writes both if nothing changed the tenant meanwhile (else reads again).
async fn modify<T, F, Fut>(store: &impl TenantStore, id: &str, mut change: F) -> Result<(Tenant, T)>
where
    F: FnMut(Tenant) -> Fut,
    Fut: std::future::Future<Output = Result<(Tenant, Vec<KeyWrite>, T)>>,
{
    for _ in 0..ATTEMPTS {
        let current = get(store, id).await?;
        let version = current.version;
        let (mut next, writes, answer) = change(current).await?;
        next.version = version + 1;
        next.updated_at = crate::clock::now();
        if store.write_tenant(Some(version), &next, &writes).await? == Replaced::Done {
            return Ok((next, answer));
        }
    }
    Err(Error::unavailable(format!(
        "tenant {id} kept changing under this write"
    )))
}

/// A change of the tenant by the operator (settings and status; a status change reaches every
/// API key in the same transaction) or by its admin (settings only).
pub async fn change(
    store: &impl TenantStore,
    id: &str,
    input: TenantInput,
    changer: Changer,
    policy: Policy,
) -> Result<Tenant> {
    if input.id.is_some() {
        return Err(Error::invalid("id", "a tenant's id never changes"));
    }
    if changer == Changer::Admin && input.status.is_some() {
        return Err(Error::invalid(
            "status",
            "only the operator suspends or reactivates a tenant",
        ));
    }
    let (tenant, ()) = modify(store, id, |mut tenant| {
        let input = input.clone();
        async move {
            let before = tenant.status;
            input.apply(&mut tenant, policy).await?;
            let writes = if tenant.status == before {
                Vec::new()
            } else {
                tenant
                    .api_keys
                    .values()
                    .map(|digest| KeyWrite::Status(digest.clone(), tenant.status))
                    .collect()
            };
            Ok((tenant, writes, ()))
        }
    })
    .await?;
    Ok(tenant)
}

/// A new billing secret; the current one keeps signing beside it for [`ROTATION_OVERLAP`],
/// older ones stop at once.
pub async fn rotate_billing_secret(store: &impl TenantStore, id: &str) -> Result<RotatedSecret> {
    let (_, rotated) = modify(store, id, |mut tenant| async move {
        let now = crate::clock::now();
        let retires = now + ROTATION_OVERLAP;
        let previous = tenant.billing_secrets.drain(..).next().map(|mut secret| {
            secret.retires_at = Some(retires);
            secret
        });
        let fresh = new_signing_secret(now);
        let answer = RotatedSecret {
            billing_secret: fresh.secret.clone(),
            previous_secret_retires_at: previous.as_ref().and(Some(retires)),
        };
        tenant.billing_secrets = std::iter::once(fresh).chain(previous).collect();
        Ok((tenant, Vec::new(), answer))
    })
    .await?;
    Ok(rotated)
}

/// A new API key of the tenant, answered once; at most [`MAX_API_KEYS`] live at a time.
pub async fn issue_key(
    store: &impl TenantStore,
    id: &str,
    input: NewApiKey,
) -> Result<IssuedApiKey> {
    let input = input.validated()?;
    let (_, issued) = modify(store, id, |mut tenant| {
        let input = input.clone();
        async move {
            if tenant.api_keys.len() >= MAX_API_KEYS {
                return Err(Error::Conflict(format!(
                    "the tenant has {MAX_API_KEYS} API keys, the most it may hold; revoke one first"
                )));
            }
            let (mut key, secret) =
                ApiKey::issue(&tenant.id, &input.name, input.role, crate::clock::now());
            key.tenant_status = tenant.status;
            tenant.api_keys.insert(key.id.clone(), key.digest.clone());
            let issued = IssuedApiKey {
                view: key.view(),
                key: secret,
            };
            Ok((tenant, vec![KeyWrite::Insert(key)], issued))
        }
    })
    .await?;
    Ok(issued)
}

/// The tenant's live keys, oldest first.
pub async fn keys(store: &impl TenantStore, id: &str) -> Result<Vec<ApiKeyView>> {
    let tenant = get(store, id).await?;
    let mut keys = store
        .api_keys(tenant.api_keys.values().cloned().collect())
        .await?;
    keys.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(keys.iter().map(ApiKey::view).collect())
}

/// Revokes a key: it is deleted (its digest with it) and refused from then on. Answers the
/// revoked key's digest, for the caller's cache.
pub async fn revoke_key(store: &impl TenantStore, id: &str, key_id: &str) -> Result<String> {
    let (_, digest) = modify(store, id, |mut tenant| {
        let key_id = key_id.to_owned();
        async move {
            let digest = tenant
                .api_keys
                .remove(&key_id)
                .ok_or_else(|| Error::NotFound(format!("no API key '{key_id}'")))?;
            Ok((tenant, vec![KeyWrite::Delete(digest.clone())], digest))
        }
    })
    .await?;
    Ok(digest)
}
