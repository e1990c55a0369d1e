//! What every endpoint group shares on the HTTP side: the application state (built once per cold
//! start), the extractors that authenticate and parse strictly, the error response, and the
//! finishing of a router (fallbacks, request spans) for Lambda and for the local server alike.

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::auth::{Principal, Role, TokenVerifier};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ledger::Reward;
use crate::page::{ListQuery, PageRequest};
use crate::queue::BillingQueue;
use crate::store::DynamoStore;

/// Request bodies larger than this are refused with 413 `payload_too_large`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Everything a handler needs, built once per cold start and shared by every request.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

pub struct Services {
    pub config: Config,
    pub store: DynamoStore,
    pub tokens: TokenVerifier,
    /// The billing-credit producer, when `QUEUE_URL` is set.
    pub queue: Option<BillingQueue>,
}

impl Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

impl AppState {
    /// Loads the AWS configuration (honouring `AWS_ENDPOINT_URL`) and builds the clients.
    pub async fn load(config: Config) -> Self {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let sqs = config
            .queue_url
            .as_ref()
            .map(|_| aws_sdk_sqs::Client::new(&sdk));
        Self::new(config, aws_sdk_dynamodb::Client::new(&sdk), sqs)
    }

    /// The state over given clients; the queue exists when `config.queue_url` and `sqs` do.
    pub fn new(
        config: Config,
        dynamodb: aws_sdk_dynamodb::Client,
        sqs: Option<aws_sdk_sqs::Client>,
    ) -> Self {
        let queue = match (&config.queue_url, sqs) {
            (Some(url), Some(client)) => Some(BillingQueue::new(client, url)),
            _ => None,
        };
        AppState(Arc::new(Services {
            store: DynamoStore::new(dynamodb, &config.table_name),
            tokens: TokenVerifier::new(&config.jwt_secret),
            config,
            queue,
        }))
    }

    /// Hands the `pending` rewards among `rewards` to the billing queue (if any).
    pub async fn deliver<'a>(&self, rewards: impl IntoIterator<Item = &'a Reward>) {
        if let Some(queue) = &self.queue {
            queue.enqueue(rewards).await;
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Error::Internal(context) = &self {
            tracing::error!(error = %context, "internal error");
        } else {
            tracing::info!(code = self.code(), message = %self, "request refused");
        }
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.envelope())).into_response()
    }
}

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
        let authorization = match parts.headers.get(AUTHORIZATION) {
            Some(value) => Some(value.to_str().map_err(|_| {
                Error::Unauthorized("the Authorization header is not valid text".into())
            })?),
            None => None,
        };
        let principal = state.tokens.authenticate(authorization)?;
        tracing::Span::current().record("tenant", principal.tenant.as_str());
        Ok(Caller {
            principal: principal.require_any(R::ROLES)?,
            roles: PhantomData,
        })
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
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses a JSON object into `T`; the error names the offending field as a path
/// (`rewards[0].amount`), or `body` when the document as a whole is wrong.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    // serde would also read a struct from an array, positionally: every body is an object.
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(_) if serde_json::from_slice::<serde_json::Value>(bytes).is_err() => {
            return Err(Error::invalid("body", "is not valid JSON"));
        }
        _ => return Err(Error::invalid("body", "must be a JSON object")),
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        // A syntax error concerns the document, not a field.
        let field = if path == "." || inner.is_syntax() || inner.is_eof() {
            "body".to_owned()
        } else {
            path
        };
        Error::invalid(field, inner.to_string())
    })?;
    deserializer
        .end()
        .map_err(|_| Error::invalid("body", "unexpected data after the JSON document"))?;
    Ok(value)
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

/// The base of referral links: `PUBLIC_BASE_URL`, or else `https://` and the request's host
/// (the API's own domain behind API Gateway).
pub struct PublicBaseUrl(pub String);

impl FromRequestParts<AppState> for PublicBaseUrl {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
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

/// Finishes a router of one or more endpoint groups: JSON 404/405 fallbacks in the error
/// envelope, one span per request (method, route, request id, tenant), then the state.
pub fn app(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .fallback(|| async { Error::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(axum::middleware::from_fn(trace_request))
        .with_state(state)
}

async fn trace_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let request_id = request
        .extensions()
        .get::<lambda_http::Context>()
        .map(|context| context.request_id.clone())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        request_id,
        tenant = tracing::field::Empty,
    );
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "handled"
        )
    });
    response
}

/// The whole `main` of an endpoint-group Lambda: logging, configuration and clients once per cold
/// start, then the Lambda runtime loop over the group's router.
///
/// Every function's `main` runs on tokio's current-thread runtime: a Lambda sandbox handles one
/// event at a time, its I/O-bound work (parallel reads, concurrent deliveries) interleaves on one
/// thread, and no worker threads start or hand tasks over (`make bench`: init 1 ms shorter,
/// handler overhead about halved; see BENCHMARKS.md).
pub async fn run_lambda(routes: Router<AppState>) -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let config = Config::from_env().map_err(|error| error.to_string())?;
    let state = AppState::load(config).await;
    lambda_http::run(app(routes, state)).await
}
