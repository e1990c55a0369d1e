//! Extractors: the authenticated caller of a role (401/403 before the body is read), strict JSON
//! bodies of a bounded size, query strings, pagination, and the base of referral links.

use std::marker::PhantomData;
use std::ops::Deref;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::AppState;
use super::auth::{Principal, Role};
use crate::error::{Error, Result};
use crate::page::{ListQuery, PageRequest};

/// Request bodies larger than this are refused with 413 `payload_too_large`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The roles a route admits, as a type: `Caller<AdminOnly>` (alias [`Admin`]) authenticates the
/// request and refuses other roles with 403 before the body is even read.
pub trait Roles {
    const ROLES: &'static [Role];
}

pub struct AdminOnly;
impl Roles for AdminOnly {
    const ROLES: &'static [Role] = &[Role::Admin];
}

pub struct PromoterOnly;
impl Roles for PromoterOnly {
    const ROLES: &'static [Role] = &[Role::Promoter];
}

/// The authenticated caller of a route, of one of `R`'s roles.
pub struct Caller<R> {
    pub principal: Principal,
    roles: PhantomData<R>,
}

pub struct ServiceOnly;
impl Roles for ServiceOnly {
    const ROLES: &'static [Role] = &[Role::Service];
}

pub struct AdminOrService;
impl Roles for AdminOrService {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Service];
}

pub type Admin = Caller<AdminOnly>;
/// The tenant's backend (sign-ups, invoices, identity checks).
pub type Service = Caller<ServiceOnly>;
/// An admin or the tenant's backend (reading relations).
pub type Backoffice = Caller<AdminOrService>;
/// An end user acting on their own promoter data (`/me` routes).
pub type PromoterUser = Caller<PromoterOnly>;

impl<R> Deref for Caller<R> {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl<R: Roles> FromRequestParts<AppState> for Caller<R> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let principal = state.auth.caller(authorization(parts)?, R::ROLES).await?;
        tracing::Span::current().record("tenant", principal.tenant.as_str());
        parts
            .extensions
            .insert(CallerTenant(principal.tenant.clone()));
        Ok(Caller {
            principal,
            roles: PhantomData,
        })
    }
}

/// The tenant of the authenticated caller, for extractors that run after [`Caller`].
#[derive(Clone)]
struct CallerTenant(String);

fn authorization(parts: &Parts) -> Result<Option<&str>> {
    match parts.headers.get(AUTHORIZATION) {
        Some(value) => Ok(Some(value.to_str().map_err(|_| {
            Error::Unauthorized("the Authorization header is not valid text".into())
        })?)),
        None => Ok(None),
    }
}

/// The operator (`Authorization: Bearer <OPERATOR_KEY>`): tenant management.
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        state.auth.operator(authorization(parts)?)?;
        Ok(Operator)
    }
}

/// A JSON body of at most [`MAX_BODY_BYTES`], parsed strictly into `T`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(request: Request, _state: &S) -> Result<Self> {
        let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| Error::PayloadTooLarge(MAX_BODY_BYTES))?;
        crate::json::parse(&bytes).map(JsonBody)
    }
}

/// A JSON body that may be absent: an empty body is `T::default()`, anything else is parsed
/// like [`JsonBody`].
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = Error;

    async fn from_request(request: Request, _state: &S) -> Result<Self> {
        let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| Error::PayloadTooLarge(MAX_BODY_BYTES))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        crate::json::parse(&bytes).map(OptionalJsonBody)
    }
}

/// A query string parsed into `T`; unknown parameters are ignored.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self> {
        serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
            .map(QueryParams)
            .map_err(|error| Error::invalid("query", error.to_string()))
    }
}

/// `?limit=&cursor=` of a list route, validated.
pub struct Pagination(pub PageRequest);

impl<S: Send + Sync> FromRequestParts<S> for Pagination {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let QueryParams(query) = QueryParams::<ListQuery>::from_request_parts(parts, state).await?;
        PageRequest::try_from(query).map(Pagination)
    }
}

/// The base of referral links: the caller's tenant's `link_base_url`, else `PUBLIC_BASE_URL`,
/// else `https://` and the request's host (the API's own domain behind API Gateway).
pub struct PublicBaseUrl(pub String);

impl FromRequestParts<AppState> for PublicBaseUrl {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        if let Some(CallerTenant(tenant)) = parts.extensions.get::<CallerTenant>()
            && let Some(tenant) = state.auth.tenant(tenant).await?
            && let Some(base) = &tenant.link_base_url
        {
            return Ok(PublicBaseUrl(base.clone()));
        }
        if let Some(base) = &state.config.public_base_url {
            return Ok(PublicBaseUrl(base.clone()));
        }
        let host = parts
            .headers
            .get(axum::http::header::HOST)
            .and_then(|host| host.to_str().ok())
            .filter(|host| !host.is_empty() && !host.contains(['/', ' ']))
            .ok_or_else(|| {
                Error::internal("PUBLIC_BASE_URL is not set and the request has no Host")
            })?;
        Ok(PublicBaseUrl(format!("https://{host}")))
    }
}
